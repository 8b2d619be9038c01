"""Distribution files: group answer distributions as :class:`~surveylm.items.ItemSet` s.

:func:`read_distributions` reads any of the layouts below, chosen by the file's *content*
(not its suffix), and :func:`read_items` also takes surveylm's item-set Parquet files:

* **SubPOP JSONL** (Suh et al. 2025; SubPOP-Train, SubPOP-Eval, its OpinionQA): one JSON
  object per line (a JSON array is read too) with ``qkey``, ``attribute`` (grouping
  variable), ``group`` (its value), ``question``, ``options``, ``ordinal`` and
  ``responses`` (the group's shares), and ``refusal_rate``. As published:

  - ``options`` ends with a refusal option ("Refused") that has no ordinal value and no
    share: ``ordinal`` and ``responses`` have K − 1 entries and ``responses`` sums to 1
    over the substantive options. The refusal option is dropped from the question, its
    label kept (``summary["refusal_option"]``), and ``refusal_rate`` kept as data beside
    the substantive distribution (``summary["refusal_rate"]``, by item id), as OpinionQA
    keeps the refusal mass apart;
  - ordinal values may be fractional and descending (``[2.0, 1.5, 1.0]``) and some
    substantive-looking options are coded −1 (OpinionQA's convention): they are kept as
    given; the Wasserstein distance orders options by value and drops the −1 options;
  - a line whose shares are all zero or do not sum to 1 within ``tol`` is skipped with one
    warning (``strict=True``: refused), see :mod:`surveylm.io.records`.

  surveylm also writes and reads the optional keys ``n``, ``n_eff``, ``source``,
  ``context`` (the group's full ``{attribute: [values]}`` conditions, so intersections
  round-trip) and ``refusal_rate_known``.
* **Cao et al. 2025 JSON** (:mod:`surveylm.io.cao`).
* **GlobalOpinionQA-style table** (:mod:`surveylm.io.globalopinion`).
* **Long CSV**: one row per question × group × option with the columns
  ``question, option, group_var, group, share`` (optional: ``n``, ``n_eff``). Question
  text, option order and ordinal values come from an optional codebook; otherwise the
  text is the question id, options are in order of first appearance, and the question is
  nominal. Options of the codebook missing from a group get share 0.

Items read from a file whose group sizes are unknown get ``n = 0`` and ``n_eff = NaN``
(so a sampling-noise floor is reported as NaN rather than made up) and ``weight = 1``
(every group counts equally when metrics are averaged). Every validation error names the
file and the line. One distribution array is checked by
:mod:`surveylm.distribution_checks`.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from surveylm.codebook import Codebook, load_codebook
from surveylm.distribution_checks import check_distribution
from surveylm.errors import (
    CodebookError,
    DataError,
    DistributionError,
    FileFormatError,
    shorten,
    where,
)
from surveylm.io.atomic import atomic_path
from surveylm.io.records import (
    SkipLog,
    _as_list,
    _attribute_group,
    _context,
    _group_rows,
    _item,
    _itemset,
    _loc,
    _read_csv_rows,
    find_info,
    group_record,
    json_records,
    record_item,
)
from surveylm.items import ItemSet
from surveylm.survey import Question

#: Keys every line of a SubPOP-style JSONL file must have.
SUBPOP_REQUIRED = ("qkey", "attribute", "group", "question", "options", "responses")
#: Columns a long distribution CSV must have.
LONG_CSV_COLUMNS = ("question", "option", "group_var", "group", "share")
#: Default tolerance on a group's shares summing to 1 (files often hold rounded shares).
FILE_TOLERANCE = 1e-3
#: Labels a trailing option without ordinal value and share may have (SubPOP: "Refused").
REFUSAL_LABEL = re.compile(
    r"^\s*(refused|refusal|refuse to answer|no answer|skipped|prefer not to (say|answer))\s*$",
    re.IGNORECASE,
)
#: The layouts :func:`read_distributions` recognises.
LAYOUTS = ("subpop", "cao", "globalopinionqa", "long-csv")


# -- choosing the reader by content -----------------------------------------------------------
def sniff_layout(path: str | Path) -> str:
    """The layout of a distribution file, from its content: one of :data:`LAYOUTS`, or
    ``"parquet"`` for a surveylm item set.

    Raises:
        FileFormatError: a file in none of these layouts (the message lists what each
            needs).
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(65536)
    except FileNotFoundError:
        raise FileFormatError(f"{where(file=path)}no such file") from None
    except OSError as exc:
        raise FileFormatError(f"{where(file=path)}cannot read the file ({exc})") from None
    if head.startswith(b"PAR1"):
        return "parquet"
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text.startswith(("[", "{")):
        keys = _first_json_keys(text)
        if "options_dist" in keys:
            return "cao"
        if "responses" in keys or "qkey" in keys:
            return "subpop"
        raise FileFormatError(
            f"{where(file=path)}a JSON file in neither known layout: SubPOP needs the keys "
            f"{', '.join(SUBPOP_REQUIRED)}; Cao et al. needs instruction, input, options, "
            f"options_dist (first record has {sorted(keys) or 'no keys'})"
        )
    first = next(csv.reader([text.splitlines()[0] if text else ""]), [])
    header = {h.strip() for h in first}
    if "selections" in header:
        return "globalopinionqa"
    if set(LONG_CSV_COLUMNS) <= header:
        return "long-csv"
    first_line = shorten(text.splitlines()[0] if text else "", 80)
    raise FileFormatError(
        f"{where(file=path)}not a distribution file: expected SubPOP JSONL, Cao et al. JSON, "
        f"a GlobalOpinionQA-style table (question, options, selections) or a long CSV "
        f"({', '.join(LONG_CSV_COLUMNS)}); the first line is {first_line!r}"
    )


