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

Each stage's folder is written whole as it finishes (a sibling folder swapped in), so a
crash loses at most the stage that was running; ``run.json`` says which stages are done
and where an interrupted run stopped, ``run_demo(..., resume=True)`` (``surveylm demo
--resume``) continues it, and ``surveylm report RUN_DIR`` rebuilds the report from
whatever is there, saying when the run is incomplete.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

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
        threads: CPU threads of every library (:mod:`surveylm.threads`; it replaces the
            sections' own ``threads``; ``None`` = the available cores).
    """

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    imputation: ImputationConfig
    simulation: SimulationConfig
    data_efficiency: bool = True
    threads: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_seed(self) -> DemoConfig:
        if self.threads is not None:
            self.imputation = self.imputation.with_overrides(threads=self.threads)
            self.simulation = self.simulation.with_overrides(threads=self.threads)
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


#: What ``surveylm demo --causal-lm`` adds to the simulation section: the default real
#: causal LM (SmolLM2-135M-Instruct, :func:`~surveylm.models.hf_loading.default_causal_lm`)
#: zero-shot and LoRA fine-tuned on the group items, beside the encoder (SubPOP, Cao et
#: al. 2025), with its prompt-format and option-order robustness.
DEMO_CAUSAL_LM_METHODS: list[dict[str, Any]] = [
    {"name": "smollm2 zero-shot", "model": "causal-lm", "fit": False},
    {"name": "smollm2 lora", "model": "causal-lm"},
]


def demo_config(
    quick: bool = False, seed: int | None = None, path: str | Path | None = None,
    causal_lm: bool = False,
) -> DemoConfig:  # fmt: skip
    """The packaged demo config (``quick``: the one-minute smoke-run settings), or the one
    at ``path``; ``seed`` replaces its seed.

    ``causal_lm`` adds :data:`DEMO_CAUSAL_LM_METHODS` to the simulation section (not to
    the packaged runs by default: on 2 CPU cores SmolLM2 adds minutes to a demo that has
    three; with a GPU it is quick). The default model file must be there: a missing one
    is refused at once with how to get it, before anything runs.

    Raises:
        ModelError: ``causal_lm`` and the default causal LM's file is absent.
    """
    if path is not None:
        config = load_demo_config(path)
    else:
        name = "demo_quick.yaml" if quick else "demo.yaml"
        with resources.as_file(resources.files("surveylm.experiments") / "configs" / name) as p:
            config = load_demo_config(p)
    if seed is not None:
        config = DemoConfig.model_validate({**config.model_dump(), "seed": seed})
    if causal_lm:
        from surveylm.models.hf_loading import default_causal_lm

        default_causal_lm()  # refuses a missing model file now, not mid-run
        config = with_causal_lm(config)
    return config


def with_causal_lm(config: DemoConfig) -> DemoConfig:
    """``config`` with :data:`DEMO_CAUSAL_LM_METHODS` added to its simulation section."""
    data = config.model_dump()
    names = {m["name"] for m in data["simulation"]["methods"]}
    data["simulation"]["methods"] += [m for m in DEMO_CAUSAL_LM_METHODS
                                      if m["name"] not in names]  # fmt: skip
    return DemoConfig.model_validate(data)


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
    overwrite: bool = False,
    resume: bool = False,
) -> DemoResults:
    """Run the demo into ``output_dir`` and build ``report.html``.

    Each stage writes its sub-folder whole (a sibling temporary folder swapped in), and
    ``run.json`` records which stages are done and where a run stopped
    (:mod:`surveylm.experiments.run_folder`).

    Args:
        config: A :class:`DemoConfig`, a YAML path, or ``None`` for the packaged one.
        output_dir: The run folder (created). An existing run there is refused unless
            ``overwrite`` (it is removed first, so no old part survives) or ``resume``.
        quick: With ``config=None``, the one-minute smoke-run config.
        progress: Progress bars per stage.
        report: Build the figures and ``report.html`` at the end.
        command: The command line to record in ``run.json``.
        overwrite: Replace an existing run in ``output_dir``.
        resume: Continue an interrupted run in ``output_dir``: its finished stages are
            read back, not run again (the config must be the same).

    Raises:
        OutputError: ``output_dir`` holds a run (or other files) and neither
            ``overwrite`` nor ``resume`` was given, or ``resume`` with another config.
    """
    from surveylm.experiments.data_efficiency import run_data_efficiency
    from surveylm.experiments.demo_estimate import estimate_demo
    from surveylm.experiments.imputation import (
        ImputationResults,
        package_versions,
        run_imputation_benchmark,
    )
    from surveylm.experiments.run_folder import RUN_FILE, RunRecord, read_run
    from surveylm.experiments.simulation import SimulationResults, run_simulation_benchmark
    from surveylm.io.atomic import atomic_write_text, remove_temporaries
    from surveylm.io.output_paths import check_folder_output, existing_output
    from surveylm.progress import eta_text, expected_duration
    from surveylm.threads import apply_thread_policy

    if config is None:
        config = demo_config(quick=quick)
    elif not isinstance(config, DemoConfig):
        config = load_demo_config(config)
    if overwrite and resume:
        from surveylm.errors import ConfigError

        raise ConfigError("give --overwrite (start again) or --resume (continue), not both")
    run_dir = Path(output_dir)
    check_folder_output(run_dir, "run folder", marker=RUN_FILE, overwrite=overwrite,
                        resume=resume)  # fmt: skip
    done: list[str] = []
    if resume and existing_output(run_dir):
        done = _resumable_stages(run_dir, config, read_run(run_dir))
    elif existing_output(run_dir):  # overwrite: no part of the old run survives
        shutil.rmtree(run_dir)
    remove_temporaries(run_dir, recursive=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", config.to_yaml())
    versions = {**package_versions(), "platform": platform.platform()}
    atomic_write_text(run_dir / "versions.json", json.dumps(versions, indent=2))
    record = RunRecord(run_dir, {"seed": config.seed, "quick": quick,
                                 "command": command or " ".join(sys.argv)})  # fmt: skip
    out = DemoResults(run_dir=run_dir, stage_seconds=record.stage_seconds)
    policy = apply_thread_policy(config.threads, source="config")
    estimate = estimate_demo(config, report=report)  # loads torch: after the policy
    record.info["threads"] = policy.as_dict()
    record.info["estimate"] = estimate.as_dict() if estimate is not None else None
    record.write()
    if progress and estimate is not None:
        print(estimate.describe(), flush=True)
    if done:
        record.info["resumed_stages"] = list(done)

    def stage(name: str, fn: Any, reread: Any = None) -> Any:
        if name in done and reread is not None:
            record.info["stages_done"].append(name)
            return reread()
        expected = estimate.expected(name) if estimate is not None else None
        if progress and expected is not None:
            print(f"{name.replace('_', ' ')}: {eta_text(expected)}", flush=True)
        with record.stage(name), expected_duration(expected):
            result = fn()
        if estimate is not None:
            estimate.actual[name] = record.stage_seconds[name]
        return result

    out.imputation = stage(
        "imputation",
        lambda: run_imputation_benchmark(config.imputation, run_dir / "imputation", progress),
        lambda: ImputationResults.from_files(run_dir / "imputation"),
    )
    out.simulation = stage(
        "simulation",
        lambda: run_simulation_benchmark(config.simulation, run_dir / "simulation", progress),
        lambda: SimulationResults.from_files(run_dir / "simulation"),
    )
    if config.data_efficiency:
        stage(
            "data_efficiency",
            lambda: run_data_efficiency(config.simulation, run_dir / "simulation", progress),
            lambda: None,
        )
    if report:
        from surveylm.report import build_report

        out.report = stage("report", lambda: build_report(run_dir))
    record.finish()
    return out


def _resumable_stages(run_dir: Path, config: DemoConfig, info: dict[str, Any]) -> list[str]:
    """The stages of the run in ``run_dir`` that a resumed run keeps (refusing a run of
    another config: its finished stages would be mixed with this one's)."""
    from surveylm.errors import ConfigError, OutputError
    from surveylm.io.yaml_files import read_yaml

    try:
        old = read_yaml(run_dir / "config.yaml")
    except ConfigError:
        old = None
    if old != config.model_dump(mode="json"):
        raise OutputError(f"--resume: run folder '{run_dir}' was run with another config; "
                          "pass --overwrite to replace it")  # fmt: skip
    done = [s for s in info.get("stages_done", []) if s != "report"]
    # a stage is kept only with every stage before it (data efficiency writes into
    # simulation/, so it is redone when the simulation is)
    order = ["imputation", "simulation", "data_efficiency"]
    kept = []
    for name in order:
        if name not in done:
            break
        kept.append(name)
    return kept


def demo_summary(results: DemoResults) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The terminal summary: imputation (scenario × method: accuracy, log loss, target-share
    TV, Rubin-interval coverage) and simulation (method × split: TV): of a run that did both."""
    if results.imputation is None or results.simulation is None:
        raise ValueError("demo_summary needs a run with imputation and simulation results")
    imp = results.imputation.summary
    cols = [c for c in ("accuracy", "log_loss", "tv", "coverage") if c in imp.columns]
    imputation = imp[["scenario", "method", *cols]].rename(
        columns={"log_loss": "log loss", "tv": "share TV", "coverage": "MI coverage"}
    )
    overall = results.simulation.overall
    tv = overall[overall["metric"] == "tv"]
    simulation = tv.pivot_table(index="method", columns="split", values="value", sort=False)
    return imputation.round(3), simulation.reset_index().round(3)
