"""Distribution files: group answer distributions as :class:`~surveylm.items.ItemSet` s.

Two formats are read and written:

* **SubPOP-style JSONL** (Suh et al. 2025): one JSON object per line with the keys
  ``qkey`` (question id), ``attribute`` (grouping variable), ``group`` (its value),
  ``question`` (text), ``options`` (labels in order), ``ordinal`` (one number per option,
  or ``null``/absent for a nominal question), ``responses`` (the group's distribution over
  ``options``) and ``refusal_rate`` (optional). surveylm also writes and reads the
  optional keys ``n``, ``n_eff``, ``source`` and ``context`` (the group's full
  ``{attribute: [values]}`` conditions, so intersections round-trip).
* **Long CSV**: one row per question × group × option with the columns
  ``question, option, group_var, group, share`` (optional: ``n``, ``n_eff``). Question
  text, option order and ordinal values come from an optional codebook; otherwise the
  text is the question id, options are in order of first appearance, and the question is
  nominal. Options of the codebook missing from a group get share 0.

Items read from a file whose group sizes are unknown get ``n = 0`` and ``n_eff = NaN``
(so a sampling-noise floor is reported as NaN rather than made up) and ``weight = 1``
(every group counts equally when metrics are averaged). A group's shares must sum to 1
within ``tol``; every validation error names the file and the line.
"""

from __future__ import annotations

import ast
import csv
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from surveylm.codebook import Codebook, load_codebook
from surveylm.distributions import check_distribution
from surveylm.errors import CodebookError, DataError, DistributionError, FileFormatError, where
from surveylm.io.atomic import atomic_path
from surveylm.io.textfiles import csv_rows, read_text
from surveylm.items import ItemSet, item_frame
from surveylm.survey import Question

#: Keys every line of a SubPOP-style JSONL file must have.
SUBPOP_REQUIRED = ("qkey", "attribute", "group", "question", "options", "responses")
#: Columns a long distribution CSV must have.
LONG_CSV_COLUMNS = ("question", "option", "group_var", "group", "share")
#: Default tolerance on a group's shares summing to 1 (files often hold rounded shares).
FILE_TOLERANCE = 1e-3
#: How intersections are written: ``attribute = "pid×educ"``, ``group = "Dem × College"``.
INTERSECTION, VALUE_SEP = "×", " × "


