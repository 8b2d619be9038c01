"""The inner validation split: group items are validated the way they are tested."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from surveylm.items import build_group_items
from surveylm.models.item_texts import battery_log_prior, marginal_log_prior
from surveylm.models.option_order import option_labels
from surveylm.models.validation import inner_split
from surveylm.survey import Question, Survey

SCALE = ("Very important", "Somewhat important", "Not at all important")


def _battery_survey(n: int = 900, items: int = 10, seed: int = 0) -> Survey:
    """``items`` questions on one three-point scale (all answered 70/20/10), one yes/no
    question, and two grouping variables with four and three groups."""
    rng = np.random.default_rng(seed)
    data = {f"b{j}": rng.choice(SCALE, n, p=[0.7, 0.2, 0.1]) for j in range(items)}
    data["yes"] = rng.choice(["Yes", "No"], n)
    data["region"] = rng.choice(["North", "South", "East", "West"], n)
    data["age"] = rng.choice(["Young", "Middle", "Old"], n)
    questions = [Question(f"b{j}", f"How important is thing {j} to you?", SCALE)
                 for j in range(items)]  # fmt: skip
    questions += [Question("yes", "Do you agree?", ("Yes", "No")),
                  Question("region", "Region", ("North", "South", "East", "West")),
                  Question("age", "Age", ("Young", "Middle", "Old"))]  # fmt: skip
    return Survey(pd.DataFrame(data), questions, name="battery")


def test_group_items_hold_out_whole_groups_of_every_variable_and_whole_questions():
    survey = _battery_survey()
    qids = [f"b{j}" for j in range(10)] + ["yes"]
    items = build_group_items(survey, qids, by=["region", "age"], min_n=10)
    fit, val = inner_split(items, 0.3, seed=0)
    frame = items.frame
    fit_groups, val_groups = set(frame["group"].iloc[fit]), set(frame["group"].iloc[val])
    fit_q, val_q = set(frame["question_id"].iloc[fit]), set(frame["question_id"].iloc[val])
    held_groups, held_q = val_groups - fit_groups, val_q - fit_q
    assert held_groups and held_q  # both kinds of held-out cells exist
    # every validation item is of a held-out group or a held-out question (no pair split)
    for g, q in zip(frame["group"].iloc[val], frame["question_id"].iloc[val], strict=True):
        assert g in held_groups or q in held_q
    # each grouping variable keeps seen groups and loses at least one
    for var in ("region", "age"):
        of_var = {g for g in frame["group"] if g.startswith(var)}
        assert of_var & held_groups and of_var - held_groups
    assert np.array_equal(inner_split(items, 0.3, seed=0)[1], val)  # seeded


def test_few_groups_fall_back_to_some_groups_of_every_question():
    survey = _battery_survey()
    qids = ["b0", "b1", "b2", "b3", "yes"]
    items = build_group_items(survey, qids, by="age", min_n=10)  # 3 groups, 15 items
    fit, val = inner_split(items, 0.34, seed=0)
    frame = items.frame
    # with fewer than five groups every question keeps seen groups and loses some
    for q in qids:
        assert (frame["question_id"].iloc[val] == q).sum() >= 1
        assert (frame["question_id"].iloc[fit] == q).sum() >= 1


def test_battery_prior_is_the_siblings_mean_leaving_the_question_out():
    survey = _battery_survey(items=3)
    items = build_group_items(survey, ["b0", "b1", "b2", "yes"], by="age", min_n=10)
    marg = {q: np.exp(v) for q, v in marginal_log_prior(items).items()}
    prior = battery_log_prior(option_labels(items), {q: marg[q] for q in ("b0", "b1", "yes")},
                              ["b0", "b2", "yes"])  # fmt: skip
    assert set(prior) == {"b0", "b2"}  # "yes" has no sibling on its scale
    np.testing.assert_allclose(np.exp(prior["b0"]), marg["b1"])  # itself left out
    np.testing.assert_allclose(np.exp(prior["b2"]), (marg["b0"] + marg["b1"]) / 2)


@pytest.mark.filterwarnings("ignore")
def test_encoder_starts_a_new_battery_question_from_its_siblings(tmp_path):
    """An unseen item of a battery answered 70/20/10 is predicted near 70/20/10, far from
    the uniform the model would give without the battery prior."""
    from surveylm.models.encoder import EncoderAnswerModel

    survey = _battery_survey(items=12)
    qids = [f"b{j}" for j in range(12)] + ["yes"]
    items = build_group_items(survey, qids, by=["region", "age"], min_n=10)
    train = items.subset(~items.frame["question_id"].isin(["b11"]).to_numpy())
    test = items.subset(items.frame["question_id"].isin(["b11"]).to_numpy())
    model = EncoderAnswerModel(fine_tune={"epochs": 20.0}, verbose=False).fit(train)
    assert model.shrinkage_.new_question_prior == "battery"
    pred = np.vstack(model.predict(test).distributions)
    truth = np.vstack([np.asarray(t, dtype=float) for t in test.targets])
    tv = 0.5 * np.abs(pred - truth).sum(axis=1).mean()
    tv_uniform = 0.5 * np.abs(1 / 3 - truth).sum(axis=1).mean()
    assert tv < 0.5 * tv_uniform
    # fully shrunk, the prediction is exactly the siblings' mean training marginal, and
    # a saved model predicts the same
    model.shrinkage_ = dataclasses.replace(model.shrinkage_, new_question=0.0)
    expected = np.mean([model.marginal_[f"b{j}"] for j in range(11)], axis=0)
    for row in model.predict(test).distributions:
        np.testing.assert_allclose(row, expected / expected.sum(), atol=1e-9)
    loaded = EncoderAnswerModel.load(model.save(tmp_path / "m"))
    assert loaded.shrinkage_ == model.shrinkage_
    np.testing.assert_allclose(np.vstack(loaded.predict(test).distributions),
                               np.vstack(model.predict(test).distributions), atol=1e-9)


def test_battery_prior_reads_siblings_by_label_in_any_order():
    survey = _battery_survey(items=2)
    items = build_group_items(survey, ["b0", "b1"], by="age", min_n=10)
    marg = {q: np.exp(v) for q, v in marginal_log_prior(items).items()}
    labels = {**option_labels(items), "new": list(reversed(SCALE))}
    prior = battery_log_prior(labels, {"b0": marg["b0"]}, ["new"])
    np.testing.assert_allclose(np.exp(prior["new"]), marg["b0"][::-1])
