"""A question asked with its options reordered is answered by label, not by position.

The option-order robustness check (SubPOP; Cao et al. 2025) asks a training question with
its options permuted; every fitted model must read its per-question state (marginals, log
priors, calibration offsets, indicator-table columns) in the item's order.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lm_fixtures import fast_fine_tune, tiny_items, tiny_model_dir
from surveylm.datasets import load_dataset
from surveylm.experiments.simulation import permute_options, predict_permuted
from surveylm.items import ItemSet, build_group_items
from surveylm.models.base import AnswerModel
from surveylm.models.option_order import in_question_order, trained_positions


def _back(model: AnswerModel, items: ItemSet, seed: int = 5) -> list[np.ndarray]:
    """Predictions for the permuted items, mapped back to the codebook order."""
    return predict_permuted(model, items, seed, "m").distributions


def _tv(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([0.5 * np.abs(x - y).sum() for x, y in zip(a, b, strict=True)]))


@pytest.fixture(scope="module")
def groups() -> ItemSet:
    survey = load_dataset("anes1996")
    return build_group_items(survey, ["vote", "PID", "selfLR", "TVnews"],
                             by=["party", "educ3", "age_group"], min_n=15)  # fmt: skip


def test_positions_of_reordered_labels():
    assert trained_positions(["a", "b", "c"], ["a", "b", "c"]) is None
    assert trained_positions(None, ["a", "b"]) is None
    assert trained_positions(["a", "b"], ["a", "x"]) is None  # another question
    idx = trained_positions(["a", "b", "c"], ["c", "a", "b"])
    assert idx.tolist() == [2, 0, 1]
    m = np.array([0.5, 0.3, 0.2])
    assert in_question_order(m, {"q": ["a", "b", "c"]}, "q", ["c", "a", "b"]).tolist() == \
        [0.2, 0.5, 0.3]  # fmt: skip


@pytest.mark.parametrize("name", ["question-marginal", "group-marginal"])
def test_marginal_models_answer_by_label(groups, name, tmp_path):
    from surveylm.models.marginals import GroupMarginalModel, QuestionMarginalModel

    cls = QuestionMarginalModel if name == "question-marginal" else GroupMarginalModel
    model = cls().fit(groups)
    same = model.predict(groups).distributions
    for back in (_back(model, groups), _back(AnswerModel.load(model.save(tmp_path / "m")),
                                             groups)):  # fmt: skip
        for x, y in zip(back, same, strict=True):
            np.testing.assert_allclose(x, y, atol=1e-12)


@pytest.mark.filterwarnings("ignore")
def test_fitted_encoder_answers_a_reordered_question_by_label(groups):
    """Only the option-position features may differ: a small TV (reading the state by
    position had made the demo's encoder KL score TV .410 reversed against .142)."""
    from surveylm.models.encoder import EncoderAnswerModel

    model = EncoderAnswerModel(fine_tune={"epochs": 40.0}, verbose=False).fit(groups)
    same = model.predict(groups).distributions
    assert _tv(_back(model, groups), same) < 0.05
    # a fully shrunk model is its marginal: equal by label whatever the order
    model.shrinkage_ = dataclasses.replace(model.shrinkage_, seen=0.0, new_group=0.0)
    for x, y in zip(_back(model, groups), model.predict(groups).distributions, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-9)


@pytest.mark.filterwarnings("ignore")
def test_causal_lm_offsets_and_marginal_follow_the_labels(tmp_path):
    from surveylm.models.causal_lm import CausalLMAnswerModel

    items = tiny_items(40, seed=3)
    settings = {**fast_fine_tune(4), "learning_rate": 1e-12, "validation_fraction": 0.25}
    model = CausalLMAnswerModel(str(tiny_model_dir("space")), fine_tune=settings,
                                batch_size=8, verbose=False).fit(items)  # fmt: skip
    assert model.beats_marginal_ is False
    # fully shrunk, it answers seen questions with the marginal: equal by label
    model.shrinkage_ = dataclasses.replace(model.shrinkage_, seen=0.0, new_group=0.0)
    same = model.predict(items).distributions
    for x, y in zip(_back(model, items), same, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-9)
    # the marginal start's offsets are read by label: each prompt position gets the
    # offset of the option shown there (also after save and load)
    loaded = CausalLMAnswerModel.load(model.save(tmp_path / "m"))
    permuted, _ = permute_options(items, 5)
    qids = permuted.frame["question_id"].to_numpy()
    for m in (model, loaded):
        for e in m._encode(permuted, 2):
            q = qids[e.index]
            shown = [permuted.questions[q].options[o] for o in e.order]
            trained = list(items.questions[q].options)
            expected = [m.option_offsets_[q][trained.index(label)] for label in shown]
            np.testing.assert_allclose(e.offset, expected, atol=1e-12)
