"""Validated pooling towards an anchor, one weight per kind of item
(surveylm.models.shrinkage), and the causal LM that uses it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lm_fixtures import fast_fine_tune, tiny_items, tiny_model_dir
from surveylm.items import build_group_items
from surveylm.models.shrinkage import (
    Shrinkage,
    choose_shrinkage,
    group_keys,
    item_kinds,
    pool,
)
from test_inner_split import _battery_survey


def _one_hot(k: int, j: int) -> np.ndarray:
    return np.eye(k)[j]


def test_each_kind_gets_the_weight_its_own_validation_items_support():
    """The model is right on seen items, wrong on new groups; a new question's battery
    prior is right where the uniform is not."""
    truth = np.array([0.8, 0.1, 0.1])
    kinds = ["seen"] * 4 + ["new_group"] * 4 + ["new_question"] * 4
    targets = [truth] * 12
    right, wrong = truth, np.array([0.05, 0.05, 0.9])

    def model(i: int, name: str) -> np.ndarray:
        return right if kinds[i] == "seen" else wrong

    def anchor(i: int, name: str) -> np.ndarray:
        if name == "uniform":
            return np.full(3, 1 / 3)
        return truth if kinds[i] != "seen" else np.array([0.2, 0.4, 0.4])

    s = choose_shrinkage(kinds, targets, range(12), model, anchor)
    assert s == Shrinkage(seen=1.0, new_group=0.0, new_question=0.0, new_question_prior="battery")
    # only seen items validate: the untested kinds keep their anchor
    assert choose_shrinkage(kinds, targets, range(4), model, anchor) == Shrinkage(seen=1.0)
    assert choose_shrinkage(kinds, targets, [], model, anchor) == Shrinkage()


def test_a_model_that_lost_to_the_marginal_gets_no_weight_on_fitted_questions():
    """A mixture of a model and the marginal can beat both on the validation items (here
    weight 0.5, whose pool is the truth); once the model lost to the marginal, fitted
    questions get the marginal all the same, new questions keep their validated weight."""
    truth = np.array([0.5, 0.5])
    kinds = ["seen"] * 3 + ["new_group"] * 3 + ["new_question"] * 3
    targets = [truth] * 9

    def model(i: int, name: str) -> np.ndarray:
        return np.array([0.9, 0.1]) if kinds[i] != "new_question" else truth

    def anchor(i: int, name: str) -> np.ndarray:
        return np.array([0.1, 0.9]) if name == "marginal" else np.array([0.2, 0.8])

    trusted = choose_shrinkage(kinds, targets, range(9), model, anchor)
    assert (trusted.seen, trusted.new_group, trusted.new_question) == (0.5, 0.5, 1.0)
    lost = choose_shrinkage(kinds, targets, range(9), model, anchor, lost_to_marginal=True)
    assert (lost.seen, lost.new_group, lost.new_question) == (0.0, 0.0, 1.0)


def test_item_kinds_tell_new_questions_new_groups_and_seen_items_apart():
    survey = _battery_survey(items=3)
    items = build_group_items(survey, ["b0", "b1", "b2"], by=["region", "age"], min_n=10)
    keys = group_keys(items)
    assert keys == items.frame["group"].tolist()  # labelled groups keep their label
    fit_groups = {g for g in keys if not g.startswith("region = North")}
    kinds = item_kinds(items, {"b0", "b1"}, fit_groups)
    for q, g, kind in zip(items.frame["question_id"], keys, kinds, strict=True):
        expected = ("new_question" if q == "b2" else
                    "new_group" if g.startswith("region = North") else "seen")  # fmt: skip
        assert kind == expected
    # a respondent item belongs to no group: a fitted question's item is seen
    respondents = tiny_items(6, kind="respondent")
    assert set(group_keys(respondents)) == {None}
    assert item_kinds(respondents, {"q0", "q1", "q2"}, set()) == ["seen"] * 6
    # an older saved model (no groups kept) reads every item of a fitted question as seen
    assert "new_group" not in item_kinds(items, {"b0", "b1"}, None)


def test_pool_and_older_saved_weights():
    np.testing.assert_allclose(pool(np.array([1.0, 0.0]), np.array([0.5, 0.5]), 0.4),
                               [0.7, 0.3])  # fmt: skip
    old = {"seen_question_weight": 0.3, "unseen_question_weight": 0.6,
           "unseen_question_prior": "battery"}  # fmt: skip
    assert Shrinkage.from_state(old) == Shrinkage(0.3, 0.3, 0.6, "battery")
    s = Shrinkage(0.9, 0.1, 0.5, "uniform")
    assert Shrinkage.from_state({"shrinkage": s.to_dict()}) == s


@pytest.mark.filterwarnings("ignore")
def test_causal_lm_pools_with_validated_weights_and_keeps_them(tmp_path):
    """A question it was not fitted on gets the uniform (no held-out question validated
    a guess: three training questions), a fitted one is pooled with its marginal by the
    chosen weight, and a saved model predicts the same."""
    from surveylm.models.base import AnswerModel
    from surveylm.models.causal_lm import CausalLMAnswerModel
    from surveylm.models.marginals import QuestionMarginalModel

    items = tiny_items(60, seed=3)
    qids = items.frame["question_id"].to_numpy()
    train, new = items.subset(qids != "q2"), items.subset(qids == "q2")
    settings = {**fast_fine_tune(6), "validation_fraction": 0.25}
    model = CausalLMAnswerModel(str(tiny_model_dir("space")), fine_tune=settings,
                                batch_size=8, verbose=False).fit(train)  # fmt: skip
    s = model.shrinkage_
    assert s is not None and s.new_question == 0.0 and model.validation_["shrinkage"] == s.to_dict()
    k = items.questions["q2"].n_options
    for row in model.predict(new).distributions:
        np.testing.assert_allclose(row, np.full(k, 1 / k), atol=1e-12)
    pred = model.predict(train)
    assert pred.extra["shrinkage"] == s.to_dict()
    # fully shrunk (and its training cells set aside), every fitted item is its
    # question's training marginal
    cells = model.seen_cells_
    assert cells is not None and cells.kappa == model.validation_["seen_cell_kappa"]
    model.shrinkage_, model.seen_cells_ = dataclasses.replace(s, seen=0.0, new_group=0.0), None
    marginal = QuestionMarginalModel().fit(train).predict(train).distributions
    for ours, theirs in zip(model.predict(train).distributions, marginal, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-9)
    model.shrinkage_, model.seen_cells_ = s, cells
    loaded = AnswerModel.load(model.save(tmp_path / "m"))
    assert loaded.shrinkage_ == s and loaded.fit_groups_ == model.fit_groups_
    assert loaded.seen_cells_ == cells
    for a, b in zip(loaded.predict(items).distributions, model.predict(items).distributions,
                    strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b, atol=1e-9)


@pytest.mark.filterwarnings("ignore")
def test_causal_lm_fits_group_items_with_held_out_questions_and_groups():
    """Eight or more questions and five or more groups: the inner split holds out both
    (a held-out question has no fit-part marginal: its baseline is the uniform), and every
    kind gets a weight from its own validation items."""
    from surveylm.models.causal_lm import CausalLMAnswerModel

    survey = _battery_survey(n=600, items=9)
    items = build_group_items(survey, [f"b{j}" for j in range(9)], by=["region", "age"],
                              min_n=10)  # fmt: skip
    settings = {**fast_fine_tune(4), "validation_fraction": 0.25}
    model = CausalLMAnswerModel(str(tiny_model_dir("space")), fine_tune=settings,
                                batch_size=16, verbose=False).fit(items)  # fmt: skip
    v = model.validation_
    assert v["n_validation"] > 0 and v["marginal"] is not None
    # a question and groups were held out: no marginal-start offset, not in the fit part
    assert set(model.option_offsets_) < set(items.question_ids)
    assert set(model.fit_groups_) < set(items.frame["group"])
    assert len(model.predict(items).distributions) == len(items)
