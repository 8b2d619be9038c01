"""Training checkpoints that a killed fit resumes from, to the same final numbers.

``transformers.Trainer`` already saves and restores the weights, optimiser, scheduler
and RNG states of ``output_dir/checkpoint-<step>``. Two things it cannot know are added
here:

* **completeness**: a kill during a save leaves a checkpoint folder half written, and
  ``Trainer`` would resume from it (the highest step). :class:`CheckpointMarker` writes
  :data:`MARKER` last, after every other callback's ``on_save``; :func:`last_checkpoint`
  takes the latest folder that has it.
* **the early-stopping state** held in memory by
  :class:`~surveylm.training.trainer.BestStateCallback` (the best parameters, the best
  loss and step, evaluations without improvement, the loss before training) is written
  beside each checkpoint (:data:`BEST_STATE`) and read back on resume, so a resumed run
  restores the same best state and stops at the same step as an uninterrupted one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from surveylm.faults import checkpoint as fault_point

__all__ = ["BEST_STATE", "MARKER", "CheckpointMarker", "checkpoint_folder", "last_checkpoint"]

#: Written last into a checkpoint folder: the folder is complete.
MARKER = "surveylm-checkpoint.json"
#: The early-stopping state saved beside a checkpoint (JSON and safetensors).
BEST_STATE = "best_state"

_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_folder(output_dir: str | Path, step: int) -> Path:
    """Where ``Trainer`` saves the checkpoint of ``step``."""
    return Path(output_dir) / f"checkpoint-{step}"


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete checkpoint of the highest step in ``output_dir`` (``None``: none)."""
    found = []
    for folder in Path(output_dir).glob("checkpoint-*"):
        m = _CHECKPOINT_RE.match(folder.name)
        if m and (folder / MARKER).is_file():
            found.append((int(m.group(1)), folder))
    return max(found)[1] if found else None


class CheckpointMarker(TrainerCallback):
    """Marks each saved checkpoint complete (added after every other callback)."""

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        folder = checkpoint_folder(args.output_dir, state.global_step)
        if folder.is_dir():
            text = json.dumps({"step": int(state.global_step)})
            tmp = folder / f".{MARKER}.part"
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(folder / MARKER)
            fault_point("checkpoint-saved", str(state.global_step))
