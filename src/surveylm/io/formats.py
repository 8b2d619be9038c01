"""Two more group-distribution formats: Cao et al.'s JSON and a GlobalOpinionQA-style table.

* **Cao et al. 2025 JSON** — one record per question × group with the keys
  ``instruction`` (who answers, e.g. a country), ``input`` (the question, often with its
  lettered options), ``options`` (labels in order) and ``options_dist`` (the group's
  answer distribution **in percent**). A JSON array or JSON Lines. surveylm writes, and
  reads when present, the extra keys ``qkey``, ``question``, ``attribute``, ``group``,
  ``ordinal``, ``context``, ``n`` and ``n_eff`` so files round-trip exactly. Without them
  the question id is derived from the ``input`` text (a short stable hash) and the group
  is the ``country`` key or, failing that, the instruction itself
  (``group_var = "instruction"``).
* **GlobalOpinionQA-style table** (Durmus et al. 2023) — a CSV with one row per question
  and the columns ``question`` (text), ``options`` (a Python/JSON list of labels) and
  ``selections`` (a mapping country → shares over the options, either a plain dict
  literal or the ``defaultdict(<class 'list'>, {...})`` repr of the released file).
  Optional columns ``qkey``, ``source`` and ``ordinal``. Groups are countries
  (``group_var = "country"``). Shares in the released file do not always sum to 1; a
  row within ``tol`` is renormalised, otherwise it is an error naming file, line,
  question and country.

Both writers are atomic (:mod:`surveylm.io.atomic`).
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from surveylm.distributions import check_distribution
from surveylm.errors import CodebookError, DataError, DistributionError, FileFormatError, where
from surveylm.io.atomic import atomic_path, atomic_write_text
from surveylm.io.distributions import (
    _as_list,
    _attribute_group,
    _context,
    _group_rows,
    _item,
    _itemset,
    _loc,
    _read_csv_rows,
    group_record,
)
from surveylm.io.textfiles import read_text
from surveylm.items import ItemSet
from surveylm.prompts import option_letters
from surveylm.survey import Question

__all__ = [
    "CAO_REQUIRED",
    "GOQA_COLUMNS",
    "read_cao_json",
    "read_globalopinion_csv",
    "write_cao_json",
    "write_globalopinion_csv",
]

#: Keys every Cao et al. record must have.
CAO_REQUIRED = ("instruction", "input", "options", "options_dist")
#: Columns a GlobalOpinionQA-style table must have.
GOQA_COLUMNS = ("question", "options", "selections")


def _question_id(text: str) -> str:
    return "q_" + hashlib.sha1(text.strip().encode("utf-8")).hexdigest()[:10]


def _numbers(values: list[Any], loc: str, what: str) -> np.ndarray:
    try:
        arr = np.asarray([float(v) for v in values], dtype=float)
    except (TypeError, ValueError):
        raise DistributionError(f"{loc}{what} must be numbers, got {values!r}") from None
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise DistributionError(f"{loc}{what} must be finite and non-negative, got {values!r}")
    return arr


def _add_question(
    questions: dict[str, Question], defined: dict[str, str], q: Question, loc: str, here: str
) -> None:
    if q.id in questions and questions[q.id] != q:
        raise DataError(
            f"{loc}defined differently (text, options or ordinal) than at {defined[q.id]}"
        )
    questions.setdefault(q.id, q)
    defined.setdefault(q.id, here)


# -- Cao et al. JSON --------------------------------------------------------------------------
def _cao_records(path: Path) -> list[tuple[str, int, Any]]:
    """``(unit, number, record)`` from a JSON array (unit "record") or JSON Lines ("line")."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"{where(file=path)}invalid JSON ({exc.msg}, line {exc.lineno})"
            raise FileFormatError(msg) from None
        return [("record", i, rec) for i, rec in enumerate(data, start=1)]
    out = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(("line", line_no, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise FileFormatError(f"{_loc(path, line_no)}invalid JSON ({exc.msg})") from None
    return out


def read_cao_json(path: str | Path, *, source: str | None = None, tol: float = 0.5) -> ItemSet:
    """Read Cao et al.'s JSON (array or JSON Lines) into group items (module docstring).

    Args:
        path: The file.
        source: Source name of the questions (default: the file's stem).
        tol: Tolerance, in percentage points, on ``options_dist`` summing to 100.

    Raises:
        FileFormatError: unreadable file, invalid JSON, a missing key, a non-list field.
        DistributionError: percentages that are negative, of the wrong length or not
            summing to 100 within ``tol`` (naming file, record/line, question and group).
        DataError: a question defined differently twice, a duplicate question × group.
    """
    path = Path(path)
    source = source or path.stem
    questions: dict[str, Question] = {}
    defined: dict[str, str] = {}
    rows = []
    for unit, num, rec in _cao_records(path):
        here = f"{unit} {num}"
        loc = f"file '{path}', {here}: "
        if not isinstance(rec, dict):
            raise FileFormatError(f"{loc}expected a JSON object, got {type(rec).__name__}")
        absent = [k for k in CAO_REQUIRED if k not in rec]
        if absent:
            raise FileFormatError(f"{loc}missing key(s) {', '.join(absent)}")
        text = str(rec.get("question") or rec["input"])
        qid = str(rec.get("qkey") or _question_id(str(rec["input"])))
        qloc = f"{loc[:-2]}, question '{qid}': "
        options = [str(o) for o in _as_list(rec["options"], "options", qloc)]
        ordinal = rec.get("ordinal")
        ordinal = None if ordinal is None else _as_list(ordinal, "ordinal", qloc)
        try:
            q = Question(
                qid, text, tuple(options), ordinal, source=str(rec.get("source") or source)
            )
        except CodebookError as exc:
            raise CodebookError(f"{qloc}{exc}") from None
        _add_question(questions, defined, q, qloc, here)
        if "attribute" in rec and "group" in rec:
            attribute, group = str(rec["attribute"]), str(rec["group"])
        elif "country" in rec:
            attribute, group = "country", str(rec["country"])
        else:
            attribute, group = "instruction", str(rec["instruction"])
        gloc = f"{qloc[:-2]}, group '{attribute} = {group}': "
        pct = _numbers(_as_list(rec["options_dist"], "options_dist", gloc), gloc, "options_dist")
        if len(pct) != q.n_options:
            raise DistributionError(
                f"{gloc}options_dist has {len(pct)} values for {q.n_options} options"
            )
        if abs(pct.sum() - 100.0) > tol:
            raise DistributionError(
                f"{gloc}options_dist must be percentages summing to 100 (±{tol}), sums to "
                f"{pct.sum():.4g}"
            )
        target = check_distribution(pct / pct.sum(), q.n_options, context=gloc)
        context = rec.get("context") or _context(attribute, group)
        rows.append(
            _item(q, attribute, group, context, target, rec.get("n"), rec.get("n_eff"), gloc)
        )
    return _itemset(rows, questions, path, {"format": "cao-json"})


def _instruction(context: Mapping[str, list[str]]) -> str:
    who = " and ".join(f"{a} is {' or '.join(v)}" for a, v in context.items())
    return (
        f"Answer the following survey question as a person whose {who} would. "
        "Give the distribution of answers across the options."
    )


def write_cao_json(items: ItemSet, path: str | Path, *, decimals: int | None = None) -> Path:
    """Write group items with known targets as a Cao et al. JSON array (atomically).

    Args:
        items: Group items with targets.
        path: Output file.
        decimals: Round the percentages (``None`` = full precision, exact round trip).
    """
    records = []
    for row, q in _group_rows(items):
        letters = option_letters(q.n_options)
        listed = "\n".join(f"{ltr}. {o}" for ltr, o in zip(letters, q.options, strict=True))
        pct = [100.0 * float(x) for x in row["target"]]
        if decimals is not None:
            pct = [round(x, decimals) for x in pct]
        rec = {
            "instruction": _instruction(row["context"]),
            "input": f"{q.text}\n{listed}",
            "options_dist": pct,
            **group_record(row, q),
        }
        records.append(rec)
    atomic_write_text(path, json.dumps(records, ensure_ascii=False, indent=1) + "\n")
    return Path(path)


# -- GlobalOpinionQA-style table --------------------------------------------------------------
_DEFAULTDICT = re.compile(r"^\s*defaultdict\(\s*<class '[^']*'>\s*,\s*(.*)\)\s*$", re.DOTALL)


def _selections(value: str, loc: str) -> dict[str, list[Any]]:
    m = _DEFAULTDICT.match(value)
    body = m.group(1) if m else value
    try:
        parsed = ast.literal_eval(body)
    except (ValueError, SyntaxError):
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError:
            raise FileFormatError(
                f"{loc}'selections' must be a mapping country → shares, got {value[:80]!r}"
            ) from None
    if not isinstance(parsed, dict):
        raise FileFormatError(f"{loc}'selections' must be a mapping, got {type(parsed).__name__}")
    return {str(k): list(v) if isinstance(v, list | tuple) else v for k, v in parsed.items()}


def read_globalopinion_csv(
    path: str | Path, *, source: str | None = None, tol: float = 0.02, encoding: str = "utf-8"
) -> ItemSet:
    """Read a GlobalOpinionQA-style table into country group items (module docstring).

    Args:
        path: The CSV file.
        source: Source name when the file has no ``source`` column (default: the stem).
        tol: How far a country's shares may be from summing to 1 (they are renormalised).
        encoding: Text encoding of the file.

    Raises:
        FileFormatError: unreadable file, missing columns, unparsable options/selections.
        DistributionError: shares negative, of the wrong length or off by more than ``tol``.
        DataError: a question defined differently twice, a duplicate question × country.
    """
    path = Path(path)
    header, records = _read_csv_rows(path, encoding)
    absent = [c for c in GOQA_COLUMNS if c not in header]
    if absent:
        raise FileFormatError(
            f"{where(file=path)}missing column(s) {', '.join(absent)}; a GlobalOpinionQA-style "
            f"table has the columns {', '.join(GOQA_COLUMNS)}"
        )
    questions: dict[str, Question] = {}
    defined: dict[str, str] = {}
    rows = []
    for line_no, rec in records:
        text = rec["question"]
        qid = rec.get("qkey") or _question_id(text)
        qloc = _loc(path, line_no, qid)
        options = [str(o) for o in _as_list(rec["options"], "options", qloc)]
        ordinal = _as_list(rec["ordinal"], "ordinal", qloc) if rec.get("ordinal") else None
        src = rec.get("source") or source or path.stem
        try:
            q = Question(qid, text, tuple(options), ordinal, source=src)
        except CodebookError as exc:
            raise CodebookError(f"{qloc}{exc}") from None
        _add_question(questions, defined, q, qloc, f"line {line_no}")
        for country, shares in _selections(rec["selections"], qloc).items():
            gloc = _loc(path, line_no, qid, f"country = {country}")
            if not isinstance(shares, list):
                raise FileFormatError(f"{gloc}shares must be a list, got {shares!r}")
            arr = _numbers(shares, gloc, "shares")
            if len(arr) != q.n_options:
                raise DistributionError(f"{gloc}{len(arr)} shares for {q.n_options} options")
            if abs(arr.sum() - 1.0) > tol:
                raise DistributionError(
                    f"{gloc}shares must sum to 1 (±{tol}), sum to {arr.sum():.4g}"
                )
            target = check_distribution(arr / arr.sum(), q.n_options, context=gloc)
            ctx = _context("country", country)
            rows.append(_item(q, "country", country, ctx, target, None, None, gloc))
    return _itemset(rows, questions, path, {"format": "globalopinionqa"})


def write_globalopinion_csv(items: ItemSet, path: str | Path) -> Path:
    """Write group items as a GlobalOpinionQA-style table (one row per question, atomically).

    Every group becomes a key of ``selections`` (its one value when the group is a single
    condition, e.g. a country; otherwise its label). Columns ``qkey``, ``source`` and
    ``ordinal`` are added so the file reads back to the same questions.
    """
    by_question: dict[str, dict[str, list[float]]] = {}
    for row, q in _group_rows(items):
        _, group = _attribute_group(row)
        sel = by_question.setdefault(q.id, {})
        if group in sel:
            raise DataError(f"{where(question=q.id)}two groups are both written as {group!r}")
        sel[group] = [float(x) for x in row["target"]]
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*GOQA_COLUMNS, "qkey", "source", "ordinal"])
        for qid, sel in by_question.items():
            q = items.questions[qid]
            ordinal = "" if q.ordinal is None else json.dumps(list(q.ordinal))
            writer.writerow([q.text, json.dumps(list(q.options), ensure_ascii=False),
                             repr(sel), q.id, q.source or "", ordinal])  # fmt: skip
    return path
