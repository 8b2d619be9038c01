"""How long ``surveylm demo`` will take on this machine, said before it starts.

The packaged configs' stage times were measured (``benchmarks/demo_time.py``) together
with a speed probe: a fixed loop of small torch training steps, the kind of work that
dominates the demo (option-head fits on a frozen encoder). The same probe timed here and
now — on this machine, with whatever else it is running — scales them: twice the probe's
time, twice the stages'. As stages finish, the remaining ones are rescaled by how the
finished ones compared with their estimate. A custom config has no measured times, so it
gets no estimate (the progress bars then show their steps' rate).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from surveylm.experiments.demo import DemoConfig

__all__ = ["REFERENCE", "DemoEstimate", "estimate_demo", "speed_probe"]

#: Stage wall seconds of the packaged configs and the probe's seconds, timed in the same
#: runs by benchmarks/demo_time.py ("idle" runs, commit cbc0287): 2 cores shared with
#: other jobs (load 10-13) but our runs given priority (autogroup nice -15). On a truly
#: idle machine the demo ran about twice as fast (README), so estimates err long.
REFERENCE: dict[str, dict[str, Any]] = {
    "full": {"probe": 0.084, "stages": {"imputation": 97.3, "simulation": 65.1,
                                        "data_efficiency": 42.5, "report": 13.9}},
    "quick": {"probe": 0.108, "stages": {"imputation": 44.9, "simulation": 36.6,
                                         "data_efficiency": 2.0, "report": 12.9}},
}  # fmt: skip

#: ``surveylm demo --causal-lm``: the full run plus the seconds SmolLM2's zero-shot and
#: LoRA methods added to the simulation stage in one run on 2 cores (1,448 s against
#: 49 s, 9 min of it beside the test suite: an estimate that errs long).
REFERENCE["full_causal_lm"] = {
    "probe": REFERENCE["full"]["probe"],
    "stages": {**REFERENCE["full"]["stages"],
               "simulation": REFERENCE["full"]["stages"]["simulation"] + 1448.0 - 49.0},
}  # fmt: skip


@dataclass
class DemoEstimate:
    """Expected stage times on this machine.

    Attributes:
        stages: Expected wall seconds per stage, as estimated at the start.
        slowdown: The probe's time here over its reference time (2.0 = half as fast as
            the machine the references were timed on).
        probe_seconds: The probe's time here.
        actual: Wall seconds of the stages finished so far.
    """

    stages: dict[str, float]
    slowdown: float
    probe_seconds: float
    actual: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        """Expected wall seconds of the whole run, as estimated at the start."""
        return sum(self.stages.values())

    def expected(self, stage: str) -> float | None:
        """The stage's expected seconds, rescaled by how the finished stages compared with
        their estimate."""
        if stage not in self.stages:
            return None
        done = [s for s in self.actual if s in self.stages]
        ratio = 1.0
        if done:
            ratio = sum(self.actual[s] for s in done) / sum(self.stages[s] for s in done)
        return self.stages[stage] * ratio

    def describe(self) -> str:
        """One line for the terminal."""
        parts = ", ".join(f"{name.replace('_', ' ')} ~{_duration(s)}"
                          for name, s in self.stages.items())  # fmt: skip
        return (f"estimated time on this machine: ~{_duration(self.total)} ({parts}; a speed "
                f"check ran {self.slowdown:.1f}x as long as where the demo was timed)")  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """The record for ``run.json`` (so the estimate can be checked against the run)."""
        return {"stages": {k: round(v, 1) for k, v in self.stages.items()},
                "total": round(self.total, 1), "slowdown": round(self.slowdown, 2),
                "probe_seconds": round(self.probe_seconds, 3)}  # fmt: skip


def estimate_demo(config: DemoConfig, report: bool = True) -> DemoEstimate | None:
    """The estimate for ``config`` (with the report stage unless ``report`` is false), or
    ``None`` when it is not one of the packaged configs, with or without ``--causal-lm``
    (whatever its seed, threads and data-efficiency switch)."""
    from surveylm.experiments.demo import demo_config, with_causal_lm

    ignore: dict[str, Any] = {"threads": True, "data_efficiency": True, "imputation": {"threads"},
              "simulation": {"threads"}}  # fmt: skip
    name = None
    full = demo_config(quick=False, seed=config.seed)
    candidates = {"full": full, "quick": demo_config(quick=True, seed=config.seed),
                  "full_causal_lm": with_causal_lm(full)}  # fmt: skip
    for candidate, packaged in candidates.items():
        if packaged.model_dump(exclude=ignore) == config.model_dump(exclude=ignore):
            name = candidate
    if name is None:
        return None
    ref = REFERENCE[name]
    stages = dict(ref["stages"])
    if not config.data_efficiency:
        stages.pop("data_efficiency", None)
    if not report:
        stages.pop("report", None)
    probe = speed_probe()
    slowdown = probe / ref["probe"]
    return DemoEstimate({k: v * slowdown for k, v in stages.items()}, slowdown, probe)


def speed_probe(steps: int = 20, repeats: int = 3) -> float:
    """Seconds of ``steps`` small torch training steps (a two-layer MLP, batch 32, the
    size of the encoder's option head), the median of ``repeats``."""
    import torch

    from surveylm.threads import apply_thread_policy

    apply_thread_policy()  # the threads the demo will use (torch may have loaded just now)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 384, generator=gen)
    y = torch.randint(0, 3, (32,), generator=gen)
    net = torch.nn.Sequential(torch.nn.Linear(384, 128), torch.nn.GELU(),
                              torch.nn.Linear(128, 128), torch.nn.GELU(),
                              torch.nn.Linear(128, 3))  # fmt: skip
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