def read_distributions(
    path: str | Path, codebook: Codebook | str | Path | None = None, **kwargs: Any
) -> ItemSet:
    """Read a ``.jsonl`` (SubPOP-style) or ``.csv`` (long) distribution file."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return read_subpop_jsonl(path, **kwargs)
    if suffix == ".csv":
        return read_long_csv(path, codebook, **kwargs)
    raise FileFormatError(
        f"{where(file=path)}unsupported distribution file '{suffix}', expected .jsonl or .csv"
    )


# -- SubPOP JSONL -----------------------------------------------------------------------------
def read_subpop_jsonl(
    path: str | Path, *, source: str | None = None, tol: float = FILE_TOLERANCE
) -> ItemSet:
    """Read a SubPOP-style JSONL file into group items (see module docstring).

    Raises:
        FileFormatError: missing/unreadable file, invalid JSON or missing keys on a line.
        DistributionError: responses that are negative, NaN, of the wrong length or not
            summing to 1 within ``tol`` (naming file, line, question and group).
        DataError: a question defined differently on two lines, a duplicate
            question × group, or an empty file.
    """
    path = Path(path)
    source = source or path.stem
    questions: dict[str, Question] = {}
    defined_on: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    refusal: dict[str, float] = {}
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        loc = _loc(path, line_no)
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FileFormatError(f"{loc}invalid JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(rec, dict):
            raise FileFormatError(f"{loc}expected a JSON object, got {type(rec).__name__}")
        absent = [k for k in SUBPOP_REQUIRED if k not in rec]
        if absent:
            raise FileFormatError(f"{loc}missing key(s) {', '.join(absent)}")
        qid = str(rec["qkey"])
        qloc = _loc(path, line_no, qid)
        options = _as_list(rec["options"], "options", qloc)
        ordinal = rec.get("ordinal")
        ordinal = None if ordinal is None else _as_list(ordinal, "ordinal", qloc)
        try:
            q = Question(qid, str(rec["question"]), tuple(options), ordinal,
                         source=str(rec.get("source") or source))  # fmt: skip
        except CodebookError as exc:
            raise CodebookError(f"{loc}{exc}") from None
        if qid in questions and questions[qid] != q:
            raise DataError(
                f"{qloc}defined differently (text, options or ordinal values) than on line "
                f"{defined_on[qid]}"
            )
        questions.setdefault(qid, q)
        defined_on.setdefault(qid, line_no)
        attribute, group = str(rec["attribute"]), str(rec["group"])
        gloc = _loc(path, line_no, qid, f"{attribute} = {group}")
        responses = _as_list(rec["responses"], "responses", gloc)
        try:
            target = check_distribution(responses, q.n_options, context=gloc, tol=tol)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, DistributionError):
                raise
            raise DistributionError(f"{gloc}responses must be numbers ({exc})") from None
        context = rec.get("context") or _context(attribute, group)
        row = _item(q, attribute, group, context, target, rec.get("n"), rec.get("n_eff"), gloc)
        rows.append(row)
        rate = rec.get("refusal_rate")
        if rate is not None:
            if not (isinstance(rate, int | float) and 0 <= rate <= 1):
                raise DistributionError(f"{gloc}refusal_rate must be in [0, 1], got {rate!r}")
            refusal[row["item_id"]] = float(rate)
    return _itemset(rows, questions, path, {"refusal_rate": refusal} if refusal else {})


def write_subpop_jsonl(items: ItemSet, path: str | Path) -> Path:
    """Write group items with known targets as SubPOP-style JSONL (atomically)."""
    refusal = items.summary.get("refusal_rate", {})

    def records() -> Iterator[str]:
        for row, q in _group_rows(items):
            rec = group_record(row, q)
            rec["responses"] = [float(x) for x in row["target"]]
            rec["refusal_rate"] = refusal.get(row["item_id"])
            yield json.dumps(rec, ensure_ascii=False) + "\n"

    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for line in records():
            fh.write(line)
    return path


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


# -- helpers ----------------------------------------------------------------------------------
def _loc(
    path: Path, line: int | None, question: str | None = None, group: str | None = None
) -> str:
    """``"file 'x.jsonl', line 3, question 'q1', group 'party = Dem': "``."""
    parts = [f"file '{path}'"]
    parts += [f"line {line}"] if line is not None else []
    parts += [f"question '{question}'"] if question is not None else []
    parts += [f"group '{group}'"] if group is not None else []
    return ", ".join(parts) + ": "


def _read_csv_rows(path: Path, encoding: str) -> tuple[list[str], list[tuple[int, dict]]]:
    header, rows = csv_rows(read_text(path, encoding), path)
    header = [h.strip() for h in header]
    return header, [(line, dict(zip(header, row, strict=True))) for line, row in rows]


def _as_list(value: Any, key: str, loc: str) -> list[Any]:
    """A JSON list, or a string holding one (as in CSV-derived SubPOP files)."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise FileFormatError(f"{loc}'{key}' must be a list, got {value!r}") from None
    if not isinstance(value, list | tuple):
        raise FileFormatError(f"{loc}'{key}' must be a list, got {value!r}")
    return list(value)


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


