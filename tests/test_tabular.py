"""Tabular answer models: logistic regression, random forest, CatBoost on respondent items."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from surveylm.errors import DataError, NotFittedError
from surveylm.items import build_group_items, build_respondent_items
from surveylm.metrics import respondent_metrics
from surveylm.models.base import AnswerModel
from surveylm.models.tabular import CatBoostModel, LogisticModel, RandomForestModel, smooth
from surveylm.survey import Question, Survey

FACTORIES = {
    "logistic": lambda: LogisticModel(),
    "random-forest": lambda: RandomForestModel(n_estimators=60, random_state=0),
    "catboost": lambda: CatBoostModel(iterations=60, thread_count=1, random_state=0),
}


def _survey(n: int = 400, seed: int = 0) -> Survey:
    """Vote (3 options, 'C' never chosen) depends on party and age; educ has gaps."""
    rng = np.random.default_rng(seed)
    party = rng.choice(["Dem", "Ind", "Rep"], size=n)
    age = rng.integers(18, 90, size=n).astype(float)
    logit = np.where(party == "Rep", 2.0, np.where(party == "Dem", -2.0, 0.0)) + (age - 50) / 20
    vote = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "B", "A").astype(object)
    educ = rng.choice(["low", "mid", "high"], size=n).astype(object)
    educ[rng.random(n) < 0.2] = None
    data = pd.DataFrame(
        {"party": party, "vote": vote, "educ": educ, "age": age},
        index=[f"r{i}" for i in range(n)],
    )
    questions = [
        Question("party", "Party?", ("Dem", "Ind", "Rep"), label="Party"),
        Question("vote", "Vote?", ("A", "B", "C")),
        Question("educ", "Education?", ("low", "mid", "high"), (1, 2, 3)),
    ]
    w = rng.uniform(0.5, 2.0, size=n)
    return Survey(data, questions, weights=w, name="toy", covariates=["age"])


@pytest.fixture(scope="module")
def split():
    survey = _survey()
    items = build_respondent_items(survey, "vote", ["party", "educ", "age"])
    train = items.subset(np.arange(300))
    test = items.subset(np.arange(300, 400))
    return train, test


@pytest.mark.parametrize("name", list(FACTORIES))
def test_models_learn_and_map_options(split, name):
    train, test = split
    model = FACTORIES[name]().fit(train)
    assert model.name == name and isinstance(model, AnswerModel)
    preds = model.predict(test)
    q = np.vstack(preds.distributions)
    assert q.shape == (100, 3)
    # each respondent gets its own distribution (Predictions renormalises, so a sum check
    # could not fail; a model ignoring the features, like the marginal, fails this one)
    assert q[:, 0].std() > 0.1
    # option 'C' was never seen: only the smoothing epsilon
    assert (q[:, 2] > 0).all() and (q[:, 2] < 1e-5).all()
    y = np.array([int(np.argmax(t)) for t in test.targets])
    base = respondent_metrics(y, np.tile([0.5, 0.5 - 1e-9, 1e-9], (100, 1)))
    got = respondent_metrics(y, q)
    assert got["accuracy"] > 0.7 and got["log_loss"] < base["log_loss"] - 0.1


@pytest.mark.parametrize("name", list(FACTORIES))
def test_save_load_roundtrip(split, name, tmp_path):
    train, test = split
    model = FACTORIES[name]().fit(train)
    model.save(tmp_path / name)
    loaded = AnswerModel.load(tmp_path / name)
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    np.testing.assert_allclose(
        np.vstack(loaded.predict(test).distributions), np.vstack(model.predict(test).distributions)
    )


@pytest.mark.parametrize("name", ["random-forest", "catboost"])
def test_seeded(split, name):
    train, test = split
    a = np.vstack(FACTORIES[name]().fit(train).predict(test).distributions)
    b = np.vstack(FACTORIES[name]().fit(train).predict(test).distributions)
    np.testing.assert_array_equal(a, b)


def test_logistic_weights_equal_duplicated_rows():
    survey = _survey(n=120, seed=3).subset(np.ones(120, dtype=bool))
    items = build_respondent_items(survey, "vote", ["party", "age"])
    frame = items.frame.copy()
    frame["weight"] = np.where(np.arange(120) < 40, 2.0, 1.0)
    weighted = items.subset(np.arange(120))
    weighted.frame = frame
    doubled = items.subset(np.r_[np.arange(120), np.arange(40)])
    doubled.frame = doubled.frame.assign(weight=1.0, item_id=[f"i{k}" for k in range(160)])
    a = LogisticModel(C=10.0).fit(weighted).predict(items)
    b = LogisticModel(C=10.0).fit(doubled).predict(items)
    np.testing.assert_allclose(np.vstack(a.distributions), np.vstack(b.distributions), atol=1e-4)
    c = LogisticModel(C=10.0).fit(items.subset(np.arange(120))).predict(items)
    assert not np.allclose(np.vstack(a.distributions), np.vstack(c.distributions), atol=1e-3)


def test_missing_and_unseen_features(split):
    train, test = split
    model = LogisticModel().fit(train)
    frame = test.frame.copy()
    # missing features, and one the model never saw (ignored)
    odd_contexts = [{"party": "Rep"}, {"age": 30}, {"educ": "low", "extra": 1}]
    frame["context"] = [*odd_contexts, *frame["context"][3:]]
    odd = test.subset(np.arange(len(test)))
    odd.frame = frame
    preds = model.predict(odd)
    assert preds.distributions[0][1] > 0.6  # Republicans vote B
    for cat in (CatBoostModel(iterations=30, thread_count=1), RandomForestModel(n_estimators=20)):
        assert len(cat.fit(train).predict(odd)) == len(odd)


def test_features_typed_by_question_and_value(split):
    train, _ = split
    model = LogisticModel().fit(train)
    assert dict(model.features_) == {"party": "categorical", "educ": "categorical",
                                     "age": "numeric"}  # fmt: skip


def test_single_option_and_unseen_question():
    survey = _survey(n=60, seed=4)
    only_a = survey.with_answers("vote", ["A"] * 60)
    items = build_respondent_items(only_a, "vote", ["party"])
    preds = LogisticModel().fit(items).predict(items)
    np.testing.assert_allclose(preds.distributions[0], smooth(np.array([1.0, 0, 0]), 1e-6))
    other = build_respondent_items(survey, "educ", ["party"])
    fallback = LogisticModel().fit(items).predict(other)
    assert fallback.extra["fallbacks"] == len(other)
    np.testing.assert_allclose(fallback.distributions[0], np.full(3, 1 / 3))


def test_errors(split):
    train, test = split
    survey = _survey(n=200)
    groups = build_group_items(survey, ["vote"], by="party", min_n=5)
    for name in FACTORIES:
        with pytest.raises(DataError, match="respondent items"):
            FACTORIES[name]().fit(groups)
        with pytest.raises(NotFittedError):
            FACTORIES[name]().predict(test)
    unknown = test.subset(np.arange(len(test)))
    unknown.frame = unknown.frame.assign(target=None)
    with pytest.raises(DataError, match="no training items"):
        LogisticModel().fit(unknown)
    bad = test.subset(np.arange(3))
    bad.frame = bad.frame.assign(context=[{"age": "old"}] * 3)
    with pytest.raises(DataError, match="'age' was numeric"):
        LogisticModel().fit(train).predict(bad)
