"""Two real FiveThirtyEight surveys, read from a shared data folder (CC BY 4.0).

* :func:`load_masculinity` — SurveyMonkey / FiveThirtyEight / WNYC survey of 1,615 adult
  men (May 2018), ``raw-responses.csv``; :func:`read_masculinity_crosstabs` reads the
  published weighted crosstabs (``masculinity-survey.csv``) that weighted aggregation of
  the raw file should reproduce — an independent check of the aggregation code.
* :func:`load_nonvoters` — "Why Many Americans Don't Vote", Ipsos KnowledgePanel for
  FiveThirtyEight (September 2020), ``nonvoters_data.csv`` with question texts and option
  labels parsed from ``nonvoters_codebook.txt``.

The files are not shipped with surveylm: they are read by path from ``data_dir``, by
default ``$SURVEYLM_SHARED_DATA`` or ``<repository>/../shared/data``. Only single-choice
questions become :class:`~surveylm.survey.Question` s; "select all that apply" columns
(masculinity q0004, q0008, q0010-q0012, q0019-q0021, q0025; nonvoters Q19, Q28, Q29)
are skipped, as are open ends, paradata (masculinity q0036, device) and nonvoters Q1
(every respondent is a citizen). "No answer" (nonvoters code -1) is missing unless
``keep_no_answer=True``, which keeps it as a last option with ordinal value -1
(non-substantive) — the convention of the published masculinity crosstabs, whose
denominators include it. Answers to questions not asked (skip logic, ``NA``) are always
missing.

Attribution: FiveThirtyEight, https://github.com/fivethirtyeight/data, CC BY 4.0.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from surveylm.errors import CodebookError, FileFormatError, preview, where
from surveylm.survey import Question, Survey

MASCULINITY = "fivethirtyeight_masculinity"
NONVOTERS = "fivethirtyeight_nonvoters"
NO_ANSWER = "No answer"
ENV_VAR = "SURVEYLM_SHARED_DATA"

# -- masculinity codebook (wording from masculinity-survey.pdf) -------------------------
_FREQ = ("Often", "Sometimes", "Rarely", "Never, but open to it", "Never, and not open to it")
_YN = ("Yes", "No")
_Q7 = "How often would you say you do each of the following?"
_Q7_ITEMS = (
    "Ask a friend for professional advice", "Ask a friend for personal advice",
    "Express physical affection to male friends, like hugging, rubbing shoulders", "Cry",
    "Get in a physical fight with another person",
    "Have sexual relations with women, including anything from kissing to sex",
    "Have sexual relations with men, including anything from kissing to sex",
    "Watch sports of any kind", "Work out", "See a therapist", "Feel lonely or isolated",
)  # fmt: skip
_INCOME = ("$0-$9,999", "$10,000-$24,999", "$25,000-$49,999", "$50,000-$74,999",
           "$75,000-$99,999", "$100,000-$124,999", "$125,000-$149,999", "$150,000-$174,999",
           "$175,000-$199,999", "$200,000+")  # fmt: skip
#: (column, short label, text, options in order, ordinal?); options None = sorted data values.
_MASC: list[tuple[str, str, str, tuple[str, ...] | None, bool]] = [
    ("q0001", "Feels masculine", 'In general, how masculine or "manly" do you feel?',
     ("Very masculine", "Somewhat masculine", "Not very masculine", "Not at all masculine"),
     True),
    ("q0002", "Importance of being seen as masculine",
     "How important is it to you that others see you as masculine?",
     ("Very important", "Somewhat important", "Not too important", "Not at all important"),
     True),
    ("q0005", "Society pressures men unhealthily", "Do you think that society puts pressure "
     "on men in a way that is unhealthy or bad for them?", _YN, False),
    *[(f"q0007_{i + 1:04d}", item, f"{_Q7} {item}", _FREQ, True)
      for i, item in enumerate(_Q7_ITEMS)],
    ("q0009", "Employment status",
     "Which of the following categories best describes your employment status?",
     ("Employed, working full-time", "Employed, working part-time", "Not employed, student",
      "Not employed-retired", "Not employed, looking for work",
      "Not employed, NOT looking for work"), False),
    ("q0013", "Main reason for not responding to harassment", "(Asked of employed men who did "
     "not respond to a sexual harassment incident at work.) And which of the following is "
     "the main reason you did not respond?",
     ("You didn't think it was your place", "You weren't sure who to contact",
      "You didn't want to get involved", "You weren't sure it was sexual harassment",
      "Other (please specify)"), False),
    ("q0014", "Heard about #MeToo", "(Asked of employed men.) How much have you heard about "
     "the #MeToo movement?", ("A lot", "Some", "Only a little", "Nothing at all"), True),
    ("q0015", "Thinks differently about behavior at work after #MeToo", "(Asked of employed "
     "men who have heard of #MeToo.) As a man, would you say you think about your behavior "
     "at work differently in the wake of #MeToo?", _YN, False),
    ("q0017", "Expected to make the first move", "Do you typically feel as though you're "
     "expected to make the first move in romantic relationships?", _YN, False),
    ("q0018", "Tries to pay on dates", "How often do you try to be the one who pays when on "
     "a date?", ("Always", "Often", "Sometimes", "Rarely", "Never"), True),
    ("q0022", "Changed romantic behavior after #MeToo", "Have you changed your behavior in "
     "romantic relationships in the wake of #MeToo movement?", _YN, False),
    ("q0024", "Marital status", "Are you now married, widowed, divorced, separated, or have "
     "you never been married?",
     ("Married", "Widowed", "Divorced", "Separated", "Never married"), False),
    ("q0026", "Sexual orientation", "Would you describe your sexual orientation as:",
     ("Straight", "Gay", "Bisexual", "Other"), False),
    ("q0028", "Race", "Are you: White, Black, Hispanic, Asian, or Other?",
     ("White", "Black", "Hispanic", "Asian", "Other"), False),
    ("q0029", "Education", "What is the last grade of school you completed?",
     ("Did not complete high school", "High school or G.E.D.", "Some college",
      "Associate's degree", "College graduate", "Post graduate degree"), True),
    ("q0030", "State", "What state do you live in?", None, False),
    ("q0034", "Household income", "Household income (respondent profile; not in the "
     "questionnaire).", _INCOME, True),
    ("q0035", "Census division", "Census division (derived from state).", None, False),
    ("race2", "Race (white / non-white)", "Race, white or non-white (derived from q0028).",
     ("White", "Non-white"), False),
    ("racethn4", "Race (4 groups)", "Race and ethnicity in four groups (derived from q0028).",
     ("White", "Black", "Hispanic", "Other"), False),
    ("educ3", "Education (3 groups)", "Education in three groups (derived from q0029).",
     ("High school or less", "Some college", "College or more"), True),
    ("educ4", "Education (4 groups)", "Education in four groups (derived from q0029; "
     "'College or more' here means a college degree without a postgraduate one).",
     ("High school or less", "Some college", "College or more", "Post graduate degree"), True),
    ("age3", "Age group", "Age group (derived from the respondent's age).",
     ("18 - 34", "35 - 64", "65 and up"), True),
    ("kids", "Children", "Has children or not (derived from q0025).",
     ("Has children", "No children"), False),
    ("orientation", "Sexual orientation (grouped)", "Sexual orientation with gay and bisexual "
     "combined (derived from q0026).", ("Straight", "Gay/Bisexual", "Other"), False),
]  # fmt: skip
#: Raw labels that mean "no answer" (besides "No answer") per column.
_MASC_NO_ANSWER = {"q0034": "Prefer not to answer"}


def shared_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the shared survey files.

    Args:
        data_dir: Explicit folder. Default: ``$SURVEYLM_SHARED_DATA``, else
            ``<repository>/../shared/data`` (the layout used in development and CI).

    Raises:
        FileFormatError: the folder does not exist; the message says where it looked.
    """
    if data_dir is not None:
        candidates = [Path(data_dir)]
    else:
        candidates = [Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else []
        candidates.append(Path(__file__).resolve().parents[3].parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    raise FileFormatError(
        f"shared survey data folder not found; looked in {preview([str(c) for c in candidates])}"
        f" (pass data_dir= or set ${ENV_VAR})"
    )


def _file(data_dir: str | os.PathLike[str] | None, *parts: str) -> Path:
    path = shared_data_dir(data_dir).joinpath(*parts)
    if not path.is_file():
        raise FileFormatError(f"{where(file=path)}no such file")
    return path


def _read_csv(path: Path, **kwargs: object) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise FileFormatError(f"{where(file=path)}not a readable CSV file ({exc})") from None


def _require(frame: pd.DataFrame, cols: list[str], path: Path) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise FileFormatError(f"{where(file=path)}missing columns {preview(missing)}")


def _question(
    qid: str,
    label: str | None,
    text: str,
    options: tuple[str, ...],
    ordinal: bool,
    source: str,
    keep_no_answer: bool,
) -> Question:
    """A question with ordinal values 1..K (or nominal), plus "No answer" (-1) if kept."""
    values = tuple(float(i + 1) for i in range(len(options))) if ordinal else None
    if keep_no_answer:
        options = (*options, NO_ANSWER)
        values = None if values is None else (*values, -1.0)
    return Question(qid, text, options, values, source=source, label=label)


def load_masculinity(
    data_dir: str | os.PathLike[str] | None = None, *, keep_no_answer: bool = False
) -> Survey:
    """The FiveThirtyEight masculinity survey (1,615 men, May 2018) as a :class:`Survey`.

    Args:
        data_dir: Folder holding ``fivethirtyeight-masculinity/`` (see
            :func:`shared_data_dir`).
        keep_no_answer: Keep "No answer" (and "Prefer not to answer" for income) as a last
            option with ordinal value -1 instead of treating it as missing, for the questions
            where someone gave it. The published crosstabs count it in their denominators.

    Returns:
        Single-choice questions (wording from ``masculinity-survey.pdf``; matrix q0007 as one
        question per row) and the derived grouping variables (``age3``, ``race2``,
        ``racethn4``, ``educ3``, ``educ4``, ``kids``, ``orientation``), weighted by ``weight``,
        indexed by respondent number.

    Raises:
        FileFormatError: folder, file or column missing. DataError: an unknown answer label.
    """
    path = _file(data_dir, "fivethirtyeight-masculinity", "raw-responses.csv")
    raw = _read_csv(path, dtype=str, keep_default_na=False)
    raw = raw.rename(columns={raw.columns[0]: "respondent"})
    _require(raw, [q[0] for q in _MASC] + ["weight"], path)
    data = pd.DataFrame(index=pd.Index(raw["respondent"].astype(int), name="respondent"))
    questions = []
    for qid, label, text, options, ordinal in _MASC:
        col = raw[qid].map(_fix_apostrophes).to_numpy(dtype=object)
        no_answer = np.isin(col, [NO_ANSWER, _MASC_NO_ANSWER.get(qid, NO_ANSWER)])
        col[no_answer] = NO_ANSWER if keep_no_answer else None  # col: a fresh object array
        col[(col == "NA") | (col == "")] = None
        if options is None:
            options = tuple(sorted({v for v in col if v is not None and v != NO_ANSWER}))
        data[qid] = col
        kept = keep_no_answer and bool(no_answer.any())
        q = _question(qid, label, text, options, ordinal, MASCULINITY, kept)
        questions.append(q)
    weights = pd.to_numeric(raw["weight"], errors="coerce").to_numpy()
    return Survey(data, questions, weights, name=MASCULINITY, file=str(path))


def _fix_apostrophes(label: str) -> str:
    """``"You didn?t"`` → ``"You didn't"`` (the raw file lost its curly apostrophes)."""
    return re.sub(r"(?<=[A-Za-z])\?(?=[a-z])", "'", label)


def read_masculinity_crosstabs(data_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The published weighted crosstabs (``masculinity-survey.csv``) as a long table.

    Returns:
        Columns ``question`` (published heading), ``option``, ``group_var`` (top header:
        "Adult Men", "Age", "Race", "Children", "Sexual Orientation"), ``group`` (column
        header; "Adult Men" for all men) and ``share`` (a fraction; NaN where the published
        cell is blank because the group had fewer than 100 respondents).

    Raises:
        FileFormatError: missing or malformed file.
    """
    path = _file(data_dir, "fivethirtyeight-masculinity", "masculinity-survey.csv")
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{where(file=path)}not UTF-8 text ({exc})") from None
    if len(rows) < 3 or len(rows[0]) < 3:
        raise FileFormatError(f"{where(file=path)}expected two header rows and a table")
    top, sub = rows[0], rows[1]
    groups, current = [], ""
    for j in range(2, len(top)):
        current = top[j].strip() or current
        groups.append((current, sub[j].strip() if j < len(sub) and sub[j].strip() else current))
    out, question = [], None
    for i, row in enumerate(rows[2:], start=3):
        if row and row[0].strip():
            question = row[0].strip()
            continue
        if question is None or len(row) < 2:
            raise FileFormatError(f"{where(file=path, row=i)}answer row before any question")
        for (gvar, group), cell in zip(groups, row[2:], strict=False):
            cell = cell.strip()
            try:
                share = float(cell.rstrip("%")) / 100 if cell else np.nan
            except ValueError:
                raise FileFormatError(
                    f"{where(file=path, row=i)}expected a percentage, got {cell!r}"
                ) from None
            out.append((question, row[1].strip(), gvar, group, share))
    return pd.DataFrame(out, columns=["question", "option", "group_var", "group", "share"])


# -- nonvoters -----------------------------------------------------------------------------
#: Question numbers whose scale is ordered (grids of importance, agreement, trust...).
_NV_ORDINAL = {2, 3, 4, 6, 8, 9, 14, 15, 16, 17, 25, 26}
_NV_LABELS = {
    "Q5": "Who wins matters", "Q6": "Officials like me", "Q7": "Changes needed in government",
    "Q14": "Republican Party's attitude to people like me",
    "Q15": "Democratic Party's attitude to people like me", "Q16": "Ease of voting",
    "Q20": "Registered to vote", "Q21": "Plans to vote in November 2020",
    "Q22": "Reason for not registering", "Q23": "Planned 2020 presidential vote",
    "Q24": "Preferred voting method", "Q25": "Follows the 2020 race",
    "Q26": "Self-described voting frequency", "Q30": "Party identification",
    "Q31": "Republican strength", "Q32": "Democrat strength", "Q33": "Closer to party",
}  # fmt: skip
_NV_DEMOGRAPHICS = [
    ("age_group", "Age group", "Age group (derived from ppage, the respondent's age).",
     ("18 - 34", "35 - 49", "50 - 64", "65 and up"), True),
    ("educ", "Education", "Highest educational attainment category (Associate's degree is "
     "grouped in 'some college').", ("High school or less", "Some college", "College"), True),
    ("race", "Race", "Race of respondent, census categories (all except Hispanic are "
     "non-Hispanic).", ("White", "Black", "Hispanic", "Other/Mixed"), False),
    ("gender", "Gender", "Gender of respondent.", ("Female", "Male"), False),
    ("income_cat", "Household income", "Household income category of respondent.",
     ("Less than $40k", "$40-75k", "$75-125k", "$125k or more"), True),
    ("voter_category", "Voter category", "Voting history from the voter file: always (all or "
     "all-but-one elections they were eligible in), sporadic (at least two, but fewer), "
     "rarely/never (0 or 1).", ("always", "sporadic", "rarely/never"), True),
]  # fmt: skip
#: Who was asked, for questions behind skip logic (from the codebook's BASE lines and data).
_NV_CONTEXT = {
    22: "(Asked of those not registered to vote.) ", 31: "(Asked of Republicans.) ",
    32: "(Asked of Democrats.) ", 33: "(Asked of those who are neither Republicans nor "
    "Democrats.) ",
}  # fmt: skip
_INSTRUCTION = re.compile(r"^(\[.*\]|Randomize|Banked grid|[A-Z0-9 ,;:()\-]+)$")
_NUMBERED = re.compile(r"^(\d+)\.\s*(.*)$")
_INSTRUCTION_IN_TEXT = re.compile(r"\s*(Select one answer only\.|Please choose all that apply\.)")


def parse_nonvoters_codebook(
    path: str | os.PathLike[str],
) -> dict[int, tuple[str, list[str], list[str], bool]]:
    """Parse ``nonvoters_codebook.txt`` (the text of ``nonvoters_codebook.pdf``).

    Returns:
        ``{question number: (text, grid rows, options, select-all-that-apply?)}``; ``grid
        rows`` is empty for a question that is not a grid. Labels lose bracketed notes
        ("[A]", "please specify"); skip-logic questions get who was asked as a prefix.

    Raises:
        FileFormatError: unreadable file. CodebookError: a block without a question number.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{where(file=path)}cannot read the codebook ({exc})") from None
    lines = [ln.replace("\u200b", "").strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    stop = next((i for i, ln in enumerate(lines) if ln.startswith("VOTER_CATEGORY")), len(lines))
    blocks: list[list[str]] = []
    cur: list[str] | None = None
    for ln in lines[:stop]:
        if ln.startswith("BASE:"):
            cur = []
            blocks.append(cur)
        elif cur is not None:
            cur.append(ln)
    out: dict[int, tuple[str, list[str], list[str], bool]] = {}
    for block in blocks:
        start = next((i for i, ln in enumerate(block) if _NUMBERED.match(ln)), None)
        if start is None:
            raise CodebookError(f"{where(file=path)}block without a question number: {block[:2]}")
        number = int(_NUMBERED.match(block[start]).group(1))  # type: ignore[union-attr]
        qtext: list[str] = []
        lists: list[list[str]] = []
        # an open entry takes continuation lines; bare = a list of unnumbered options
        entry_open, bare, after_instruction = False, False, False
        for ln in block[start + 1 :]:
            m = _NUMBERED.match(ln)
            if m:
                if m.group(1) == "1" or not lists:
                    lists.append([])
                lists[-1].append(m.group(2))
                entry_open, bare = True, False
            elif _INSTRUCTION.match(ln):
                entry_open, after_instruction = False, True
            elif not lists and not after_instruction:
                qtext.append(ln)
            elif entry_open:
                lists[-1][-1] = (lists[-1][-1] + " " + ln).strip()
            else:  # unnumbered options after an instruction ("Banked grid / Yes / No")
                if not bare:
                    lists.append([])
                    bare = True
                lists[-1].append(ln)
        labels = [[_clean_label(x) for x in lst] for lst in lists]
        multi = "all that apply" in " ".join(qtext).lower()
        question = _NV_CONTEXT.get(number, "") + _INSTRUCTION_IN_TEXT.sub("", " ".join(qtext))
        if not labels or len(labels) > 2:
            raise CodebookError(
                f"{where(file=path, question=f'Q{number}')}expected options (or grid rows and "
                f"options), found {len(labels)} lists"
            )
        rows, options = (labels[0], labels[1]) if len(labels) == 2 else ([], labels[0])
        out[number] = (question, rows, options, multi)
    return out


def _clean_label(label: str) -> str:
    label = re.sub(r"\[[^\]]*\]", "", label)
    label = re.sub(r",?\s*please specify.*$", "", label, flags=re.IGNORECASE)
    return re.sub(r"\s+", " ", label).strip()


def load_nonvoters(
    data_dir: str | os.PathLike[str] | None = None, *, keep_no_answer: bool = False
) -> Survey:
    """FiveThirtyEight's "Why Many Americans Don't Vote" poll (5,836 respondents, 2020).

    Args:
        data_dir: Folder holding ``fivethirtyeight-nonvoters/`` (see :func:`shared_data_dir`).
        keep_no_answer: Keep code -1 as a last option "No answer" (ordinal value -1) instead
            of treating it as missing, for the questions where someone gave it.

    Returns:
        The single-choice questions Q2-Q33 (grids as one question per row, ``Q2_1``...; texts
        and option labels from the codebook, codes 1..K → its K labels), including ``Q23``
        (planned vote: Donald Trump / Joe Biden / Unsure), and the demographics ``age_group``
        (derived from ``ppage``), ``educ``, ``race``, ``gender``, ``income_cat`` and
        ``voter_category`` as questions; ``ppage`` as a numeric covariate; weights ``weight``;
        indexed by ``RespId``.

    Raises:
        FileFormatError: folder, file or column missing. CodebookError: a code in the data
        without a codebook label. DataError: bad weights or demographic labels.
    """
    folder = ("fivethirtyeight-nonvoters",)
    path = _file(data_dir, *folder, "nonvoters_data.csv")
    codebook = parse_nonvoters_codebook(_file(data_dir, *folder, "nonvoters_codebook.txt"))
    raw = _read_csv(path, keep_default_na=True)
    _require(raw, ["RespId", "weight", "ppage"] + [d[0] for d in _NV_DEMOGRAPHICS[1:]], path)
    data = pd.DataFrame(index=pd.Index(raw["RespId"].to_numpy(), name="RespId"))
    questions: list[Question] = []
    for number, (text, rows, options, multi) in sorted(codebook.items()):
        if number == 1 or multi:
            continue
        items: list[tuple[str, str, str | None]] = [
            (f"Q{number}_{i + 1}", f"{text} {row}", row) for i, row in enumerate(rows)]
        for qid, qtext, label in items or [(f"Q{number}", text, _NV_LABELS.get(f"Q{number}"))]:
            _require(raw, [qid], path)
            codes = pd.to_numeric(raw[qid], errors="coerce").to_numpy()
            valid = np.isin(codes, np.arange(1, len(options) + 1)) | (codes == -1) | np.isnan(codes)
            if not valid.all():
                i = int(np.flatnonzero(~valid)[0])
                raise CodebookError(
                    f"{where(file=path, row=i + 1, column=qid)}code {codes[i]:g} has no label in "
                    f"the codebook (options {preview(options, 8)}; -1 = no answer)"
                )
            lookup = {float(k + 1): o for k, o in enumerate(options)}
            if keep_no_answer:
                lookup[-1.0] = NO_ANSWER
            data[qid] = [lookup.get(c) for c in codes]
            ordinal = number in _NV_ORDINAL
            kept = keep_no_answer and bool((codes == -1).any())
            q = _question(qid, label, qtext, tuple(options), ordinal, NONVOTERS, kept)
            questions.append(q)
    age = pd.to_numeric(raw["ppage"], errors="coerce")
    data["ppage"] = age.to_numpy()
    age_group = pd.cut(age, [0, 34, 49, 64, np.inf], labels=list(_NV_DEMOGRAPHICS[0][3]))
    data["age_group"] = age_group.astype(object).to_numpy()
    for qid, label, text, labels, ordinal in _NV_DEMOGRAPHICS:
        if qid != "age_group":
            data[qid] = raw[qid].astype(object).to_numpy()
        q = _question(qid, label, text, labels, ordinal, NONVOTERS, keep_no_answer=False)
        questions.append(q)
    weights = pd.to_numeric(raw["weight"], errors="coerce").to_numpy()
    return Survey(data, questions, weights, name=NONVOTERS, covariates=["ppage"],
                  covariate_labels={"ppage": "Age in years"}, file=str(path))
