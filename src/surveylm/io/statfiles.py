"""SPSS ``.sav`` and Stata ``.dta`` files: data plus what their metadata says.

Value labels become option labels (in code order), SPSS measure levels decide whether a
labelled variable is ordinal, variable labels become question texts, and SPSS
user-missing values (discrete values or a lo–hi range) become missing. Read with
pyreadstat.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from surveylm.codebook import option_label, value_key
from surveylm.errors import FileFormatError, where


@dataclass
class FileMeta:
    """What a statistical file says about its columns (SPSS/Stata metadata)."""

    value_labels: dict[str, dict[Any, str]] = field(default_factory=dict)
    measures: dict[str, str] = field(default_factory=dict)
    column_labels: dict[str, str] = field(default_factory=dict)
    user_missing: dict[str, list[tuple[Any, Any]]] = field(default_factory=dict)


def read_stat_file(path: Path, encoding: str | None) -> tuple[pd.DataFrame, FileMeta]:
    """Read a ``.sav``/``.zsav`` (SPSS) or ``.dta`` (Stata) file and its metadata.

    Raises:
        FileFormatError: the file is not a readable SPSS/Stata file (corrupt, truncated).
    """
    import pyreadstat

    spss = path.suffix.lower() != ".dta"
    kind = "SPSS" if spss else "Stata"
    try:
        if spss:  # keep user-missing codes so their value labels can be recognised
            df, m = pyreadstat.read_sav(str(path), user_missing=True, encoding=encoding)
        else:  # extended missing values .a-.z are read as NaN
            df, m = pyreadstat.read_dta(str(path), encoding=encoding)
    except Exception as exc:  # ReadstatError / PyreadstatError
        raise FileFormatError(
            f"{where(file=path)}not a readable {kind} file (corrupt or truncated?): {exc}"
        ) from None
    meta = FileMeta(
        value_labels={
            str(c): _usable_labels(labels, pd.api.types.is_numeric_dtype(df[c]))
            for c, labels in (m.variable_value_labels or {}).items()
            if c in df.columns
        },
        measures=dict(m.variable_measure or {}) if spss else {},
        column_labels={str(c): str(t) for c, t in (m.column_names_to_labels or {}).items() if t},
        user_missing={  # pyreadstat: per column, a list of {"lo": ..., "hi": ...}
            str(c): [(r["lo"], r["hi"]) for r in ranges]
            for c, ranges in cast("dict[str, list[dict[str, Any]]]", m.missing_ranges or {}).items()
        },
    )
    return df, meta


def apply_user_missing(df: pd.DataFrame, meta: FileMeta) -> None:
    """Blank out SPSS user-missing values (discrete values or lo–hi ranges)."""
    for col, ranges in meta.user_missing.items():
        if col in df.columns:
            df[col] = df[col].mask(in_ranges(df[col], ranges))


def in_ranges(values: pd.Series, ranges: list[tuple[Any, Any]]) -> np.ndarray:
    """Mask of values inside any SPSS missing range ``(lo, hi)`` (``lo == hi``: discrete)."""
    mask = np.zeros(len(values), dtype=bool)
    numeric = pd.api.types.is_numeric_dtype(values)
    for lo, hi in ranges:
        if numeric and _is_number(lo) and _is_number(hi):
            v = values.to_numpy(dtype=np.float64)
            mask |= (v >= float(lo)) & (v <= float(hi))
        else:
            mask |= values.astype(object).map(value_key).isin({value_key(lo)}).to_numpy()
    return mask


def answer_label(value: Any, labels: Mapping[str, str], missing: set[str]) -> str | None:
    """A raw answer's option label: its label in ``labels`` (keyed by
    :func:`~surveylm.codebook.value_key`), else the value itself
    (:func:`~surveylm.codebook.option_label`); ``None`` when the value's key or its label's
    is among the ``missing`` keys. The answers of a column and the options from its value
    labels both come from here, so they agree."""
    key = value_key(value)
    label = labels.get(key, option_label(value))
    return None if key in missing or value_key(label) in missing else label


def options_from_value_labels(
    raw: pd.Series, labels: dict[Any, str], keys: set[str], meta: FileMeta, qid: str
) -> tuple[list[str], tuple[float, ...] | None]:
    """Options in code order from SPSS/Stata value labels, plus unlabelled codes seen."""
    numeric = all(_is_number(k) for k in labels)
    if numeric:
        seen = pd.to_numeric(raw[raw.notna()], errors="coerce").dropna().unique()
        all_codes: list[Any] = sorted({*labels, *(float(s) for s in seen)})
    else:  # labelled SPSS string variable: label order, then unlabelled values
        all_codes = list(dict.fromkeys([*labels, *sorted(str(v) for v in raw.dropna().unique())]))
    user_missing = meta.user_missing.get(qid, [])
    keyed = {value_key(k): v for k, v in labels.items()}
    by_code: dict[Any, str] = {}
    for code in all_codes:
        label = answer_label(code, keyed, keys)
        if label is None:
            continue
        if user_missing and in_ranges(pd.Series([code]), user_missing)[0]:
            continue
        by_code[code] = label
    options = list(by_code.values())
    ordinal = None
    if numeric and meta.measures.get(qid) in ("ordinal", "scale") and len(options) >= 2:
        values = np.array(list(by_code), dtype=np.float64)
        ordinal = tuple(values - min(values.min(), 0.0))
    return options, ordinal


def _usable_labels(labels: dict[Any, Any], numeric: bool) -> dict[Any, str]:
    """Value labels whose codes can occur in the column (Stata's ``.a`` labels cannot)."""
    if numeric:
        return {float(k): str(v) for k, v in labels.items() if _is_number(k)}
    return {str(k): str(v) for k, v in labels.items()}


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool)