def _item(
    q: Question, group_var: str, group: str, context: Mapping[str, Any],
    target: np.ndarray, n: Any, n_eff: Any, loc: str,
) -> dict[str, Any]:  # fmt: skip
    try:
        n_val = int(float(n)) if n not in (None, "") else 0
        n_eff_val = float(n_eff) if n_eff not in (None, "") else float("nan")
    except (TypeError, ValueError):
        raise DataError(f"{loc}n and n_eff must be numbers, got {n!r}, {n_eff!r}") from None
    if n_val < 0 or n_eff_val < 0:
        raise DataError(f"{loc}n and n_eff must be non-negative, got {n_val}, {n_eff_val}")
    ctx = {str(k): [str(x) for x in (v if isinstance(v, list) else [v])]
           for k, v in context.items()}  # fmt: skip
    label = " & ".join(
        f"{a} = {v[0]}" if len(v) == 1 else f"{a} ∈ {{{', '.join(v)}}}" for a, v in ctx.items()
    )
    return {
        "item_id": f"{q.id}|{label}", "kind": "group", "question_id": q.id,
        "source": q.source, "respondent_id": None, "group_var": group_var, "group": label,
        "context": ctx, "target": target, "n": n_val, "n_eff": n_eff_val, "weight": 1.0,
    }  # fmt: skip


def _itemset(
    rows: list[dict[str, Any]], questions: dict[str, Question], path: Path, extra: dict
) -> ItemSet:
    if not rows:
        raise DataError(f"{where(file=path)}no distributions in the file")
    frame = item_frame(rows)
    dup = frame["item_id"].duplicated()
    if dup.any():
        raise DataError(
            f"{where(file=path)}the question × group {frame['item_id'][dup].iloc[0]!r} "
            "appears twice"
        )
    summary = {"kind": "group", "file": str(path), "items": len(rows), **extra}
    return ItemSet(frame, questions, summary)


def _group_rows(items: ItemSet) -> Iterator[tuple[pd.Series, Question]]:
    kinds = items.kinds - {"group"}
    if kinds:
        raise DataError(f"distribution files hold group items only, got {sorted(kinds)} items")
    for i in range(len(items)):
        row = items.frame.iloc[i]
        if row["target"] is None:
            raise DataError(f"{where(item=row['item_id'])}has no target distribution to write")
        yield row, items.questions[row["question_id"]]


def group_record(row: pd.Series, q: Question) -> dict[str, Any]:
    """The fields every group-distribution file format shares for one item: question key
    and text, options, ordinal values, attribute/group, structured context, source, and
    ``n``/``n_eff`` when known (so files round-trip exactly)."""
    attribute, group = _attribute_group(row)
    rec: dict[str, Any] = {
        "qkey": q.id, "attribute": attribute, "group": group, "question": q.text,
        "options": list(q.options), "ordinal": None if q.ordinal is None else list(q.ordinal),
        "context": row["context"], "source": row["source"] or q.source,
    }  # fmt: skip
    if row["n"] > 0:
        rec["n"] = int(row["n"])
    if math.isfinite(row["n_eff"]):
        rec["n_eff"] = float(row["n_eff"])
    return rec


def _attribute_group(row: pd.Series) -> tuple[str, str]:
    """``(attribute, group)`` as written to a file.

    A one-value group gives its value (``("pid", "Democrat")``); an intersection of
    one-value conditions gives ``("pid×educ", "Democrat × College")`` (read back by
    :func:`_context`); anything else (several values per attribute) gives the group
    variable and the group's label.
    """
    ctx = row["context"]
    if all(len(v) == 1 for v in ctx.values()):
        return INTERSECTION.join(ctx), VALUE_SEP.join(str(v[0]) for v in ctx.values())
    return str(row["group_var"]), str(row["group"])


def _context(attribute: str, group: str) -> dict[str, list[str]]:
    """The group conditions encoded by a file's ``(attribute, group)`` pair."""
    attrs, values = attribute.split(INTERSECTION), group.split(VALUE_SEP)
    if len(attrs) > 1 and len(attrs) == len(values):
        return {a: [v] for a, v in zip(attrs, values, strict=True)}
    return {attribute: [group]}
