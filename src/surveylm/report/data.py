"""Read a run folder back for the report: every part optional, nothing recomputed.

The report is drawn from the files a run wrote (``surveylm demo`` or the benchmark
commands writing into ``RUN/imputation`` and ``RUN/simulation``), so ``surveylm report
RUN_DIR`` can rebuild it anywhere. A part that is missing or unreadable is ``None`` and
its reason is kept in :attr:`RunData.notes`, so the page can say why a section is absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from surveylm.errors import ConfigError, shorten, where
from surveylm.io.yaml_files import read_yaml

__all__ = ["SPLIT_LABELS", "RunData", "load_run"]

#: Readable names of the simulation splits (held-out questions × held-out groups).
SPLIT_LABELS = {
    "seen_q/seen_g": "seen questions × seen groups",
    "seen_q/unseen_g": "seen questions × unseen groups",
    "unseen_q/seen_g": "unseen questions × seen groups",
    "unseen_q/unseen_g": "unseen questions × unseen groups",
    "unseen_survey": "unseen survey (its questions and groups)",
}
IMPUTATION_TABLES = ("summary", "respondent", "population", "coverage", "predictions", "timings",
                     "ppi")  # fmt: skip
SIMULATION_TABLES = ("overall", "distributions", "diversity", "robustness", "timings",
                     "per_item", "training_curves", "pilot")  # fmt: skip


@dataclass(eq=False)
class RunData:
    """What a run folder holds (``None`` where a file is absent).

    Attributes:
        run_dir: The folder.
        run: ``run.json`` (seed, command, start/end, stage wall times).
        versions: ``versions.json`` (package versions).
        config: ``config.yaml`` of the whole run (a demo config), if any.
        imputation / simulation: Tables by name, plus ``"config"`` and ``"settings"``
            (the section's YAML config and settings JSON) — ``None`` when the folder is
            absent.
        data_efficiency: ``(worth, curves)`` frames of the data-efficiency run, if any.
        notes: Why a part is missing, by part name: a section (``imputation``,
            ``simulation``, ``data_efficiency``) or a file that was absent, unreadable or
            not a mapping (``run``, ``versions``, ``config``, ``imputation/config``,
            ``simulation/settings``, ...; its value then stands as ``{}``).
    """

    run_dir: Path
    run: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    imputation: dict[str, Any] | None = None
    simulation: dict[str, Any] | None = None
    data_efficiency: tuple[pd.DataFrame, pd.DataFrame | None] | None = None
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def seed(self) -> int | None:
        """The run's seed (``run.json``, else a section config)."""
        for source in (self.run, self.config, *self._section_configs()):
            if isinstance(source, dict) and source.get("seed") is not None:
                return int(source["seed"])
        return None

    @property
    def dataset(self) -> str | None:
        """The dataset name of the first section that names one."""
        for cfg in self._section_configs():
            if cfg.get("dataset"):
                return str(cfg["dataset"])
        return None

    def _section_configs(self) -> list[dict[str, Any]]:
        return [s["config"] for s in (self.imputation, self.simulation) if s and s.get("config")]

    def table(self, section: str, name: str) -> pd.DataFrame | None:
        """One table of a section (``None`` when the section or the table is absent)."""
        part = getattr(self, section)
        if part is None:
            return None
        frame = part.get(name)
        return frame if isinstance(frame, pd.DataFrame) and len(frame) else None


def _read_json(path: Path, notes: dict[str, str], key: str) -> dict[str, Any]:
    """The mapping in a JSON file; ``{}`` with the reason in ``notes[key]`` when the file is
    missing, unreadable or not a JSON object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        notes[key] = f"{where(file=path)}no such file"
        return {}
    except (OSError, ValueError) as exc:
        notes[key] = f"{where(file=path)}unreadable ({shorten(exc, 200)})"
        return {}
    return _mapping(value, path, notes, key)


def _read_yaml(path: Path, notes: dict[str, str], key: str) -> dict[str, Any]:
    """The mapping in a YAML file (the library's one reader); ``{}`` with the reason in
    ``notes[key]`` when the file is missing, unreadable or not a mapping."""
    try:
        value = read_yaml(path)
    except ConfigError as exc:
        notes[key] = str(exc)
        return {}
    return _mapping(value, path, notes, key)


def _mapping(value: Any, path: Path, notes: dict[str, str], key: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    notes[key] = f"{where(file=path)}expected a mapping, got {type(value).__name__}"
    return {}


def _read_table(stem: Path) -> pd.DataFrame | None:
    """``stem.parquet``, else ``stem.csv``; ``None`` when neither can be read."""
    for ext, reader in (("parquet", pd.read_parquet), ("csv", pd.read_csv)):
        path = stem.with_name(f"{stem.name}.{ext}")
        if path.is_file():
            try:
                return reader(path)
            except Exception:  # a damaged file: try the other format, then give up
                continue
    return None


def _section(
    folder: Path, names: tuple[str, ...], notes: dict[str, str]
) -> dict[str, Any] | None:
    if not folder.is_dir():
        return None
    part: dict[str, Any] = {name: _read_table(folder / name) for name in names}
    if all(part[name] is None for name in names):
        return None
    part["config"] = _read_yaml(folder / "config.yaml", notes, f"{folder.name}/config")
    part["settings"] = _read_json(folder / "settings.json", notes, f"{folder.name}/settings")
    return part


def load_run(run_dir: str | Path) -> RunData:
    """Read whatever ``run_dir`` holds (see :class:`RunData`); never raises for a missing
    part, only for a ``run_dir`` that is not a folder."""
    from surveylm.errors import DataError

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"report: run folder '{run_dir}' does not exist")
    notes: dict[str, str] = {}
    data = RunData(
        run_dir=run_dir,
        run=_read_json(run_dir / "run.json", notes, "run"),
        versions=_read_json(run_dir / "versions.json", notes, "versions"),
        config=_read_yaml(run_dir / "config.yaml", notes, "config"),
        imputation=_section(run_dir / "imputation", IMPUTATION_TABLES, notes),
        simulation=_section(run_dir / "simulation", SIMULATION_TABLES, notes),
        notes=notes,
    )
    if data.imputation is None:
        data.notes["imputation"] = "no imputation results in this run (imputation/ is absent)"
    if data.simulation is None:
        data.notes["simulation"] = "no simulation results in this run (simulation/ is absent)"
    worth = _read_table(run_dir / "simulation" / "data_efficiency")
    if worth is not None and len(worth):
        curves = _read_table(run_dir / "simulation" / "data_efficiency_curves")
        data.data_efficiency = (worth, curves)
    else:
        data.notes["data_efficiency"] = "no data-efficiency results in this run"
    if not data.versions and data.imputation:
        data.versions = dict(data.imputation["settings"].get("versions", {}))
    return data
