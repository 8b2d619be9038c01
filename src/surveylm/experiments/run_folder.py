"""A run folder's state: ``run.json`` says whether the run is complete or where it stopped.

``run.json`` is rewritten (atomically) as each stage starts and ends::

    {"status": "running", "stage": "simulation", "pid": 4242, "stages_done": ["imputation"]}
    {"status": "complete", "stages_done": [...], "finished": "..."}

A stage that raises (an error, Ctrl-C) records ``"interrupted"`` and the stage; a run
killed outright (``kill -9``, power loss) leaves ``"running"`` with a process id that no
longer exists, which :func:`run_status` reads as interrupted too. ``surveylm report``
shows the status, and refuses a folder that holds no run at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from surveylm.errors import DataError
from surveylm.faults import checkpoint

__all__ = ["RUN_FILE", "RunRecord", "check_run_folder", "read_run", "run_status"]

#: The file that makes a folder a run folder.
RUN_FILE = "run.json"
#: Sub-folders a run folder written before ``run.json`` existed may hold instead.
_SECTIONS = ("imputation", "simulation")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunRecord:
    """The ``run.json`` of one run, kept up to date stage by stage.

    Args:
        run_dir: The run folder (created).
        info: What to record besides the status (seed, command, ...).
    """

    def __init__(self, run_dir: str | Path, info: dict[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        self.info: dict[str, Any] = {
            **info, "status": "running", "stage": None, "stages_done": [],
            "pid": os.getpid(), "host": socket.gethostname(), "started": _now(),
            "stage_seconds": {},
        }  # fmt: skip
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.write()

    @property
    def stage_seconds(self) -> dict[str, float]:
        """Wall seconds of each finished stage, by name."""
        return self.info["stage_seconds"]

    def write(self) -> Path:
        """Write ``run.json`` now (atomically)."""
        from surveylm.io.atomic import atomic_write_text

        return atomic_write_text(self.run_dir / RUN_FILE, json.dumps(self.info, indent=2))

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Record ``name`` as running for the body; done when it returns, interrupted
        (with the error's one line) when it raises."""
        self.info.update(status="running", stage=name)
        self.write()
        checkpoint("stage-start", name)
        t0 = time.perf_counter()
        try:
            yield
        except BaseException as exc:
            self.info["status"] = "interrupted"
            self.info["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.write()
            raise
        self.info["stage_seconds"][name] = round(time.perf_counter() - t0, 1)
        self.info["stages_done"].append(name)
        self.info["stage"] = None
        self.write()
        checkpoint("stage-done", name)

    def finish(self) -> None:
        """Record the run as complete."""
        self.info.update(status="complete", stage=None, finished=_now(),
                         wall_seconds=round(sum(self.stage_seconds.values()), 1))  # fmt: skip
        self.write()


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """The run folder's ``run.json`` (``{}`` when it has none or it cannot be read)."""
    try:
        value = json.loads((Path(run_dir) / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _alive(pid: Any, host: Any) -> bool:
    if host != socket.gethostname() or not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_status(info: dict[str, Any]) -> str:
    """``"complete"``, ``"interrupted at stage X"`` (``"... after stage X"`` when it died
    between stages) or ``"running (stage X, process N)"`` from a ``run.json``;
    ``"unknown"`` for a run folder written before the status existed."""
    status = info.get("status")
    if status is None:
        return "complete" if info.get("finished") else "unknown"
    if status == "complete":
        return "complete"
    done = info.get("stages_done") or []
    where_ = f"stage {info['stage']}" if info.get("stage") else (
        f"after stage {done[-1]}" if done else "the start")  # fmt: skip
    if status == "running" and _alive(info.get("pid"), info.get("host")):
        return f"running ({where_}, process {info['pid']})"
    reason = f": {info['error']}" if info.get("error") else ""
    return f"interrupted {'at ' if info.get('stage') else ''}{where_}{reason}"


def check_run_folder(run_dir: str | Path) -> Path:
    """Refuse a folder that holds no run (no ``run.json`` and no result sections), such as
    a model folder, before a report of nothing is written.

    Raises:
        DataError: no such folder, or not a run folder.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"report: run folder '{run_dir}' does not exist")
    if (run_dir / RUN_FILE).is_file():
        return run_dir
    if any((run_dir / s / "settings.json").is_file() for s in _SECTIONS):
        return run_dir
    hint = " (it is a model folder)" if (run_dir / "model.json").is_file() else ""
    raise DataError(f"report: '{run_dir}' is not a run folder{hint}: it has no {RUN_FILE} "
                    "and no imputation/ or simulation/ results; give a folder written by "
                    "`surveylm demo`")  # fmt: skip
