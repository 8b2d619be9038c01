"""A benchmark's results folder, written whole and read back.

Every table goes in as Parquet and CSV, the config as ``config.yaml``, the run's facts as
``settings.json`` and its wall-clock times as ``timings.json`` — timings live apart from
results, so two runs with the same config and seed give byte-identical result files. The
folder is built beside the target and swapped in whole
(:func:`surveylm.io.atomic.atomic_dir`): a kill leaves the old results or the new ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from surveylm.errors import FileFormatError, where

__all__ = ["TIMING_KEYS", "read_results", "write_results"]

#: Settings that are wall-clock times: written to ``timings.json``, not ``settings.json``.
TIMING_KEYS = ("wall_seconds",)


def write_results(
    directory: str | Path,
    tables: dict[str, pd.DataFrame],
    config_yaml: str,
    settings: dict[str, Any],
    extra: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Write a results folder whole (see module docstring); ``extra(folder)`` writes any
    further files into the folder being built. Returns the paths written.

    Raises:
        OutputError: ``directory`` is a file or a folder of other files (no
            ``settings.json``).
    """
    from surveylm.io.atomic import atomic_dir, atomic_write_text
    from surveylm.io.tables import write_table

    directory = Path(directory)
    facts = {k: v for k, v in settings.items() if k not in TIMING_KEYS}
    times = {k: settings[k] for k in TIMING_KEYS if k in settings}
    with atomic_dir(directory, marker="settings.json") as tmp:
        for name, frame in tables.items():
            write_table(frame, tmp / name)
        if extra is not None:
            extra(tmp)
        atomic_write_text(tmp / "config.yaml", config_yaml)
        atomic_write_text(tmp / "settings.json", json.dumps(facts, indent=2, default=str))
        atomic_write_text(tmp / "timings.json", json.dumps(times, indent=2))
        names = sorted(p.name for p in tmp.iterdir())
    return [directory / n for n in names]


def read_results(
    directory: str | Path, names: Iterable[str]
) -> tuple[dict[str, pd.DataFrame], Path, dict[str, Any]]:
    """``(tables by name, path of config.yaml, settings with timings)`` of a folder
    written by :func:`write_results`.

    Raises:
        FileFormatError: a table or the settings are missing or unreadable.
    """
    directory = Path(directory)
    tables = {}
    for name in names:
        path = directory / f"{name}.parquet"
        try:
            tables[name] = pd.read_parquet(path)
        except Exception as exc:
            raise FileFormatError(f"{where(file=path)}cannot read the results ({exc})") from None
    settings: dict[str, Any] = {}
    for file in ("settings.json", "timings.json"):
        path = directory / file
        try:
            settings.update(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            if file == "settings.json":
                raise FileFormatError(f"{where(file=path)}no such file") from None
        except ValueError as exc:
            raise FileFormatError(f"{where(file=path)}not valid JSON ({exc})") from None
    return tables, directory / "config.yaml", settings
