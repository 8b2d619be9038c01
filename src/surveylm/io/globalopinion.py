"""GlobalOpinionQA-style CSV tables of group distributions: reader and writer.

One of the layouts :func:`surveylm.io.distributions.read_distributions` reads (Cao et al.'s
JSON is :mod:`surveylm.io.cao`, the shared record helpers :mod:`surveylm.io.records`).

* **GlobalOpinionQA-style table** (Durmus et al. 2023) — a CSV with one row per question
  and the columns ``question`` (text), ``options`` (a Python/JSON list of labels) and
  ``selections`` (a mapping country → shares over the options, either a plain dict
  literal or the ``defaultdict(<class 'list'>, {...})`` repr of the released file).
  Optional columns ``qkey``, ``source`` and ``ordinal``. Groups are countries
  (``group_var = "country"``). Shares in the released file do not always sum to 1; a
  row within ``tol`` is renormalised, otherwise it is an error naming file, line,
  question and country.

The writer is atomic (:mod:`surveylm.io.atomic`).
"""

from __future__ import annotations

import ast
import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from surveylm.distribution_checks import check_distribution
from surveylm.errors import CodebookError, DataError, DistributionError, FileFormatError, where
from surveylm.io.atomic import atomic_path
from surveylm.io.cao import _question_id
from surveylm.io.records import (
    _as_list,
    _attribute_group,
    _context,
    _group_rows,
    _item,
    _itemset,
    _loc,
    _read_csv_rows,
)
from surveylm.items import ItemSet
from surveylm.survey import Question

__all__ = [
    "GOQA_COLUMNS",
    "read_globalopinion_csv",
    "write_globalopinion_csv",
]

#: Columns a GlobalOpinionQA-style table must have.
GOQA_COLUMNS = ("question", "options", "selections")


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
            q = Question(qid, text, tuple(options), None if ordinal is None else tuple(ordinal),
                         source=src)  # fmt: skip
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
