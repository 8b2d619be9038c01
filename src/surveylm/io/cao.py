"""Cao et al. 2025's JSON distribution files (``sft_wvs_*.json``, ``global_pew_test.json``).

Each record is one question × country::

    {"id": 17,                      # the question's id: an int in one file, a string in another
     "instruction": "How would someone from Mexico answer the following question:\n\n",
     "input": "<question> \nHere are the options: \n",
     "options": ["(A)Very favorable", "(B)Somewhat favorable", ...],
     "options_dist": {"B": 64.8, "A": 15.5, ...},   # letter → share, in any key order
     "data_type": "train"}

How the reader takes it (:func:`read_cao_json`):

* the **group** is the country parsed from the instruction (``country = Mexico``; a label
  such as "Bolivia (Non-national sample)" stays its own group), not the instruction;
* the **question** is ``id`` (as a string: ``17`` and ``"17"`` are one question), its text
  ``input`` without the "Here are the options:" trailer, its options the labels without
  their ``(A)`` prefix; an id that comes with two different texts or option lists is read
  as two questions (``17`` and ``17#2``) with a warning;
* **shares** are percent in the WVS files and fractions in the Pew file: the unit is the
  file's (``scale="auto"``: percent when the median record sums to more than 1.5) unless
  given; a letter missing from ``options_dist`` has share 0, a letter that is not an option
  is an error;
* a record whose shares are all zero (8 in the Pew file) or do not sum to 1 within ``tol``
  (one Pew record sums to 1.07) is skipped with one warning, or refused under ``strict``
  (:mod:`surveylm.io.records`); ``data_type`` is kept per item (``summary["data_type"]``).

surveylm's writer (:func:`write_cao_json`) produces the same layout and adds the keys
``qkey``, ``question``, ``attribute``, ``group``, ``ordinal``, ``context``, ``source``,
``n`` and ``n_eff``, which the reader prefers when present, so files round-trip exactly.
Older surveylm files (``options_dist`` a list in percent, options without letters) read too.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from surveylm.errors import CodebookError, DataError, DistributionError, FileFormatError
from surveylm.io.atomic import atomic_write_text
from surveylm.io.records import (
    SkipLog,
    _as_list,
    _group_rows,
    _itemset,
    find_info,
    group_record,
    json_records,
    record_item,
)
from surveylm.items import ItemSet
from surveylm.prompts import option_letters
from surveylm.survey import Question

__all__ = ["CAO_REQUIRED", "QuestionIdWarning", "country_of", "read_cao_json", "write_cao_json"]

#: Keys every Cao et al. record must have.
CAO_REQUIRED = ("instruction", "input", "options", "options_dist")
#: Default relative tolerance on a record's shares summing to 1 (or 100).
CAO_TOLERANCE = 0.01


class QuestionIdWarning(UserWarning):
    """One question id of a Cao et al. file names questions with different texts/options."""


_COUNTRY = re.compile(r"^\s*How would someone from (.+?) answer the following question\s*:")
_TRAILER = re.compile(r"\s*Here are the options:\s*$")
_LETTERED = re.compile(r"^\s*\(([A-Z])\)\s?(.*)$", re.DOTALL)


def country_of(instruction: str) -> str | None:
    """The country of an instruction "How would someone from X answer ...", else ``None``."""
    m = _COUNTRY.match(instruction)
    return m.group(1).strip() if m else None


def _question_id(text: str) -> str:
    return "q_" + hashlib.sha1(text.strip().encode("utf-8")).hexdigest()[:10]


def _options(raw: list[Any], loc: str) -> tuple[list[str], list[str]]:
    """``(letters, labels)`` of ``["(A)text", ...]`` (or of plain labels, lettered A, B...)."""
    matches = [_LETTERED.match(str(o)) for o in raw]
    if all(matches):
        letters = [m.group(1) for m in matches]  # type: ignore[union-attr]
        if len(set(letters)) != len(letters):
            raise FileFormatError(f"{loc}options repeat a letter: {raw!r}")
        return letters, [m.group(2).strip() for m in matches]  # type: ignore[union-attr]
    if any(matches):
        raise FileFormatError(f"{loc}options mix '(A)text' and plain labels: {raw!r}")
    return option_letters(len(raw)), [str(o) for o in raw]


def _shares(dist: Any, letters: list[str], loc: str) -> list[Any]:
    """``options_dist`` in option order (a dict by letter, or a list already in order)."""
    if isinstance(dist, Mapping):
        unknown = [k for k in dist if str(k) not in letters]
        if unknown:
            raise DistributionError(
                f"{loc}options_dist has letter(s) {unknown} that are not options "
                f"({', '.join(letters)})"
            )
        by_letter = {str(k): v for k, v in dist.items()}
        return [by_letter.get(ltr, 0.0) for ltr in letters]
    return _as_list(dist, "options_dist", loc)


def _group(rec: Mapping[str, Any]) -> tuple[str, str]:
    if "attribute" in rec and "group" in rec:
        return str(rec["attribute"]), str(rec["group"])
    if "country" in rec:
        return "country", str(rec["country"])
    country = country_of(str(rec["instruction"]))
    if country is not None:
        return "country", country
    return "instruction", str(rec["instruction"])


def _total(values: list[Any]) -> float:
    try:
        return float(sum(float(v) for v in values))
    except (TypeError, ValueError):
        return float("nan")


def read_cao_json(
    path: str | Path,
    *,
    source: str | None = None,
    tol: float = CAO_TOLERANCE,
    scale: Literal["auto", "percent", "fraction"] = "auto",
    strict: bool = False,
) -> ItemSet:
    """Read a Cao et al. JSON file (array or JSON Lines) into country group items.

    Args:
        path: The file.
        source: Source name of the questions (default: the file's stem).
        tol: Relative tolerance on a record's shares summing to 100 % (renormalised within).
        scale: Unit of ``options_dist`` (``"auto"``: the file's, see module docstring).
        strict: Refuse a record whose shares are all zero or mis-sum instead of skipping it.

    Raises:
        FileFormatError: unreadable file, invalid JSON, a missing key, a non-list field,
            options that repeat a letter.
        DistributionError: shares that are negative, NaN, of the wrong length or under a
            letter that is no option; all-zero or mis-summing shares under ``strict`` (or
            in every record).
        DataError: a duplicate question × group, or no record.
    """
    path = Path(path)
    source = source or path.stem
    parsed = []
    for unit, num, rec in json_records(path):
        loc = f"file '{path}', {unit} {num}: "
        if not isinstance(rec, dict):
            raise FileFormatError(f"{loc}expected a JSON object, got {type(rec).__name__}")
        absent = [k for k in CAO_REQUIRED if k not in rec]
        if absent:
            raise FileFormatError(f"{loc}missing key(s) {', '.join(absent)}")
        raw_id = rec.get("qkey", rec.get("id"))
        qid = str(raw_id) if raw_id not in (None, "") else _question_id(str(rec["input"]))
        qloc = f"{loc[:-2]}, question '{qid}': "
        letters, labels = _options(_as_list(rec["options"], "options", qloc), qloc)
        attribute, group = _group(rec)
        gloc = f"{qloc[:-2]}, group '{attribute} = {group}': "
        shares = _shares(rec["options_dist"], letters, gloc)
        parsed.append((f"{unit} {num}", rec, qid, raw_id, labels, attribute, group, shares))
    totals = [t for *_, shares in parsed if (t := _total(shares)) > 0]
    if scale == "auto":
        factor = 100.0 if totals and float(np.median(totals)) > 1.5 else 1.0
    else:
        factor = 100.0 if scale == "percent" else 1.0
    log = SkipLog(path, strict)
    questions: dict[str, Question] = {}
    variants: dict[str, list[str]] = {}
    rows, data_type, ids = [], {}, {}
    for here, rec, qid, raw_id, labels, attribute, group, shares in parsed:
        text = str(rec.get("question") or _TRAILER.sub("", str(rec["input"]))).strip()
        ordinal = rec.get("ordinal")
        ordinal = None if ordinal is None else _as_list(ordinal, "ordinal", f"{here}: ")
        loc = f"file '{path}', {here}, question '{qid}': "
        try:
            q = Question(qid, text, tuple(labels), None if ordinal is None else tuple(ordinal),
                         source=str(rec.get("source") or source))  # fmt: skip
        except CodebookError as exc:
            raise CodebookError(f"{loc}{exc}") from None
        if "qkey" in rec:  # surveylm's own key: one definition per id
            if qid in questions and questions[qid] != q:
                raise DataError(f"{loc}defined differently (text, options or ordinal) than before")
            questions.setdefault(qid, q)
        else:
            q = _variant(q, questions, variants)
        gloc = f"file '{path}', {here}, question '{q.id}', group '{attribute} = {group}': "
        row = record_item(q, rec, attribute, group, shares, gloc, "options_dist", tol=tol,
                          scale=factor, log=log)  # fmt: skip
        if row is None:
            continue
        rows.append(row)
        if rec.get("data_type") is not None:
            data_type[row["item_id"]] = str(rec["data_type"])
        if raw_id is not None and "qkey" not in rec:
            ids[q.id] = raw_id
    _warn_variants(path, variants)
    extra = {"format": "cao", "scale": "percent" if factor == 100 else "fraction",
             **log.finish(len(rows)), "data_type": data_type, "cao_id": ids}  # fmt: skip
    return _itemset(rows, questions, path, extra)


def _variant(
    q: Question, questions: dict[str, Question], variants: dict[str, list[str]]
) -> Question:
    """``q`` under its id, or under ``id#k`` when the id already names another question."""
    names = variants.setdefault(q.id, [q.id])
    for name in names:
        known = questions.get(name)
        if known is None or known == _renamed(q, name):
            questions.setdefault(name, _renamed(q, name))
            return questions[name]
    name = f"{q.id}#{len(names) + 1}"
    names.append(name)
    questions[name] = _renamed(q, name)
    return questions[name]


def _renamed(q: Question, qid: str) -> Question:
    return q if q.id == qid else Question(qid, q.text, q.options, q.ordinal, q.source, q.label)


def _warn_variants(path: Path, variants: dict[str, list[str]]) -> None:
    split = {k: v for k, v in variants.items() if len(v) > 1}
    if split:
        shown = "; ".join(f"{k} → {', '.join(v)}" for k, v in list(split.items())[:3])
        warnings.warn(
            f"file '{path}': {len(split)} question id(s) come with different texts or options "
            f"and are read as separate questions: {shown}",
            QuestionIdWarning,
            stacklevel=3,
        )


def _instruction(context: Mapping[str, list[str]]) -> str:
    if list(context) == ["country"] and len(context["country"]) == 1:
        who = f"from {context['country'][0]}"
    else:
        who = "whose " + " and whose ".join(f"{a} is {' or '.join(v)}" for a, v in context.items())
    return f"How would someone {who} answer the following question:\n\n"


def write_cao_json(
    items: ItemSet, path: str | Path, *, percent: bool = True, decimals: int | None = None
) -> Path:
    """Write group items with known targets in Cao et al.'s layout (a JSON array, atomically).

    Args:
        items: Group items with targets.
        path: Output file.
        percent: Shares in percent (the WVS files) or, ``False``, fractions (the Pew file).
        decimals: Round the shares (``None`` = full precision, exact round trip).
    """
    data_type = find_info(items.summary, "data_type")
    ids = find_info(items.summary, "cao_id")
    records = []
    for row, q in _group_rows(items):
        letters = option_letters(q.n_options)
        shares = [(100.0 if percent else 1.0) * float(x) for x in row["target"]]
        if decimals is not None:
            shares = [round(x, decimals) for x in shares]
        rec: dict[str, Any] = {
            "id": ids.get(q.id, q.id),
            "instruction": _instruction(row["context"]),
            "input": f"{q.text} \nHere are the options: \n",
            "options": [f"({ltr}){o}" for ltr, o in zip(letters, q.options, strict=True)],
            "options_dist": dict(zip(letters, shares, strict=True)),
        }
        if row["item_id"] in data_type:
            rec["data_type"] = data_type[row["item_id"]]
        extra = group_record(row, q)
        del extra["options"]
        records.append({**rec, **extra})
    atomic_write_text(path, json.dumps(records, ensure_ascii=False, indent=1) + "\n")
    return Path(path)
