"""FiveThirtyEight loaders, and issue 2's crosstab check.

The acceptance check: weighted group distributions built with ``build_group_items`` from
``raw-responses.csv`` reproduce the published crosstabs (``masculinity-survey.csv``) for
its single-choice questions — at least 95 % of cells within 1 percentage point.

Tests that need the real files skip when the shared data folder is absent; the parser
and error tests build small files of their own.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from surveylm.datasets.fivethirtyeight import (
    MASCULINITY,
    NO_ANSWER,
    NONVOTERS,
    load_masculinity,
    load_nonvoters,
    parse_nonvoters_codebook,
    read_masculinity_crosstabs,
    shared_data_dir,
)
from surveylm.errors import CodebookError, FileFormatError
from surveylm.items import Group, build_group_items

# -- how the published crosstab maps onto raw-responses.csv --------------------------------
#: Published heading (single-choice questions only) → raw column.
PUBLISHED_TO_RAW = {
    'In general, how masculine or "manly" do you feel?': "q0001",
    "How important is it to you that others see you as masculine?": "q0002",
    "Do you think that society puts pressure on men in a way that is unhealthy or bad for "
    "them?": "q0005",
    "Ask a friend for professional advice": "q0007_0001",
    "Ask a friend for personal advice": "q0007_0002",
    "Express physical affection to male friends, like hugging, rubbing shoulders": "q0007_0003",
    "Cry": "q0007_0004",
    "Get in a physical fight with another person": "q0007_0005",
    "Have sexual relations with women, including anything from kissing to sex": "q0007_0006",
    "Have sexual relations with men, including anything from kissing to sex": "q0007_0007",
    "Watch sports of any kind": "q0007_0008",
    "Work out": "q0007_0009",
    "See a therapist": "q0007_0010",
    "Feel lonely or isolated": "q0007_0011",
    "Which of the following categories best describes your employment status?": "q0009",
    "AMONG THOSE WHO DID NOT RESPOND TO HARASSMENT: And which of the following is the main "
    "reason you did not respond?": "q0013",
    "AMONG EMPLOYED: How much have you heard about the #MeToo movement?": "q0014",
    "AMONG EMPLOYED WHO'VE HEARD OF METOO: As a man, would you say you think about your "
    "behavior at work differently in the wake of #MeToo?": "q0015",
    "Do you typically feel as though you're expected to make the first move in romantic "
    "relationships?": "q0017",
    "How often do you try to be the one who pays when on a date?": "q0018",
    "Have you changed your behavior in romantic relationships in the wake of #MeToo "
    "movement?": "q0022",
    "Are you now married, widowed, divorced, separated, or have you never been married?": "q0024",
    "Would you describe your sexual orientation as:": "q0026",
    "Are you:": "q0028",
    "What is the last grade of school you completed?": "q0029",
    "age3": "age3",
}
#: Published column → the raw grouping variable it is built from (None: all men).
PUBLISHED_GROUPS = {
    "Adult Men": None,
    "18 - 34": ("age3", "18 - 34"),
    "35 - 64": ("age3", "35 - 64"),
    "65 and up": ("age3", "65 and up"),
    "White": ("race2", "White"),
    "Non-white": ("race2", "Non-white"),
    "Has children": ("kids", "Has children"),
    "No children": ("kids", "No children"),
    "Straight": ("orientation", "Straight"),
    "Gay/Bisexual": ("orientation", "Gay/Bisexual"),
}
GROUP_VARS = ["age3", "race2", "kids", "orientation"]


def _norm(label: str) -> str:
    """Published labels lost their curly apostrophes to '?' in places; compare without."""
    return re.sub(r"(?<=[A-Za-z])[?’](?=[a-z])", "'", label)


@pytest.fixture(scope="module")
def data_dir() -> Path:
    try:
        return shared_data_dir()
    except FileFormatError as exc:
        pytest.skip(f"FiveThirtyEight data not available (real-data test): {exc}")


@pytest.fixture(scope="module")
def published(data_dir: Path) -> pd.DataFrame:
    return read_masculinity_crosstabs(data_dir)


def crosstab_agreement(
    data_dir: Path, published: pd.DataFrame, *, keep_no_answer: bool, weighted: bool = True
):
    """Compare every non-blank published single-choice cell with ``build_group_items``.

    Returns ``(differences in pp, unmapped cells)``.
    """
    survey = load_masculinity(data_dir, keep_no_answer=keep_no_answer)
    everyone = Group.of(name="Adult Men", age3=list(survey.question("age3").options))
    qids = list(PUBLISHED_TO_RAW.values())
    items = build_group_items(
        survey, qids, by=GROUP_VARS, groups=[everyone], min_n=1, weighted=weighted
    )
    frame = items.frame.set_index(["question_id", "group"])
    cells = published[published["question"].isin(PUBLISHED_TO_RAW) & published["share"].notna()]
    diffs, unmapped = [], []
    for row in cells.itertuples():
        qid = PUBLISHED_TO_RAW[row.question]
        spec = PUBLISHED_GROUPS.get(row.group, "unknown")
        options = [_norm(o) for o in survey.question(qid).options]
        if spec == "unknown" or _norm(row.option) not in options:
            unmapped.append((row.question, row.option, row.group))
            continue
        label = "Adult Men" if spec is None else Group.of(**{spec[0]: spec[1]}).label
        target = frame.loc[(qid, label), "target"]
        share = target[options.index(_norm(row.option))]
        diffs.append(abs(100 * share - 100 * row.share))
    return np.array(diffs), unmapped


@pytest.mark.shared_data
def test_weighted_group_items_reproduce_published_crosstabs(data_dir, published, record_property):
    """Issue 2 acceptance: ≥ 95 % of published single-choice cells within 1 pp."""
    diffs, unmapped = crosstab_agreement(data_dir, published, keep_no_answer=True)
    expected = published["question"].isin(PUBLISHED_TO_RAW) & published["share"].notna()
    assert unmapped == []
    assert len(diffs) == int(expected.sum()) > 500  # every published cell was compared
    within = int((diffs <= 1.0 + 1e-9).sum())
    fraction = within / len(diffs)
    record_property("crosstab_cells_within_1pp", within)
    record_property("crosstab_cells_compared", len(diffs))
    print(
        f"\ncrosstab agreement: {within}/{len(diffs)} cells within 1 pp ({fraction:.1%}); "
        f"{np.mean(diffs <= 0.5 + 1e-9):.1%} within 0.5 pp (rounding); max |diff| "
        f"{diffs.max():.2f} pp, mean {diffs.mean():.3f} pp"
    )
    assert fraction >= 0.95


@pytest.mark.shared_data
def test_published_denominators_include_no_answer(data_dir, published):
    """The published convention: 'No answer' is a row and counts in the denominator.

    Dropping it (the loader's default) shifts the substantive shares, so fewer cells agree:
    this pins down which convention the check above uses, rather than fudging it.
    """
    kept, _ = crosstab_agreement(data_dir, published, keep_no_answer=True)
    dropped, unmapped = crosstab_agreement(data_dir, published, keep_no_answer=False)
    assert unmapped and all(opt == NO_ANSWER for _, opt, _ in unmapped)
    assert np.mean(kept <= 0.5 + 1e-9) > np.mean(dropped <= 0.5 + 1e-9)


@pytest.mark.shared_data
def test_crosstab_check_is_sensitive_to_the_weights(data_dir, published):
    """Unweighted shares miss the published (weighted) ones: the check can fail."""
    unweighted, _ = crosstab_agreement(data_dir, published, keep_no_answer=True, weighted=False)
    assert np.mean(unweighted <= 1.0) < 0.8


@pytest.mark.shared_data
def test_every_single_choice_block_of_the_published_file_is_mapped(published):
    headings = published["question"].drop_duplicates()
    single = [h for h in headings if "select all that apply" not in h.lower()]
    single = [h for h in single if h != "Do you have any children? (Select all that apply.)"]
    assert sorted(single) == sorted(PUBLISHED_TO_RAW)
    assert set(published["group"]) == set(PUBLISHED_GROUPS)


# -- masculinity loader ---------------------------------------------------------------------
@pytest.mark.shared_data
def test_masculinity_loader(data_dir):
    s = load_masculinity(data_dir)
    assert s.n_respondents == 1615
    assert all(q.source == MASCULINITY == s.name for q in s.questions.values())
    q1 = s.question("q0001")
    assert q1.options[0] == "Very masculine" and q1.options[-1] == "Not at all masculine"
    assert q1.ordinal == (1.0, 2.0, 3.0, 4.0)
    assert not s.question("q0024").is_ordinal
    assert s.question("q0007_0004").text.endswith("Cry")
    # "No answer" is missing by default; skip-logic NA stays missing either way
    assert int((~s.answered("q0001")).sum()) == 14
    assert int(s.answered("q0014").sum()) == 1615 - 735 - 1
    assert "You didn't think it was your place" in s.question("q0013").options
    for group_var in ("age3", "race2", "racethn4", "educ3", "educ4", "kids", "orientation"):
        assert group_var in s.questions
    assert not any(qid.startswith(("q0004", "q0008", "q0025")) for qid in s.questions)
    np.testing.assert_allclose(s.weights.sum(), 1615, rtol=1e-3)
    assert (s.weights > 0).all()
    kept = load_masculinity(data_dir, keep_no_answer=True)
    assert kept.question("q0001").options[-1] == NO_ANSWER
    assert kept.question("q0001").ordinal[-1] == -1.0
    assert int(kept.answered("q0001").sum()) == 1615
    assert int(kept.answered("q0014").sum()) == 1615 - 735  # NA is not "No answer"
    assert NO_ANSWER not in kept.question("q0028").options  # nobody gave it


# -- nonvoters loader -----------------------------------------------------------------------
@pytest.mark.shared_data
def test_nonvoters_loader(data_dir):
    s = load_nonvoters(data_dir)
    assert s.n_respondents == 5836
    assert all(q.source == NONVOTERS for q in s.questions.values())
    q23 = s.question("Q23")
    assert q23.options == ("Donald Trump", "Joe Biden", "Unsure") and not q23.is_ordinal
    raw = pd.read_csv(data_dir / "fivethirtyeight-nonvoters" / "nonvoters_data.csv")
    counts = s.answers("Q23").value_counts()
    assert counts["Donald Trump"] == (raw["Q23"] == 1).sum()
    assert counts["Joe Biden"] == (raw["Q23"] == 2).sum()
    assert int((~s.answered("Q23")).sum()) == (raw["Q23"] == -1).sum()
    assert (s.weights > 0).all()
    np.testing.assert_allclose(s.weights.to_numpy(), raw["weight"].to_numpy())
    ordinal = [q for q in s.questions.values() if q.is_ordinal]
    assert {"Q2_1", "Q3_3", "Q8_9", "Q16", "Q25", "educ", "income_cat"} <= {q.id for q in ordinal}
    assert s.question("Q3_1").options == (
        "Strongly agree", "Somewhat agree", "Somewhat disagree", "Strongly disagree"
    )  # fmt: skip
    assert s.question("Q3_1").text.endswith("Systemic racism is a problem in the United States.")
    assert s.question("Q30").options[3] == "Another party"
    assert "Q19_1" not in s.questions and "Q28_1" not in s.questions and "Q1" not in s.questions
    for demo in ("age_group", "educ", "race", "gender", "income_cat", "voter_category"):
        assert s.answered(demo).all()
    assert s.covariates == ["ppage"] and s.data["ppage"].min() >= 18
    items = build_group_items(s, ["Q23"], by="voter_category", min_n=30)
    assert len(items) == 3
    for t in items.targets:
        np.testing.assert_allclose(t.sum(), 1.0)
    kept = load_nonvoters(data_dir, keep_no_answer=True)
    assert kept.question("Q23").options[-1] == NO_ANSWER
    assert int(kept.answered("Q23").sum()) == 5836
    assert int(kept.answered("Q22").sum()) == raw["Q22"].notna().sum()  # asked only if Q20=No


# -- offline: codebook parser and errors ----------------------------------------------------
CODEBOOK = """BASE:  ALL RESPONDENTS
 \n2.\nHow important are each of the following?\n \nRandomize\n1.\nVoting in\nelections\n2.
Serving on a jury\n[Accordion grid - FLIP 1-4;4-1]\n1.\n\u200b  \n\u200bVery important\n2.
Not important\nBASE:  ALL RESPONDENTS\n5.\nDid you vote?\nBanked grid\nYes\nNo
BASE:  ASK IF X\n19.\nWhich would help?\nPlease choose all that apply.\n1.\nA holiday\n2.
Other [specify] [A]\nBASE:  ALL RESPONDENTS\n30.\nParty?\nROTATE 1-2\n1. Republican
2. Another party, please specify … [O]\nVOTER_CATEGORY:\nalways: ...
"""


def test_parse_codebook_grids_banked_and_multi(tmp_path):
    path = tmp_path / "codebook.txt"
    path.write_text(CODEBOOK, encoding="utf-8")
    cb = parse_nonvoters_codebook(path)
    assert cb[2] == (
        "How important are each of the following?",
        ["Voting in elections", "Serving on a jury"],
        ["Very important", "Not important"],
        False,
    )
    assert cb[5] == ("Did you vote?", [], ["Yes", "No"], False)
    assert cb[19][3] is True and cb[19][2] == ["A holiday", "Other"]
    assert cb[30][2] == ["Republican", "Another party"]


def _mini_nonvoters(folder: Path, q5_codes: list[int]) -> Path:
    d = folder / "fivethirtyeight-nonvoters"
    d.mkdir(parents=True)
    (d / "nonvoters_codebook.txt").write_text(CODEBOOK, encoding="utf-8")
    n = len(q5_codes)
    pd.DataFrame({
        "RespId": range(1, n + 1), "weight": [1.0] * n, "Q2_1": [1] * n, "Q2_2": [2] * n,
        "Q5": q5_codes, "Q30": [1] * n, "ppage": [40] * n, "educ": ["College"] * n,
        "race": ["White"] * n, "gender": ["Male"] * n, "income_cat": ["$40-75k"] * n,
        "voter_category": ["always"] * n,
    }).to_csv(d / "nonvoters_data.csv", index=False)  # fmt: skip
    return folder


def test_nonvoters_unknown_code_names_column_and_row(tmp_path):
    folder = _mini_nonvoters(tmp_path, [1, 2, -1, 7])
    with pytest.raises(CodebookError, match=r"row 4, column 'Q5'.*code 7"):
        load_nonvoters(folder)


def test_nonvoters_mini_file_loads(tmp_path):
    s = load_nonvoters(_mini_nonvoters(tmp_path, [1, 2, -1, 2]))
    assert s.question("Q5").options == ("Yes", "No")
    assert s.answers("Q5").tolist()[:2] == ["Yes", "No"] and not s.answered("Q5")[2]
    assert s.question("Q2_1").is_ordinal and s.question("Q2_1").text.endswith("elections")
    assert "Q19" not in s.questions


def test_missing_data_dir_says_where_it_looked(tmp_path, monkeypatch):
    nowhere = tmp_path / "nowhere"
    with pytest.raises(FileFormatError, match=r"looked in.*nowhere"):
        load_masculinity(nowhere)
    with pytest.raises(FileFormatError, match=r"raw-responses\.csv.*no such file"):
        load_masculinity(tmp_path)
    monkeypatch.setenv("SURVEYLM_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path
