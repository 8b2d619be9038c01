"""sl.impute (surveylm.completed_data): mice-style long completed data, Rubin-pooled shares."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surveylm.completed_data import impute, pool_shares, write_imputations
from surveylm.errors import DataError, FileFormatError
from surveylm.items import ItemSet, build_respondent_items
from surveylm.mi_pooling import multiple_imputation_shares
from surveylm.models.base import AnswerModel, Predictions
from surveylm.models.tabular import LogisticModel
from surveylm.survey import Question, Survey


def _survey(seed: int = 0, n: int = 80, n_missing: int = 10) -> Survey:
    rng = np.random.default_rng(seed)
    party = rng.choice(["Dem", "Ind", "Rep"], size=n)
    vote = np.where(party == "Rep", "B", "A").astype(object)
    vote[rng.choice(n, n_missing, replace=False)] = None
    data = pd.DataFrame({"party": party, "vote": vote}, index=[f"r{i}" for i in range(n)])
    qs = [
        Question("party", "Which party?", ("Dem", "Ind", "Rep"), None, "toy", "Party"),
        Question("vote", "Who will you vote for?", ("A", "B"), None, "toy", "Vote"),
    ]
    return Survey(data, qs, weights=rng.uniform(0.5, 2.0, n), name="toy")


class _AlternatingDraws(AnswerModel):
    """Mean distribution 50/50, but draw j puts all mass on option j mod 2."""

    name = "alternating"

    def __init__(self) -> None:
        pass

    def fit(self, items: ItemSet) -> _AlternatingDraws:
        self.fitted_ = True
        return self

    def predict(self, items: ItemSet) -> Predictions:
        draws = {str(i): np.array([[1.0, 0.0], [0.0, 1.0]]) for i in items.item_ids}
        dists = [np.array([0.5, 0.5]) for _ in items.item_ids]
        return Predictions(items.item_ids, dists, self.name, extra={"draws": draws})

    def _get_state(self) -> dict[str, Any]:
        return {}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.fitted_ = True


def test_long_format_like_mice_complete() -> None:
    s = _survey()
    out = impute(s, "vote", ["party"], "logistic", m=4, seed=1)
    assert list(out.columns) == [".imp", ".id", ".weight", "vote", "party"]
    assert sorted(out[".imp"].unique()) == [0, 1, 2, 3, 4]
    assert len(out) == 5 * s.n_respondents
    missing = ~s.answered("vote")
    original = out[out[".imp"] == 0]
    assert original[".id"].tolist() == list(s.data.index)
    np.testing.assert_array_equal(original["vote"].isna().to_numpy(), missing)
    for j in range(1, 5):
        block = out[out[".imp"] == j]
        assert not block["vote"].isna().any()
        # observed answers, features and weights are untouched
        kept = block["vote"].astype(str).to_numpy()[~missing]
        np.testing.assert_array_equal(kept, s.answers("vote").astype(str).to_numpy()[~missing])
        np.testing.assert_array_equal(block["party"].astype(str), s.data["party"].astype(str))
        np.testing.assert_allclose(block[".weight"], s.weights)
    assert list(out["vote"].cat.categories) == ["A", "B"]


def test_imputations_follow_the_model() -> None:
    # vote is determined by party: a fitted logistic model imputes (almost) deterministically
    s = _survey(n=200, n_missing=40)
    out = impute(s, "vote", ["party"], LogisticModel(), m=3, seed=0)
    block = out[(out[".imp"] == 2) & out[".id"].isin(s.data.index[~s.answered("vote")])]
    expected = np.where(block["party"] == "Rep", "B", "A")
    assert (block["vote"].astype(str).to_numpy() == expected).mean() > 0.95


def test_per_draw_distributions_are_used() -> None:
    s = _survey()
    out = impute(s, "vote", ["party"], _AlternatingDraws(), m=4, seed=0)
    missing_ids = set(s.data.index[~s.answered("vote")])
    for j in range(1, 5):
        block = out[(out[".imp"] == j) & out[".id"].isin(missing_ids)]
        assert set(block["vote"].astype(str)) == {"A" if (j - 1) % 2 == 0 else "B"}


def test_pool_shares_matches_multiple_imputation_shares() -> None:
    s = _survey(seed=3, n=150, n_missing=30)
    m, seed = 6, 5
    out = impute(s, "vote", ["party"], "question-marginal", m=m, seed=seed)
    pooled = pool_shares(out, "vote")
    items = build_respondent_items(s, "vote", ["party"], include_unanswered=True)
    known = items.has_target
    from surveylm.models.marginals import QuestionMarginalModel

    preds = QuestionMarginalModel().fit(items.subset(known)).predict(items.subset(~known))
    ref = multiple_imputation_shares(s, "vote", np.zeros(s.n_respondents, bool), preds, m, seed)
    np.testing.assert_allclose(pooled["estimate"], ref.pooled.estimate)
    np.testing.assert_allclose(pooled["lower"], ref.pooled.lower)
    np.testing.assert_allclose(pooled["upper"], ref.pooled.upper)
    assert pooled["estimate"].sum() == pytest.approx(1.0)
    assert (pooled["m"] == m).all()
    # the sample estimand has only imputation variance: narrower intervals
    narrow = pool_shares(out, "vote", estimand="sample")
    assert ((narrow["upper"] - narrow["lower"]) < (pooled["upper"] - pooled["lower"])).all()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_imputations_round_trip(tmp_path, suffix: str) -> None:
    s = _survey()
    out = impute(s, "vote", ["party"], "logistic", m=3)
    path = write_imputations(out, tmp_path / f"imputed{suffix}")
    back = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    assert len(back) == len(out)
    assert back[".imp"].tolist() == out[".imp"].tolist()
    assert back["vote"].isna().sum() == out["vote"].isna().sum()
    pd.testing.assert_frame_equal(pool_shares(back, "vote"), pool_shares(out, "vote"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"imputed{suffix}"]  # no temp left


def test_write_imputations_rejects_unknown_suffix(tmp_path) -> None:
    out = impute(_survey(), "vote", ["party"], "uniform", m=2)
    with pytest.raises(FileFormatError, match="xlsx"):
        write_imputations(out, tmp_path / "imputed.xlsx")
    assert list(tmp_path.iterdir()) == []


def test_errors() -> None:
    s = _survey()
    with pytest.raises(DataError, match="m must be"):
        impute(s, "vote", ["party"], "uniform", m=0)
    complete = _survey(n_missing=0)
    with pytest.raises(DataError, match="nothing to impute"):
        impute(complete, "vote", ["party"], "uniform", m=2)
    out = impute(s, "vote", ["party"], "uniform", m=2)
    with pytest.raises(DataError, match="still have missing"):
        pool_shares(out.assign(**{".imp": 1}), "vote")
    with pytest.raises(DataError, match=r"\.weight"):
        pool_shares(out.drop(columns=[".weight"]), "vote")


@settings(max_examples=15, deadline=None)
@given(m=st.integers(1, 4), seed=st.integers(0, 2**16), data_seed=st.integers(0, 50))
def test_observed_answers_never_change(m: int, seed: int, data_seed: int) -> None:
    s = _survey(seed=data_seed, n=40, n_missing=8)
    out = impute(s, "vote", ["party"], "question-marginal", m=m, seed=seed)
    wide = out.pivot(index=".id", columns=".imp", values="vote").astype(object)
    observed = wide[0].notna()
    assert observed.sum() == 32
    for j in range(1, m + 1):
        assert wide[j].notna().all()
        assert (wide.loc[observed, j] == wide.loc[observed, 0]).all()
