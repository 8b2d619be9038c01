"""One thread policy for every library that starts a thread pool.

torch (intra- and inter-op), CatBoost, scikit-learn/joblib, numpy's BLAS and the Rust
tokenizers each size their pool to the machine on their own, and OpenMP's threads *spin*
while they wait for work. On a laptop that is not idle (a browser, R, a spreadsheet, or
pytest-xdist's other workers) a spinning thread holds a core another process needs. Measured
on 2 cores at load 7-9 (other processes plus one busy loop), A/B interleaved, fresh
processes: 300 training steps of the encoder's option head took 132 and 235 s with torch's
2 default OpenMP threads, 13 and 8 s with 2 threads and ``OMP_WAIT_POLICY=PASSIVE``, 24-28 s
with one thread (either policy); embedding 512 texts with all-MiniLM-L6-v2, 11 and 19 s
with 2 passive threads, 13 and 21 s with 2 spinning ones, 14-33 s with one. Hence: all
available cores, passive waiting (``benchmarks/demo_time.py`` times the whole demo).

The policy, decided once per process by :func:`apply_thread_policy`:

* **threads** = an explicit setting (``surveylm --threads N``, a config's ``threads``,
  or ``$SURVEYLM_THREADS``), else ``$OMP_NUM_THREADS`` when the user set it, else the cores
  this process may run on (``os.sched_getaffinity``, so ``taskset`` and container CPU sets
  count). It never exceeds those cores. It does not follow the machine's load: the thread
  count can change floating-point sums, and the same config and seed must give the same
  numbers on a busy and an idle machine.
* torch gets ``threads`` intra-op threads and, where it is still possible (torch loaded
  and its inter-op pool not yet started), one inter-op thread, so inter × intra never
  exceeds the cores; CatBoost's ``thread_count=-1`` means ``threads``
  (:func:`catboost_threads`); joblib/loky and the BLAS and OpenMP pools get ``threads``
  through their environment variables; the tokenizers run in parallel only with more than
  one thread.
* ``OMP_WAIT_POLICY=PASSIVE``: OpenMP threads sleep instead of spinning while they wait.

Environment variables are read by the libraries when they load, so the policy is applied
before torch is imported (the CLI does it first thing); a variable the user set is left
as it is. Applied later (torch or numpy already imported), ``torch.set_num_threads`` and
threadpoolctl still resize torch's and the BLAS pools, and the record says which settings
came too late (``OMP_WAIT_POLICY`` once OpenMP has loaded). The record
(:meth:`ThreadPolicy.as_dict`) goes into every run's ``run.json``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from surveylm.errors import ConfigError

__all__ = [
    "ThreadPolicy",
    "apply_thread_policy",
    "available_cores",
    "catboost_threads",
    "current_policy",
    "resolve_threads",
]

#: Environment variables that size a pool, set to the policy's thread count.
POOL_VARIABLES = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LOKY_MAX_CPU_COUNT",
    "RAYON_NUM_THREADS",
)  # fmt: skip


@dataclass(frozen=True)
class ThreadPolicy:
    """How many threads each library gets, and why.

    Attributes:
        cores: Cores this process may run on.
        threads: Threads of every compute pool (torch intra-op, CatBoost, BLAS, joblib).
        source: Where ``threads`` came from: ``"--threads"``, ``"config"``,
            ``"$SURVEYLM_THREADS"``, ``"$OMP_NUM_THREADS"`` or ``"cores"``.
        environment: The pool variables as the libraries will read them.
        late: Variables that were set after the library that reads them had loaded (no
            effect in this process).
    """

    cores: int
    threads: int
    source: str
    environment: dict[str, str] = field(default_factory=dict)
    late: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The record written into ``run.json``, with torch's thread counts as they are
        now (when torch is loaded)."""
        out = asdict(self)
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            out["torch_threads"] = torch.get_num_threads()
            out["torch_interop_threads"] = torch.get_num_interop_threads()
        return out


