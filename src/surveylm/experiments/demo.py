"""``surveylm demo``: the imputation and simulation comparisons on ANES 1996, one run folder.

The demo is not a separate code path: it runs :func:`~surveylm.experiments.imputation.
run_imputation_benchmark`, :func:`~surveylm.experiments.simulation.run_simulation_benchmark`
and :func:`~surveylm.experiments.data_efficiency.run_data_efficiency` on the two sections of
one :class:`DemoConfig`, and writes each section as the ``config.yaml`` of its sub-folder, so

    surveylm benchmark imputation RUN_DIR/imputation/config.yaml

reproduces the demo's imputation numbers exactly (same config, same seed). The run folder::

    RUN_DIR/
      config.yaml        the demo config that was run (both sections, the seed)
      run.json           seed, command, start/end, wall time per stage
      versions.json      Python, the platform and the packages that shape the numbers
      imputation/        tidy results (Parquet + CSV), config.yaml, settings.json
      simulation/        tidy results, data-efficiency curves, config.yaml, settings.json
      figures/           every report figure as PNG and SVG
      report.html        one self-contained file (figures embedded, no network)

Stages are written as they finish (atomically), so a crash loses at most the stage that
was running; ``surveylm report RUN_DIR`` rebuilds the report from whatever is there.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from surveylm.experiments.imputation_config import ImputationConfig
from surveylm.experiments.simulation_config import SimulationConfig

if TYPE_CHECKING:
    import pandas as pd

    from surveylm.experiments.imputation import ImputationResults
    from surveylm.experiments.simulation import SimulationResults

__all__ = [
    "DemoConfig",
    "DemoResults",
    "demo_config",
    "demo_summary",
    "load_demo_config",
    "run_demo",
]


class DemoConfig(BaseModel):
    """The demo: one imputation and one simulation comparison under one seed.

    Attributes:
        seed: Seed of every random step of both comparisons (it replaces the sections'
            own ``seed``).
        imputation: An :class:`ImputationConfig` (``surveylm benchmark imputation``).
        simulation: A :class:`SimulationConfig` (``surveylm benchmark simulation``).
        data_efficiency: Also run the data-efficiency curves of the simulation section.
    """

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    imputation: ImputationConfig
    simulation: SimulationConfig
    data_efficiency: bool = True

    @model_validator(mode="after")
    def _one_seed(self) -> DemoConfig:
        if self.imputation.seed != self.seed:
            self.imputation = self.imputation.with_overrides(seed=self.seed)
        if self.simulation.seed != self.seed:
            self.simulation = self.simulation.with_overrides(seed=self.seed)
        return self

    def to_yaml(self) -> str:
        """The config as YAML (round-trips through :func:`load_demo_config`)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def load_demo_config(path: str | Path) -> DemoConfig:
    """Read and validate a :class:`DemoConfig` from YAML (errors name the file and field)."""
    from surveylm.experiments.config_files import load_config_file

    return load_config_file(path, DemoConfig)


def demo_config(
    quick: bool = False, seed: int | None = None, path: str | Path | None = None
) -> DemoConfig:
    """The packaged demo config (``quick``: the one-minute smoke-run settings), or the one
    at ``path``; ``seed`` replaces its seed."""
    if path is not None:
        config = load_demo_config(path)
    else:
        name = "demo_quick.yaml" if quick else "demo.yaml"
        with resources.as_file(resources.files("surveylm.experiments") / "configs" / name) as p:
            config = load_demo_config(p)
    if seed is not None:
        config = DemoConfig.model_validate({**config.model_dump(), "seed": seed})
    return config


@dataclass(eq=False)
class DemoResults:
    """What :func:`run_demo` did: the folder, the stages' wall times, the results of the
    two comparisons and the report's path."""

    run_dir: Path
    report: Path | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    imputation: ImputationResults | None = None
    simulation: SimulationResults | None = None

    @property
    def wall_seconds(self) -> float:
        return round(sum(self.stage_seconds.values()), 1)


def run_demo(
    config: DemoConfig | str | Path | None = None,
    output_dir: str | Path = "runs/demo",
    quick: bool = False,
    progress: bool = True,
    report: bool = True,
    command: str | None = None,
) -> DemoResults:
    """Run the demo into ``output_dir`` and build ``report.html``.

    Args:
        config: A :class:`DemoConfig`, a YAML path, or ``None`` for the packaged one.
        output_dir: The run folder (created; files already there are overwritten).
        quick: With ``config=None``, the one-minute smoke-run config.
        progress: Progress bars per stage.
        report: Build the figures and ``report.html`` at the end.
        command: The command line to record in ``run.json``.
    """
    from surveylm.experiments.data_efficiency import run_data_efficiency
    from surveylm.experiments.imputation import package_versions, run_imputation_benchmark
    from surveylm.experiments.simulation import run_simulation_benchmark
    from surveylm.io.atomic import atomic_write_text

    if config is None:
        config = demo_config(quick=quick)
    elif not isinstance(config, DemoConfig):
        config = load_demo_config(config)
    run_dir = Path(output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", config.to_yaml())
    versions = {**package_versions(), "platform": platform.platform()}
    atomic_write_text(run_dir / "versions.json", json.dumps(versions, indent=2))
    out = DemoResults(run_dir=run_dir)
    run_info: dict[str, Any] = {
        "seed": config.seed,
        "quick": quick,
        "command": command or " ".join(sys.argv),
        "started": _now(),
        "stage_seconds": out.stage_seconds,
    }

    def stage(name: str, fn: Any) -> Any:
        t0 = time.perf_counter()
        result = fn()
        out.stage_seconds[name] = round(time.perf_counter() - t0, 1)
        atomic_write_text(run_dir / "run.json", json.dumps(run_info, indent=2))
        return result

    out.imputation = stage(
        "imputation",
        lambda: run_imputation_benchmark(config.imputation, run_dir / "imputation", progress),
    )
    out.simulation = stage(
        "simulation",
        lambda: run_simulation_benchmark(config.simulation, run_dir / "simulation", progress),
    )
    if config.data_efficiency:
        stage(
            "data_efficiency",
            lambda: run_data_efficiency(config.simulation, run_dir / "simulation", progress),
        )
    if report:
        from surveylm.report import build_report

        out.report = stage("report", lambda: build_report(run_dir))
    run_info["finished"] = _now()
    run_info["wall_seconds"] = out.wall_seconds
    atomic_write_text(run_dir / "run.json", json.dumps(run_info, indent=2))
    return out


def demo_summary(results: DemoResults) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The terminal summary: imputation (scenario × method: accuracy, log loss, vote-share
    TV, Rubin-interval coverage) and simulation (method × split: TV)."""
    imp = results.imputation.summary
    cols = [c for c in ("accuracy", "log_loss", "tv", "coverage") if c in imp.columns]
    imputation = imp[["scenario", "method", *cols]].rename(
        columns={"log_loss": "log loss", "tv": "share TV", "coverage": "MI coverage"}
    )
    overall = results.simulation.overall
    tv = overall[overall["metric"] == "tv"]
    simulation = tv.pivot_table(index="method", columns="split", values="value", sort=False)
    return imputation.round(3), simulation.reset_index().round(3)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
