"""Named points where a test can kill the process, to prove a crash loses nothing.

``SURVEYLM_KILL_AT=<point>`` (or ``<point>:<name>``) makes the process send itself
SIGKILL when it reaches that point — no cleanup, no ``finally``, as with ``kill -9`` or a
power cut. The points:

* ``file-written:<file name>``: a file written whole is complete under its temporary
  name, not yet renamed (:func:`surveylm.io.atomic.atomic_path`);
* ``folder-written:<folder name>``: a folder written whole is complete in its temporary
  sibling, not yet swapped in (:func:`surveylm.io.atomic.atomic_dir`);
* ``stage-start:<stage>`` / ``stage-done:<stage>``: a run's stage begins / has just
  been recorded as done (:class:`surveylm.experiments.run_folder.RunRecord`);
* ``checkpoint-saved:<step>``: a fit's training checkpoint of that optimiser step is
  complete (:class:`surveylm.training.checkpoints.CheckpointMarker`).

Without the variable :func:`checkpoint` does nothing. ``tests/test_fault_injection.py``
runs commands in subprocesses with it set.
"""

from __future__ import annotations

import os
import signal

__all__ = ["KILL_VARIABLE", "checkpoint"]

#: The environment variable naming the point to be killed at.
KILL_VARIABLE = "SURVEYLM_KILL_AT"


def checkpoint(point: str, name: str = "") -> None:
    """SIGKILL this process if ``$SURVEYLM_KILL_AT`` names ``point`` or ``point:name``."""
    wanted = os.environ.get(KILL_VARIABLE)
    if wanted and wanted in (point, f"{point}:{name}"):
        os.kill(os.getpid(), signal.SIGKILL)