_APPLIED: ThreadPolicy | None = None


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where the
    platform has no affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None = None, source: str = "--threads") -> tuple[int, str]:
    """The thread count and its source, without changing anything.

    Args:
        threads: An explicit setting; ``None`` = ``$SURVEYLM_THREADS``, else
            ``$OMP_NUM_THREADS``, else every available core.
        source: The explicit setting's origin, ``"--threads"`` or ``"config"``.

    Raises:
        ConfigError: a setting that is not a positive whole number.
    """
    cores = available_cores()
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"{source} threads must be a positive whole number, got {threads!r}")
        return min(threads, cores), source
    for variable in ("SURVEYLM_THREADS", "OMP_NUM_THREADS"):
        text = os.environ.get(variable, "").strip()
        if text:
            return min(_positive(text, f"${variable}"), cores), f"${variable}"
    return cores, "cores"


def apply_thread_policy(threads: int | None = None, source: str = "--threads") -> ThreadPolicy:
    """Decide the policy and apply it to this process (see the module docstring).

    The first call decides; a later call with ``threads=None`` returns the same policy.
    An explicit ``threads`` re-applies what can still change (torch's intra-op threads,
    CatBoost's default), except that a config's setting never overrides ``--threads``.

    Args:
        threads: An explicit thread count.
        source: Who asked for it: ``"--threads"`` (the command line, or a caller's own
            choice) or ``"config"`` (a run config's ``threads``).
    """
    global _APPLIED
    if _APPLIED is not None and (
        threads is None
        or threads == _APPLIED.threads
        or (source == "config" and _APPLIED.source == "--threads")
    ):
        if "torch" in sys.modules:  # loaded since the policy was decided
            _apply_torch(_APPLIED.threads)
        return _APPLIED
    n, source = resolve_threads(threads, source)
    wanted = {name: str(n) for name in POOL_VARIABLES}
    wanted["OMP_WAIT_POLICY"] = "PASSIVE"
    wanted["TOKENIZERS_PARALLELISM"] = "true" if n > 1 else "false"
    late: list[str] = []
    for name, value in wanted.items():
        explicit = source in ("--threads", "config") and name in POOL_VARIABLES
        if name in os.environ and not explicit:
            continue  # the user's own setting
        if os.environ.get(name) != value and _loaded(name):
            late.append(name)
        os.environ[name] = value
    if "torch" in sys.modules:
        _apply_torch(n)
    if "numpy" in sys.modules:  # its BLAS pool is sized already: resize it
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n, user_api="blas")
    environment = {name: os.environ[name] for name in wanted}
    _APPLIED = ThreadPolicy(cores=available_cores(), threads=n, source=source,
                            environment=environment, late=sorted(late))  # fmt: skip
    return _APPLIED


def current_policy() -> ThreadPolicy:
    """The policy of this process (applied now with the defaults if it was not yet)."""
    return _APPLIED if _APPLIED is not None else apply_thread_policy()


def catboost_threads(requested: int = -1) -> int:
    """CatBoost's ``thread_count``: ``-1`` (all) means the policy's threads, and an explicit
    count never exceeds them."""
    threads = _APPLIED.threads if _APPLIED is not None else resolve_threads()[0]
    return threads if requested < 1 else min(requested, threads)


def _apply_torch(n: int) -> None:
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if torch.get_num_interop_threads() != 1:
        # possible once per process, before any inter-op work; surveylm's eager fits
        # never start that pool, so a refusal costs nothing
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)


def _loaded(name: str) -> bool:
    """Whether the library that reads ``name`` at load time is already loaded."""
    readers = {  # torch's own thread counts follow torch.set_num_threads, not these
        "OMP_WAIT_POLICY": ("torch", "sklearn"),  # libgomp reads it when it loads
        "OMP_NUM_THREADS": ("sklearn",),
        "RAYON_NUM_THREADS": ("tokenizers",),
    }
    return any(m in sys.modules for m in readers.get(name, ()))


def _positive(text: str, source: str) -> int:
    value = int(text) if text.isdigit() else 0
    if value < 1:
        raise ConfigError(f"{source} must be a positive whole number, got {text!r}")
    return value