def _first_json_keys(text: str) -> set[str]:
    """The keys of the first JSON object in ``text`` (an array's first element, or the first
    line of JSON Lines); empty when it cannot be decoded from the head of the file."""
    decoder = json.JSONDecoder()
    idx = 1 if text.startswith("[") else 0
    while idx < len(text) and text[idx].isspace():
        idx += 1
    try:
        obj, _ = decoder.raw_decode(text, idx)
    except json.JSONDecodeError:
        # a first record longer than the head: look for the telltale keys in it
        return {k for k in ("options_dist", "responses", "qkey") if f'"{k}"' in text}
    return set(obj) if isinstance(obj, dict) else set()


def read_distributions(
    path: str | Path,
    codebook: Codebook | str | Path | None = None,
    *,
    labels: Any = None,
    **kwargs: Any,
) -> ItemSet:
    """Read a distribution file in any layout of the module docstring, chosen by content.

    Args:
        path: The file (any suffix).
        codebook: Codebook of a long CSV (question texts, option order, ordinal values).
        labels: A label table for attributes and groups (:mod:`surveylm.io.labels`).
        **kwargs: Passed to the layout's reader (``source``, ``tol``, ``strict``...).
    """
    layout = sniff_layout(path)
    if layout == "parquet":
        raise FileFormatError(
            f"{where(file=path)}a Parquet item set, not a distribution file; read it with "
            "read_items or ItemSet.read_parquet"
        )
    if layout == "subpop":
        items = read_subpop_jsonl(path, **kwargs)
    elif layout == "cao":
        from surveylm.io.cao import read_cao_json

        items = read_cao_json(path, **kwargs)
    elif layout == "globalopinionqa":
        from surveylm.io.globalopinion import read_globalopinion_csv

        items = read_globalopinion_csv(path, **kwargs)
    else:
        items = read_long_csv(path, codebook, **kwargs)
    items.summary.setdefault("format", layout)
    if labels is not None:
        from surveylm.io.labels import apply_labels

        items = apply_labels(items, labels)
    return items


def read_items(path: str | Path, *, labels: Any = None, **kwargs: Any) -> ItemSet:
    """An item set from a surveylm Parquet file or any distribution file (by content)."""
    if sniff_layout(path) == "parquet":
        items = ItemSet.read_parquet(path)
        if labels is not None:
            from surveylm.io.labels import apply_labels

            items = apply_labels(items, labels)
        return items
    return read_distributions(path, labels=labels, **kwargs)


# -- SubPOP JSONL -----------------------------------------------------------------------------
def _split_refusal(
    options: list[Any], ordinal: list[Any] | None, n_shares: int, loc: str
) -> tuple[list[Any], list[Any] | None, str | None]:
    """Options and ordinal values without SubPOP's trailing refusal option, and its label."""
    if len(options) != n_shares + 1:
        return options, ordinal, None
    label = str(options[-1])
    if not REFUSAL_LABEL.match(label):
        raise DistributionError(
            f"{loc}responses has {n_shares} values but the question has {len(options)} "
            f"options; only a trailing refusal option (e.g. 'Refused') may go without a "
            f"share, the last option is {label!r}"
        )
    if ordinal is not None and len(ordinal) == len(options):
        ordinal = ordinal[:-1]
    return options[:-1], ordinal, label


