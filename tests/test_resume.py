"""``surveylm fit --resume`` logic (:mod:`surveylm.training.resume`), without subprocesses;
the kill -9 test of a real encoder fit is in ``test_fault_injection.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest

from surveylm.errors import ModelError, OutputError
from surveylm.fingerprint import items_fingerprint
from surveylm.items import ItemSet
from surveylm.models.base import AnswerModel
from surveylm.models.marginals import QuestionMarginalModel
from surveylm.training.checkpoints import MARKER
from surveylm.training.resume import SETTINGS, checkpoints_for, fit_and_save


class StepModel(QuestionMarginalModel):
    """The question marginal, posing as a model trained in steps: it records each
    ``fit``'s checkpoint folder and resume flag, and leaves one marked checkpoint."""

    resumable: ClassVar[bool] = True
    calls: ClassVar[list[tuple[str | None, object]]] = []

    def __init__(self, smoothing: float = 0.5, output_dir: str | None = None,
                 random_state=0, verbose=True) -> None:  # fmt: skip
        super().__init__(smoothing=smoothing, random_state=random_state, verbose=verbose)
        self.output_dir = output_dir

    def fit(self, items: ItemSet, *, resume_from_checkpoint=None) -> StepModel:
        out = self.output_dir
        StepModel.calls.append((out, resume_from_checkpoint))
        if out is not None:
            (Path(out) / "checkpoint-3").mkdir(exist_ok=True)
            (Path(out) / "checkpoint-3" / MARKER).write_text("{}")
        return super().fit(items)


@pytest.fixture()
def items(toy_survey) -> ItemSet:
    from surveylm.items import build_respondent_items

    return build_respondent_items(toy_survey, "vote", ["party", "age"])


def test_a_one_pass_model_writes_no_checkpoints_and_cannot_resume(items, tmp_path):
    model_dir = tmp_path / "m"
    fit_and_save(QuestionMarginalModel(), items, model_dir)
    assert (model_dir / "model.json").is_file() and not checkpoints_for(model_dir).exists()
    with pytest.raises(ModelError, match="one pass"):
        fit_and_save(QuestionMarginalModel(), items, tmp_path / "n", resume=True)


def test_checkpoints_are_kept_until_the_model_is_saved_then_removed(items, tmp_path):
    StepModel.calls.clear()
    model_dir = tmp_path / "m"
    folder = checkpoints_for(model_dir)
    assert folder == tmp_path / ".m.checkpoints"
    fit_and_save(StepModel(), items, model_dir)
    assert StepModel.calls == [(str(folder), None)]
    loaded = AnswerModel.load(model_dir)
    assert not folder.exists() and isinstance(loaded, StepModel)
    assert loaded.output_dir is None  # the checkpoint folder is not saved as a parameter


def test_resume_refusals_and_a_fit_killed_before_its_first_checkpoint(items, tmp_path):
    StepModel.calls.clear()
    model_dir = tmp_path / "m"
    folder = checkpoints_for(model_dir)
    with pytest.raises(OutputError, match="no interrupted fit"):
        fit_and_save(StepModel(), items, model_dir, resume=True)
    # what a killed fit leaves: the settings record and a marked checkpoint
    folder.mkdir()
    model = StepModel()
    record = {"model": model.name, "params": {"smoothing": 0.5, "random_state": 0},
              "items": items_fingerprint(items)}  # fmt: skip
    (folder / SETTINGS).write_text(json.dumps(record))
    (folder / "checkpoint-3").mkdir()
    (folder / "checkpoint-3" / MARKER).write_text("{}")
    with pytest.raises(OutputError, match="--resume to continue"):
        fit_and_save(StepModel(), items, model_dir)
    with pytest.raises(OutputError, match="other parameters"):
        fit_and_save(StepModel(smoothing=2.0), items, model_dir, resume=True)
    with pytest.raises(OutputError, match="other training items"):
        fit_and_save(StepModel(), items.subset([0, 1, 2]), model_dir, resume=True)
    fit_and_save(StepModel(), items, model_dir, resume=True)
    assert StepModel.calls == [(str(folder), True)] and not folder.exists()
    # killed before any checkpoint was complete: --resume starts the same fit afresh
    StepModel.calls.clear()
    folder.mkdir()
    (folder / SETTINGS).write_text(json.dumps(record))
    (folder / "checkpoint-3").mkdir()  # half-saved: no marker
    fit_and_save(StepModel(), items, tmp_path / "m", resume=True)
    assert StepModel.calls == [(str(folder), None)] and not folder.exists()
    # --overwrite drops an interrupted fit's checkpoints and starts again
    folder.mkdir()
    (folder / SETTINGS).write_text(json.dumps(record))
    StepModel.calls.clear()
    fit_and_save(StepModel(), items, tmp_path / "m", overwrite=True)
    assert StepModel.calls == [(str(folder), None)]
