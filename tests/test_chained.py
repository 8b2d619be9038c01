"""Chained-equations imputer (mice-style): draws, equivalence, missing features, persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from surveylm.errors import DataError, NotFittedError
from surveylm.items import build_group_items, build_respondent_items
from surveylm.metrics import respondent_metrics
from surveylm.mi_pooling import coverage, model_imputer, summarise_coverage
from surveylm.missingness_config import MCARConfig
from surveylm.models.base import AnswerModel
from surveylm.models.chained import ChainedEquationsImputer
from surveylm.models.tabular import LogisticModel
from surveylm.survey import Question, Survey


def _survey(n: int = 300, seed: int = 0, gaps: float = 0.0) -> Survey:
    """Vote depends on party and age; ideology tracks party closely. With ``gaps`` > 0,
    party, ideology and age are each missing for that share of respondents."""
    rng = np.random.default_rng(seed)
    party = rng.choice(["Dem", "Ind", "Rep"], size=n)
    ideo = np.where(rng.random(n) < 0.85, party, rng.choice(["Dem", "Ind", "Rep"], size=n))
    ideo = pd.Series(ideo).map({"Dem": "left", "Ind": "centre", "Rep": "right"}).to_numpy()
    age = rng.integers(18, 90, size=n).astype(float)
    logit = np.where(party == "Rep", 2.5, np.where(party == "Dem", -2.5, 0.0)) + (age - 50) / 25
    vote = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "B", "A")
    data = pd.DataFrame(
        {"party": party.astype(object), "ideo": ideo.astype(object), "vote": vote, "age": age},
        index=[f"r{i}" for i in range(n)],
    )
    for col in ("party", "ideo", "age") if gaps else ():
        data.loc[rng.random(n) < gaps, col] = np.nan if col == "age" else None
    questions = [
        Question("party", "Party?", ("Dem", "Ind", "Rep")),
        Question("ideo", "Ideology?", ("left", "centre", "right"), (1, 2, 3)),
        Question("vote", "Vote?", ("A", "B")),
    ]
    w = rng.uniform(0.5, 2.0, size=n)
    return Survey(data, questions, weights=w, name="toy", covariates=["age"])


def _split(survey: Survey, n_train: int):
    items = build_respondent_items(survey, "vote", ["party", "ideo", "age"])
    return items.subset(np.arange(n_train)), items.subset(np.arange(n_train, len(items)))


def _matrix(preds) -> np.ndarray:
    return np.vstack(preds.distributions)


def test_predicts_with_draws():
    train, test = _split(_survey(), 200)
    model = ChainedEquationsImputer(m=4, random_state=1)
    preds = model.fit(train).predict(test)
    q = _matrix(preds)
    y = np.array([int(np.argmax(t)) for t in test.targets])
    assert respondent_metrics(y, q)["accuracy"] > 0.75
    draws, imps = preds.extra["draws"], preds.extra["imputations"]
    assert set(draws) == set(imps) == set(test.item_ids)
    first = test.item_ids[0]
    assert draws[first].shape == (4, 2) and len(imps[first]) == 4
    # Predictions renormalises what it is given, so q summing to one proves nothing; the
    # draws in ``extra`` are not checked by it: each chain's row is a distribution and every
    # respondent's prediction is the mean of its chains (fails if they were misaligned)
    stacked = np.stack([draws[i] for i in test.item_ids])
    np.testing.assert_allclose(stacked.sum(axis=2), 1.0)
    np.testing.assert_allclose(stacked.mean(axis=1), q)
    assert set(np.concatenate([imps[i] for i in test.item_ids])) <= {0, 1}
    # bootstrap draws carry parameter uncertainty: the chains disagree a little
    spread = np.std(np.stack([draws[i][:, 1] for i in test.item_ids]), axis=1)
    assert (spread > 0).mean() > 0.9


def test_without_bootstrap_equals_logistic_regression():
    """With complete features only the target is imputed: each chain fits the same
    multinomial logistic regression as LogisticModel (same one-hot coding, same L2)."""
    train, test = _split(_survey(), 200)
    chained = ChainedEquationsImputer(m=3, bootstrap=False, C=1.0).fit(train).predict(test)
    logistic = LogisticModel(C=1.0).fit(train).predict(test)
    np.testing.assert_allclose(_matrix(chained), _matrix(logistic), atol=2e-3)
    draws = np.stack([chained.extra["draws"][i] for i in test.item_ids])
    np.testing.assert_allclose(draws[:, 0], draws[:, 2])  # identical chains


def test_seeded_and_no_peeking():
    train, test = _split(_survey(), 200)
    a = ChainedEquationsImputer(m=3, random_state=5).fit(train).predict(test)
    b = ChainedEquationsImputer(m=3, random_state=5).fit(train).predict(test)
    c = ChainedEquationsImputer(m=3, random_state=6).fit(train).predict(test)
    np.testing.assert_array_equal(_matrix(a), _matrix(b))
    assert not np.allclose(_matrix(a), _matrix(c))
    hidden = test.subset(np.arange(len(test)))
    hidden.frame = hidden.frame.assign(target=None)  # the same items, answers unknown
    d = ChainedEquationsImputer(m=3, random_state=5).fit(train).predict(hidden)
    np.testing.assert_array_equal(_matrix(a), _matrix(d))


def test_incomplete_features_are_imputed_in_the_chain():
    survey = _survey(n=300, seed=2, gaps=0.25)
    train, test = _split(survey, 200)
    assert sum("party" not in c for c in test.contexts) > 10
    model = ChainedEquationsImputer(m=3, max_iter=3, random_state=0).fit(train)
    preds = model.predict(test)
    y = np.array([int(np.argmax(t)) for t in test.targets])
    assert respondent_metrics(y, _matrix(preds))["accuracy"] > 0.7
    # predictive mean matching only ever imputes observed values
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    values = np.round(x[:, 0] * 3 + 10)
    miss = rng.random(50) < 0.3
    filled = model._pmm(x, values, miss, np.ones(50), rng)
    assert set(filled) <= set(values[~miss])
    assert np.corrcoef(filled, x[miss, 0])[0, 1] > 0.8


def test_save_load_roundtrip(tmp_path):
    survey = _survey(n=200, seed=3, gaps=0.1)
    train, test = _split(survey, 150)
    model = ChainedEquationsImputer(m=2, max_iter=2, random_state=4).fit(train)
    model.save(tmp_path / "mice")
    loaded = AnswerModel.load(tmp_path / "mice")
    assert isinstance(loaded, ChainedEquationsImputer)
    np.testing.assert_allclose(_matrix(loaded.predict(test)), _matrix(model.predict(test)))


def test_errors():
    survey = _survey(n=120)
    train, test = _split(survey, 80)
    with pytest.raises(NotFittedError):
        ChainedEquationsImputer().predict(test)
    groups = build_group_items(survey, ["vote"], by="party", min_n=5)
    with pytest.raises(DataError, match="respondent items"):
        ChainedEquationsImputer().fit(groups)
    with pytest.raises(DataError, match="at least 1"):
        ChainedEquationsImputer(m=0).fit(train)
    other = build_respondent_items(survey, "ideo", ["party"])
    fallback = ChainedEquationsImputer(m=2).fit(train).predict(other)
    assert fallback.extra["fallbacks"] == len(other)


def test_proper_imputation_covers():
    """Multiple imputation from the bootstrap chains (proper) covers the full-sample share
    about as often as it should; drawing from one fitted logistic regression (improper:
    no parameter uncertainty) gives narrower intervals that cover less often. Computed over
    100 MCAR draws, not assumed."""
    survey = _survey(n=200, seed=7)
    features = ["party", "ideo", "age"]
    summaries = {
        name: summarise_coverage(
            coverage(
                survey,
                "vote",
                MCARConfig(rate=0.5),
                model_imputer(model, features),
                m=5,
                n_reps=100,
                estimand="sample",
            )
        )
        for name, model in [("mice", ChainedEquationsImputer(m=5)), ("logistic", LogisticModel())]
    }
    mice, logistic = summaries["mice"], summaries["logistic"]
    assert (mice["coverage"] >= 0.9).all()
    assert (mice["bias"].abs() < 0.02).all()
    assert (mice["mean_width"] > 1.2 * logistic["mean_width"]).all()
    assert (logistic["coverage"] < mice["coverage"]).all()