def read_subpop_jsonl(
    path: str | Path,
    *,
    source: str | None = None,
    tol: float = FILE_TOLERANCE,
    strict: bool = False,
) -> ItemSet:
    """Read a SubPOP JSONL file into group items (see module docstring).

    Args:
        path: The file (JSON Lines, or a JSON array of the same records).
        source: Source name of the questions (default: the file's stem).
        tol: Tolerance on a line's responses summing to 1.
        strict: Refuse a line whose shares are all zero or mis-sum instead of skipping it.

    Raises:
        FileFormatError: missing/unreadable file, invalid JSON or missing keys on a line.
        DistributionError: responses that are negative, NaN or of the wrong length (a
            trailing option other than a refusal without a share), a refusal rate outside
            [0, 1], or (``strict``, or every line) shares not summing to 1 within ``tol``.
        DataError: a question defined differently on two lines, a duplicate
            question × group, or an empty file.
    """
    path = Path(path)
    source = source or path.stem
    log = SkipLog(path, strict)
    questions: dict[str, Question] = {}
    defined_on: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    refusal: dict[str, float] = {}
    refusal_option: dict[str, str] = {}
    for unit, line_no, rec in json_records(path):
        loc = _loc(path, line_no) if unit == "line" else f"file '{path}', record {line_no}: "
        if not isinstance(rec, dict):
            raise FileFormatError(f"{loc}expected a JSON object, got {type(rec).__name__}")
        absent = [k for k in SUBPOP_REQUIRED if k not in rec]
        if absent:
            raise FileFormatError(f"{loc}missing key(s) {', '.join(absent)}")
        qid = str(rec["qkey"])
        qloc = f"{loc[:-2]}, question '{qid}': "
        attribute, group = str(rec["attribute"]), str(rec["group"])
        gloc = f"{qloc[:-2]}, group '{attribute} = {group}': "
        options = _as_list(rec["options"], "options", qloc)
        ordinal = rec.get("ordinal")
        ordinal = None if ordinal in (None, [], "") else _as_list(ordinal, "ordinal", qloc)
        responses = _as_list(rec["responses"], "responses", gloc)
        options, ordinal, refused = _split_refusal(options, ordinal, len(responses), gloc)
        try:
            q = Question(qid, str(rec["question"]), tuple(options),
                         None if ordinal is None else tuple(ordinal),
                         source=str(rec.get("source") or source))  # fmt: skip
        except CodebookError as exc:
            raise CodebookError(f"{loc}{exc}") from None
        if qid in questions and (questions[qid] != q or refusal_option.get(qid) != refused):
            raise DataError(
                f"{qloc}defined differently (text, options, ordinal values or refusal option) "
                f"than on {unit} {defined_on[qid]}"
            )
        questions.setdefault(qid, q)
        defined_on.setdefault(qid, line_no)
        if refused is not None:
            refusal_option[qid] = refused
        rate = rec.get("refusal_rate")
        if rate is not None and not (isinstance(rate, int | float) and 0 <= rate <= 1):
            raise DistributionError(f"{gloc}refusal_rate must be in [0, 1], got {rate!r}")
        row = record_item(q, rec, attribute, group, responses, gloc, "responses", tol=tol,
                          scale=1.0, log=log)  # fmt: skip
        if row is None:
            continue
        rows.append(row)
        if rate is not None and rec.get("refusal_rate_known", True) is not False:
            refusal[row["item_id"]] = float(rate)
    extra = {"format": "subpop", **log.finish(len(rows)), "refusal_rate": refusal,
             "refusal_option": refusal_option}  # fmt: skip
    return _itemset(rows, questions, path, extra)


def write_subpop_jsonl(
    items: ItemSet, path: str | Path, *, refusal_option: str | None = "Refused"
) -> Path:
    """Write group items with known targets as SubPOP JSONL (atomically).

    The layout SubPOP's own scripts read: ``options`` ends with the refusal option (the label
    the file was read with, else ``refusal_option``), ``ordinal`` and ``responses`` cover the
    substantive options, and ``refusal_rate`` is a number — SubPOP appends it to the
    responses. Where the refusal rate is not known (items built from a survey) it is written
    as 0.0 with ``"refusal_rate_known": false``, which surveylm reads back as unknown.

    Args:
        items: Group items with targets.
        path: Output file.
        refusal_option: Label of the appended refusal option; ``None`` writes surveylm's
            plain layout (K options, K responses, ``refusal_rate`` only where known).
    """
    refusal = find_info(items.summary, "refusal_rate")
    labels = find_info(items.summary, "refusal_option")

    def records() -> Iterator[str]:
        for row, q in _group_rows(items):
            rec = group_record(row, q)
            rec["responses"] = [float(x) for x in row["target"]]
            rate = refusal.get(row["item_id"])
            label = labels.get(q.id, refusal_option)
            if label is not None:
                rec["options"] = [*rec["options"], label]
                rec["refusal_rate"] = 0.0 if rate is None else rate
                if rate is None:
                    rec["refusal_rate_known"] = False
            else:
                rec["refusal_rate"] = rate
            yield json.dumps(rec, ensure_ascii=False) + "\n"

    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for line in records():
            fh.write(line)
    return path


