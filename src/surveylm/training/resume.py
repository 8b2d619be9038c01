"""``surveylm fit --resume``: a killed fit continues from its last checkpoint.

A fit from the command line saves its training checkpoints into a hidden sibling of the
model folder, ``.<model folder>.checkpoints/`` (:func:`checkpoints_for`), beside a
record of what is being fitted (:data:`SETTINGS`: the model, its parameters and the
training items' fingerprint). The model folder itself is written whole only at the end
(:func:`surveylm.models.base.whole_folder`); the checkpoints are removed once it is in
place. After a kill, ``--resume`` continues the same fit — refusing one with other
items or parameters — and ends with the same model as an uninterrupted fit
(:meth:`surveylm.models.base.AnswerModel.fit_resumable`); a plain rerun refuses to
discard the checkpoints silently and asks for ``--resume`` or ``--overwrite``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, cast

from surveylm.errors import OutputError
from surveylm.io.atomic import atomic_write_text
from surveylm.items import ItemSet
from surveylm.models.base import AnswerModel

__all__ = ["SETTINGS", "checkpoints_for", "fit_and_save"]

#: What an interrupted fit was fitting, in its checkpoint folder.
SETTINGS = "fit.json"


def checkpoints_for(model_dir: str | Path) -> Path:
    """The checkpoint folder of a fit into ``model_dir``: ``.<name>.checkpoints`` beside it."""
    model_dir = Path(model_dir)
    return model_dir.parent / f".{model_dir.name}.checkpoints"


def _settings(model: AnswerModel, items: ItemSet) -> dict[str, Any]:
    from surveylm.fingerprint import items_fingerprint

    params = {k: v for k, v in model.get_params(deep=False).items()
              if k not in ("output_dir", "verbose")}  # fmt: skip
    return {"model": model.name, "params": json.loads(json.dumps(params, default=repr)),
            "items": items_fingerprint(items)}  # fmt: skip


def fit_and_save(
    model: AnswerModel,
    items: ItemSet,
    model_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
) -> AnswerModel:
    """Fit ``model`` on ``items`` and save it to ``model_dir``, through training
    checkpoints when the model trains in steps (``model.resumable``).

    Args:
        model: The unfitted model.
        items: The training items.
        model_dir: The model folder (written whole at the end).
        resume: Continue the interrupted fit whose checkpoints are beside ``model_dir``.
        overwrite: Discard an interrupted fit's checkpoints and start again.

    Raises:
        OutputError: ``resume`` without an interrupted fit of this model on these items,
            or checkpoints of an interrupted fit and neither ``resume`` nor ``overwrite``.
        ModelError: ``resume`` with a model that has no checkpoints.
    """
    model_dir = Path(model_dir)
    folder = checkpoints_for(model_dir)
    if resume and not _check_resumable(model, items, model_dir, folder):
        resume = False  # killed before its first checkpoint: starting again is resuming
        shutil.rmtree(folder)
    elif not resume and folder.exists():
        if not overwrite:
            raise OutputError(f"an interrupted fit left its checkpoints in '{folder}': pass "
                              "--resume to continue it, or --overwrite to start again")  # fmt: skip
        shutil.rmtree(folder)
    if not model.resumable:
        model.fit(items)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        if not resume:
            atomic_write_text(folder / SETTINGS, json.dumps(_settings(model, items), indent=1))
        model.fit_resumable(items, folder, resume=resume)
    from surveylm.fingerprint import items_fingerprint

    # evaluate warns when it scores these very items (in-sample fit)
    cast(Any, model).training_items_ = items_fingerprint(items)
    model.save(model_dir)
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    return model


def _check_resumable(model: AnswerModel, items: ItemSet, model_dir: Path, folder: Path) -> bool:
    """Refuse ``--resume`` unless ``folder`` holds an interrupted fit of this very fit;
    whether it got as far as a complete checkpoint."""
    from surveylm.training.checkpoints import last_checkpoint

    if not model.resumable:
        model.fit_resumable(items, folder, resume=True)  # raises the model's own message
    if not (folder / SETTINGS).is_file():
        done = " (it is a finished model)" if (model_dir / "model.json").is_file() else ""
        raise OutputError(f"--resume: no interrupted fit of '{model_dir}' to continue{done}; "
                          "fit without --resume")  # fmt: skip
    try:
        recorded = json.loads((folder / SETTINGS).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputError(f"file '{folder / SETTINGS}': unreadable ({exc}); "
                          "pass --overwrite to start again") from None  # fmt: skip
    wanted = _settings(model, items)
    differs = [k for k in ("model", "params", "items") if recorded.get(k) != wanted[k]]
    if differs:
        what = {"model": "another model", "params": "other parameters",
                "items": "other training items"}  # fmt: skip
        raise OutputError(f"--resume: the interrupted fit in '{folder}' was of "
                          + " and ".join(what[k] for k in differs)
                          + "; give the same command, or pass --overwrite to start again")
    return last_checkpoint(folder) is not None
