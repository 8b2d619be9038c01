"""Atomic file output: write to a temporary file beside the target, then rename.

A crash (or Ctrl-C) while writing never leaves a half-written result where a finished
one is expected: either the old file is still there or the new one is complete.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: What ``open(path, "w")`` would have given: 0666 less the process umask.
_FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path to write to; rename it to ``path`` on success.

    The temporary file lives in the target's directory (so the rename is atomic on the
    same filesystem) and keeps the target's suffix (so writers that look at the
    extension behave). It is removed if the body raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.",
        suffix=suffix if suffix is not None else path.suffix or ".tmp",
        dir=path.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


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