def refusal_rates(items: ItemSet) -> dict[str, float]:
    """The refusal rate of each item whose file gave one (``{item_id: rate}``)."""
    return find_info(items.summary, "refusal_rate")


# -- long CSV ---------------------------------------------------------------------------------
def read_long_csv(
    path: str | Path,
    codebook: Codebook | str | Path | None = None,
    *,
    source: str | None = None,
    tol: float = FILE_TOLERANCE,
    encoding: str = "utf-8",
) -> ItemSet:
    """Read a long distribution CSV (``question, option, group_var, group, share``).

    Raises:
        FileFormatError: missing/unreadable/non-UTF-8 file, missing columns, ragged rows.
        DistributionError: a share that is not a non-negative number, or a group whose
            shares do not sum to 1 within ``tol`` (naming file, question and group).
        DataError: an option not in the codebook, or the same option twice for a group.
    """
    path = Path(path)
    cb = load_codebook(codebook) if isinstance(codebook, str | Path) else codebook
    source = source or (cb.name if cb and cb.name else path.stem)
    header, records = _read_csv_rows(path, encoding)
    absent = [c for c in LONG_CSV_COLUMNS if c not in header]
    if absent:
        raise FileFormatError(
            f"{where(file=path)}missing column(s) {', '.join(absent)}; a long distribution CSV "
            f"has the columns {', '.join(LONG_CSV_COLUMNS)}"
        )
    cells: dict[tuple[str, str, str], dict[str, float]] = {}
    first_line: dict[tuple[str, str, str], int] = {}
    sizes: dict[tuple[str, str, str], tuple[Any, Any]] = {}
    seen_options: dict[str, list[str]] = {}
    for line_no, rec in records:
        qid, option = rec["question"], rec["option"]
        key = (qid, rec["group_var"], rec["group"])
        loc = _loc(path, line_no, qid, f"{key[1]} = {key[2]}")
        try:
            share = float(rec["share"])
        except ValueError:
            raise DistributionError(f"{loc}share {rec['share']!r} is not a number") from None
        if not math.isfinite(share) or share < 0:
            raise DistributionError(f"{loc}share must be a non-negative number, got {share!r}")
        group_cells = cells.setdefault(key, {})
        if option in group_cells:
            raise DataError(f"{loc}option {option!r} appears twice")
        group_cells[option] = share
        first_line.setdefault(key, line_no)
        sizes.setdefault(key, (rec.get("n") or None, rec.get("n_eff") or None))
        opts = seen_options.setdefault(qid, [])
        if option not in opts:
            opts.append(option)
    questions = {qid: _question_from_codebook(qid, opts, cb, source, path)
                 for qid, opts in seen_options.items()}  # fmt: skip
    rows = []
    for key, group_cells in cells.items():
        qid, group_var, group = key
        q = questions[qid]
        loc = _loc(path, None, qid, f"{group_var} = {group}")
        loc = f"{loc[:-2]} (from line {first_line[key]}): "
        unknown = [o for o in group_cells if o not in q.options]
        if unknown:
            raise DataError(f"{loc}option {unknown[0]!r} is not one of {list(q.options)}")
        target = check_distribution([group_cells.get(o, 0.0) for o in q.options],
                                    q.n_options, context=loc, tol=tol)  # fmt: skip
        n, n_eff = sizes[key]
        rows.append(_item(q, group_var, group, _context(group_var, group), target, n, n_eff, loc))
    return _itemset(rows, questions, path, {})


def write_long_csv(items: ItemSet, path: str | Path) -> Path:
    """Write group items with known targets as a long CSV (atomically)."""
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*LONG_CSV_COLUMNS, "n", "n_eff"])
        for row, q in _group_rows(items):
            group_var, group = _attribute_group(row)
            n = int(row["n"]) if row["n"] > 0 else ""
            n_eff = repr(float(row["n_eff"])) if math.isfinite(row["n_eff"]) else ""
            for option, share in zip(q.options, row["target"], strict=True):
                writer.writerow([q.id, option, group_var, group, repr(float(share)), n, n_eff])
    return path


def _question_from_codebook(
    qid: str, seen: list[str], cb: Codebook | None, source: str, path: Path
) -> Question:
    spec = cb.questions.get(qid) if cb else None
    if cb is not None and spec is None:
        raise DataError(f"{where(file=path, question=qid)}not in the codebook")
    options = (spec.options or list(dict.fromkeys(spec.code_map().values()))) if spec else []
    options = options or seen
    ordinal = spec.ordinal_values(options) if spec else None
    try:
        return Question(qid, (spec.text if spec else None) or qid, tuple(options), ordinal,
                        source=source, label=spec.label if spec else None)  # fmt: skip
    except CodebookError as exc:
        raise CodebookError(f"{where(file=path)}{exc}") from None
