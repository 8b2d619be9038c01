"""The tidy-results table format: key columns first, written as Parquet and CSV.

Every results table of an experiment is written by :func:`write_table` as
``stem.parquet`` plus ``stem.csv``, each atomically (:func:`surveylm.io.atomic.atomic_path`:
a crash never leaves a half-written table), with its key columns first
(:func:`columns_first`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from surveylm.io.atomic import atomic_path

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["columns_first", "write_table"]


def columns_first(frame: pd.DataFrame, lead: list[str]) -> pd.DataFrame:
    """``frame`` with the ``lead`` columns first (the keys of a tidy table), the rest after."""
    return frame[[*lead, *[c for c in frame.columns if c not in lead]]]


def write_table(frame: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Write ``stem.parquet`` and ``stem.csv`` atomically: the tidy-results format.

    Object columns that mix types (e.g. labels and numbers) or hold NaN for "none" are
    made Parquet-safe: missing → null, and mixed values → their string form.
    """
    import pandas as pd

    stem = Path(stem)
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype != object:
            continue
        values = [None if v is None or (isinstance(v, float) and v != v) else v
                  for v in out[col]]  # fmt: skip
        if len({type(v) for v in values if v is not None}) > 1:
            values = [None if v is None else str(v) for v in values]
        out[col] = pd.Series(values, index=out.index, dtype=object)
    paths = []
    for ext in ("parquet", "csv"):
        path = stem.with_name(f"{stem.name}.{ext}")
        with atomic_path(path) as tmp:
            if ext == "parquet":
                out.to_parquet(tmp, index=False)
            else:
                out.to_csv(tmp, index=False)
        paths.append(path)
    return paths
