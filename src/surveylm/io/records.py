"""What every group-distribution file reader and writer shares.

Locations for error messages (file, line, question, group), the item row built from one
record, the checks on one record's shares, and the **policy for damaged records** that
real published files contain (Cao et al.'s Pew file has records whose shares are all zero
or sum to 1.07): such a record is *skipped*, and the reader warns once
(:class:`SkippedRecordsWarning`), counting them and naming the first few; with
``strict=True`` the first one is an error instead. A file in which no record survives is
an error either way (nothing is half-read). Shares that are negative, NaN or of the wrong
length are always an error: they are a mis-shaped file, not a damaged record. Shares are
renormalised only within the reader's tolerance.
"""

from __future__ import annotations

import ast
import json
import math
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from surveylm.distribution_checks import check_distribution
from surveylm.errors import DataError, DistributionError, FileFormatError, SurveyLMError, where
from surveylm.io.textfiles import csv_rows, read_text
from surveylm.items import ItemSet, item_frame
from surveylm.survey import Question

#: How intersections are written: ``attribute = "pid×educ"``, ``group = "Dem × College"``.
INTERSECTION, VALUE_SEP = "×", " × "
#: How many skipped records a warning names.
NAMED_SKIPS = 3


class SkippedRecordsWarning(UserWarning):
    """Records of a distribution file were skipped (all-zero or mis-summing shares)."""


class SkipLog:
    """Collects the damaged records a reader skips; see the module docstring.

    Args:
        path: The file (named in the warning).
        strict: Raise the first damaged record's error instead of skipping it.
    """

    def __init__(self, path: Path, strict: bool) -> None:
        self.path, self.strict = path, strict
        self.skipped: list[tuple[str, str, SurveyLMError]] = []

    def skip(self, kind: str, error: SurveyLMError) -> None:
        """Skip one record (``kind``: e.g. "all shares zero"), or raise under ``strict``."""
        if self.strict:
            raise error
        self.skipped.append((kind, str(error), error))

    def finish(self, kept: int) -> dict[str, Any]:
        """Warn once about the skipped records; the summary entry to keep with the items.

        Raises:
            SurveyLMError: the first skipped record's error, when no record was kept.
        """
        if not self.skipped:
            return {}
        if kept == 0:
            raise self.skipped[0][2]
        counts = Counter(kind for kind, _, _ in self.skipped)
        total = len(self.skipped)
        named = "; ".join(msg.removeprefix(f"file '{self.path}', ")
                          for _, msg, _ in self.skipped[:NAMED_SKIPS])  # fmt: skip
        more = f" (and {total - NAMED_SKIPS} more)" if total > NAMED_SKIPS else ""
        kinds = ", ".join(f"{n} {kind}" for kind, n in counts.items())
        warnings.warn(
            f"file '{self.path}': skipped {total} of {total + kept} records ({kinds}): "
            f"{named}{more}; pass strict=True (CLI: --strict) to refuse the file instead",
            SkippedRecordsWarning,
            stacklevel=3,
        )
        return {"skipped_records": {"count": total, **dict(counts)}}


def check_shares(
    values: list[Any], n_options: int, loc: str, what: str, *, tol: float, scale: float,
    log: SkipLog,
) -> np.ndarray | None:  # fmt: skip
    """One record's shares (in units of ``scale``: 1 = fractions, 100 = percent) as a
    distribution, or ``None`` when the record is skipped (all zeros, or a sum off by more
    than ``tol`` relative to ``scale``).

    Raises:
        DistributionError: shares that are not numbers, NaN, negative or of the wrong length
            (always), or a damaged record under ``strict``.
    """
    try:
        arr = np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise DistributionError(f"{loc}{what} must be numbers, got {values!r}") from None
    check_distribution(arr, n_options, context=f"{loc}{what}: ", tol=math.inf, renormalise=False)
    total = float(arr.sum())
    unit = "" if scale == 1 else " (percent)"
    if total == 0:
        log.skip("all shares zero", DistributionError(f"{loc}{what} are all zero"))
        return None
    if abs(total / scale - 1.0) > tol:
        err = DistributionError(
            f"{loc}{what} sum to {total:.6g}{unit}, not {scale:g} (tolerance {tol * scale:g})"
        )
        log.skip("not summing to 1", err)
        return None
    return arr / total


def record_item(
    q: Question, rec: Mapping[str, Any], attribute: str, group: str, shares: list[Any],
    loc: str, what: str, *, tol: float, scale: float, log: SkipLog,
) -> dict[str, Any] | None:  # fmt: skip
    """The item row of one file record (``None`` when its shares make it skipped): shares
    checked by :func:`check_shares`, the record's ``context`` (or the one ``attribute =
    group`` encodes), and its ``n``/``n_eff`` when given."""
    target = check_shares(shares, q.n_options, loc, what, tol=tol, scale=scale, log=log)
    if target is None:
        return None
    context = rec.get("context") or _context(attribute, group)
    return _item(q, attribute, group, context, target, rec.get("n"), rec.get("n_eff"), loc)


def json_records(path: Path) -> list[tuple[str, int, Any]]:
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
            raise FileFormatError(
                f"{_loc(path, line_no)}invalid JSON ({exc.msg}, column {exc.colno})"
            ) from None
    return out


def find_info(summary: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``summary[key]`` merged with the same key of every part of a concatenated set."""
    out: dict[str, Any] = {}
    for part in summary.get("parts", []):
        out.update(find_info(part, key))
    out.update(summary.get(key) or {})
    return out


# -- shared helpers -------------------------------------------------------------------------
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
    used = {r["question_id"] for r in rows}
    questions = {k: v for k, v in questions.items() if k in used}
    extra = {k: v for k, v in extra.items() if v not in (None, {}, [])}
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
