"""surveylm.mi_pooling: Rubin's rules, share variances, imputation draws, MI shares, coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surveylm.errors import DataError
from surveylm.mi_pooling import (
    completed_shares,
    coverage,
    draw_imputations,
    model_imputer,
    multiple_imputation_shares,
    rubin_pool,
    share_variance,
    summarise_coverage,
)
from surveylm.missingness import mcar
from surveylm.missingness_config import MCARConfig
from surveylm.models.base import Predictions
from surveylm.survey import Question, Survey


# -- Rubin's rules -----------------------------------------------------------------------
def test_rubin_pool_hand_computed():
    # m = 3 imputations of one share, complete-data n = 101 (df_com = 100):
    #   Q̄ = (0.50 + 0.54 + 0.52) / 3 = 0.52
    #   W = (0.0010 + 0.0012 + 0.0011) / 3 = 0.0011
    #   B = ((-0.02)² + 0.02² + 0²) / (3 - 1) = 0.0004
    #   T = W + (1 + 1/3) B = 0.0011 + 0.000533333 = 0.001633333
    #   λ = 0.000533333 / 0.001633333 = 16/49 = 0.326531
    #   ν_old = (m - 1) / λ² = 2 · 49² / 16² = 18.7578125
    #   ν_obs = (100 + 1)/(100 + 3) · 100 · (1 - 16/49) = 66.039231
    #   ν = 1 / (1/18.7578125 + 1/66.039231) = 14.608428
    #   t_{0.975, 14.608} = 2.136436; half width = 2.136436 · √0.001633333 = 0.086343
    pooled = rubin_pool([[0.50], [0.54], [0.52]], [[0.0010], [0.0012], [0.0011]], n=101)
    assert pooled.estimate[0] == pytest.approx(0.52)
    assert pooled.within[0] == pytest.approx(0.0011)
    assert pooled.between[0] == pytest.approx(0.0004)
    assert pooled.total[0] == pytest.approx(0.0016333333)
    assert pooled.fmi[0] == pytest.approx(16 / 49)
    assert pooled.df[0] == pytest.approx(14.608428, rel=1e-6)
    assert pooled.lower[0] == pytest.approx(0.52 - 0.086343, abs=1e-6)
    assert pooled.upper[0] == pytest.approx(0.52 + 0.086343, abs=1e-6)
    assert pooled.m == 3 and pooled.df_com == 100


def test_rubin_pool_limits():
    # no complete-data df (n=None): Rubin (1987) ν = (m - 1) / λ²
    q, u = [[0.50], [0.54], [0.52]], [[0.0010], [0.0012], [0.0011]]
    assert rubin_pool(q, u, n=None).df[0] == pytest.approx(18.7578125)
    # no between variance: ν = ν_obs = df_com (df_com + 1)/(df_com + 3), normal-ish interval
    same = rubin_pool([[0.3], [0.3]], [[0.01], [0.01]], n=51)
    assert same.df[0] == pytest.approx(50 * 51 / 53)
    assert same.fmi[0] == 0.0
    # nothing varies at all: zero-width interval at the estimate
    flat = rubin_pool([[0.3], [0.3]], [[0.0], [0.0]], n=None)
    assert flat.lower[0] == flat.upper[0] == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("q", "u", "n", "message"),
    [
        ([[0.5]], [[0.1]], 10, "at least 2"),
        ([[0.5], [0.4]], [[0.1]], 10, "must both be"),
        ([[0.5], [0.4]], [[-0.1], [0.1]], 10, "non-negative"),
        ([[0.5], [np.nan]], [[0.1], [0.1]], 10, "finite"),
        ([[0.5], [0.4]], [[0.1], [0.1]], 1, "exceed 1"),
    ],
)
def test_rubin_pool_errors(q, u, n, message):
    with pytest.raises(DataError, match=message):
        rubin_pool(q, u, n)


def test_rubin_pool_matches_statsmodels_mice():
    """Pool the m OLS fits of statsmodels' MICE ourselves and compare with MICEResults."""
    import statsmodels.api as sm
    from statsmodels.imputation.mice import MICE, MICEData

    rng = np.random.default_rng(0)
    n = 200
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = 1.0 + 0.5 * x1 - 0.3 * x2 + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x1": x1, "x2": x2})
    df.loc[rng.random(n) < 0.3, "x1"] = np.nan
    df.loc[rng.random(n) < 0.2, "y"] = np.nan
    np.random.seed(0)  # statsmodels' MICE draws from numpy's global generator
    mice = MICE("y ~ x1 + x2", sm.OLS, MICEData(df))
    result = mice.fit(n_burnin=3, n_imputations=8)
    estimates = np.array([r.params for r in mice.results_list])
    variances = np.array([np.diag(r.cov_params()) for r in mice.results_list])
    pooled = rubin_pool(estimates, variances, n=n)
    np.testing.assert_allclose(pooled.estimate, np.asarray(result.params), rtol=1e-12)
    np.testing.assert_allclose(pooled.total, np.diag(result.cov_params()), rtol=1e-10)
    np.testing.assert_allclose(pooled.fmi, result.frac_miss_info, rtol=1e-10)
    assert (pooled.between > 0).all()


@given(
    st.lists(st.floats(0.0, 1.0), min_size=2, max_size=8),
    st.floats(1e-6, 1e-2),
    st.integers(5, 5000),
)
@settings(max_examples=60, deadline=None)
def test_rubin_pool_properties(estimates, variance, n):
    m = len(estimates)
    pooled = rubin_pool(np.array(estimates)[:, None], np.full((m, 1), variance), n)
    assert pooled.total[0] >= pooled.within[0] - 1e-15
    assert 0 <= pooled.fmi[0] <= 1
    assert 0 < pooled.df[0] <= (n - 1) * n / (n + 2) + 1e-9  # never above ν_obs(λ = 0)
    assert pooled.lower[0] <= pooled.estimate[0] <= pooled.upper[0]
    wider = rubin_pool(np.array(estimates)[:, None], np.full((m, 1), variance), n, level=0.99)
    assert wider.upper[0] - wider.lower[0] >= pooled.upper[0] - pooled.lower[0] - 1e-12


# -- share variances ---------------------------------------------------------------------
def test_share_variance_equal_weights_is_binomial():
    codes = np.array([0] * 30 + [1] * 50 + [2] * 20)
    shares, var = completed_shares(codes, np.ones(100), 3)
    np.testing.assert_allclose(shares, [0.3, 0.5, 0.2])
    np.testing.assert_allclose(var, shares * (1 - shares) / 99)


def test_share_variance_weighted_formula():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 3, size=40)
    w = rng.uniform(0.2, 3.0, size=40)
    p = np.array([w[codes == k].sum() / w.sum() for k in range(3)])
    expected = [
        40 / 39 * sum(w[i] ** 2 * ((codes[i] == k) - p[k]) ** 2 for i in range(40)) / w.sum() ** 2
        for k in range(3)
    ]
    np.testing.assert_allclose(share_variance(codes, w, 3), expected)
    with pytest.raises(DataError, match="missing"):
        completed_shares(np.array([0, -1, 1]), np.ones(3), 2)


# -- drawing imputations ------------------------------------------------------------------
def test_draw_imputations_frequencies_and_seed():
    p = np.array([[0.2, 0.8], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    draws = draw_imputations(p, 4000, seed=3)
    assert draws.shape == (4000, 4)
    assert np.array_equal(draws, draw_imputations(p, 4000, seed=3))
    assert (draws[:, 1] == 0).all() and (draws[:, 2] == 1).all()
    assert abs(draws[:, 0].mean() - 0.8) < 0.025 and abs(draws[:, 3].mean() - 0.5) < 0.025


def test_draw_imputations_per_draw_distributions():
    # d = 2 draw-specific distributions: imputation j uses draw j mod 2
    per_draw = np.array([[[1.0, 0.0, 0.0]] * 3, [[0.0, 0.0, 1.0]] * 3])
    draws = draw_imputations(per_draw, 6, seed=0)
    assert (draws[0::2] == 0).all() and (draws[1::2] == 2).all()
    preds = Predictions(
        np.array(["a", "b", "c"]),
        [np.array([0.5, 0.0, 0.5])] * 3,
        extra={"draws": {k: per_draw[:, 0] for k in "abc"}},
    )
    assert np.array_equal(draw_imputations(preds, 6, seed=0), draws)
    # an item without draws (a model's fallback) repeats its one distribution
    partial = Predictions(
        np.array(["a", "b"]),
        [np.array([0.5, 0.0, 0.5]), np.array([0.0, 1.0, 0.0])],
        extra={"draws": {"a": per_draw[:, 0]}},
    )
    mixed = draw_imputations(partial, 4, seed=0)
    assert (mixed[:, 1] == 1).all() and list(mixed[:, 0]) == [0, 2, 0, 2]
    with pytest.raises(DataError, match="distributions"):
        draw_imputations(np.ones(3), 2)


# -- multiple imputation of shares ----------------------------------------------------
def _toy(n: int = 300, seed: int = 0) -> Survey:
    """Vote B with probability 0.2 / 0.5 / 0.8 for Dem / Ind / Rep (population share 0.5)."""
    rng = np.random.default_rng(seed)
    party = rng.choice(["Dem", "Ind", "Rep"], size=n, p=[0.4, 0.2, 0.4])
    vote = np.where(rng.random(n) < pd.Series(party).map(_P_B).to_numpy(), "B", "A")
    data = pd.DataFrame({"party": party, "vote": vote}, index=[f"r{i}" for i in range(n)])
    questions = [Question("party", "Party?", ("Dem", "Ind", "Rep")),
                 Question("vote", "?", ("A", "B"))]
    return Survey(data, questions, weights=rng.uniform(0.5, 2.0, size=n), name="toy")


_P_B = {"Dem": 0.2, "Ind": 0.5, "Rep": 0.8}


def _oracle(observed: Survey, target: str) -> np.ndarray:
    """The true conditional distribution of every missing answer (a well-specified model)."""
    party = observed.answers("party").astype(object)[~observed.answered(target)]
    p_b = party.map(_P_B).to_numpy(dtype=float)
    return np.column_stack([1 - p_b, p_b])


def _confidently_wrong(observed: Survey, target: str) -> np.ndarray:
    return np.tile([0.0, 1.0], ((~observed.answered(target)).sum(), 1))


def test_mi_shares_truth_expected_and_alignment():
    survey = _toy()
    mask = mcar(survey, "vote", 0.5, seed=0)
    probs = _oracle(survey.with_answers("vote", np.where(mask, None, "A")), "vote")
    res = multiple_imputation_shares(survey, "vote", mask, probs, m=10, seed=1)
    w = survey.weights.to_numpy()
    truth_b = w[survey.codes("vote") == 1].sum() / w.sum()
    assert res.truth is not None and res.truth[1] == pytest.approx(truth_b)
    # expected share: observed answers + predicted probabilities, no sampling
    obs = ~mask
    exp_b = (w[obs] * (survey.codes("vote")[obs] == 1)).sum() + (w[mask] * probs[:, 1]).sum()
    assert res.expected[1] == pytest.approx(exp_b / w.sum())
    assert res.pooled.estimate.sum() == pytest.approx(1.0)
    frame = res.to_frame()
    assert list(frame["option"]) == ["A", "B"] and frame["covered"].dtype == bool
    # the same predictions as Predictions keyed by item id, in shuffled order
    ids = [f"vote|r={r}" for r in survey.data.index[mask]]
    order = np.random.default_rng(0).permutation(len(ids))
    preds = Predictions(np.array(ids)[order], list(probs[order]))
    again = multiple_imputation_shares(survey, "vote", mask, preds, m=10, seed=1)
    np.testing.assert_allclose(again.pooled.estimate, res.pooled.estimate)
    with pytest.raises(DataError, match="no prediction"):
        short = Predictions(np.array(ids[1:]), list(probs[1:]))
        multiple_imputation_shares(survey, "vote", mask, short, m=5)
    with pytest.raises(DataError, match="to impute"):
        multiple_imputation_shares(survey, "vote", mask, probs[1:], m=5)


def test_mi_shares_within_subgroup():
    survey = _toy()
    mask = mcar(survey, "vote", 0.5, seed=0)
    probs = _oracle(survey.with_answers("vote", np.where(mask, None, "A")), "vote")
    dem = (survey.answers("party") == "Dem").to_numpy()
    res = multiple_imputation_shares(survey, "vote", mask, probs, m=10, seed=1, subgroup=dem)
    w = survey.weights.to_numpy()
    b = survey.codes("vote") == 1
    assert res.truth[1] == pytest.approx(w[dem & b].sum() / w[dem].sum())
    assert res.n_imputed == (mask & dem).sum()
    assert abs(res.pooled.estimate[1] - 0.2) < 0.1  # Democrats vote B with probability 0.2
    full = multiple_imputation_shares(survey, "vote", mask, probs, m=10, seed=1)
    assert res.pooled.se[1] > full.pooled.se[1]  # a smaller group, a wider interval
    with pytest.raises(DataError, match="subgroup"):
        multiple_imputation_shares(survey, "vote", mask, probs, m=10, subgroup=dem[:5])


def test_mi_shares_confident_model_has_no_between_variance():
    survey = _toy()
    mask = mcar(survey, "vote", 0.5, seed=0)
    wrong = _confidently_wrong(survey.with_answers("vote", np.where(mask, None, "A")), "vote")
    res = multiple_imputation_shares(survey, "vote", mask, wrong, m=10, estimand="sample")
    assert (res.pooled.between == 0).all()
    assert (res.pooled.upper == res.pooled.lower).all()
    assert not res.covered.any()
    with pytest.raises(DataError, match="estimand"):
        multiple_imputation_shares(survey, "vote", mask, wrong, m=10, estimand="both")


# -- coverage, computed -------------------------------------------------------------------
def test_coverage_well_specified_vs_confidently_wrong():
    survey = _toy()
    scenario = MCARConfig(rate=0.5)
    good = summarise_coverage(coverage(survey, "vote", scenario, _oracle, m=10, n_reps=100))
    bad = summarise_coverage(
        coverage(survey, "vote", scenario, _confidently_wrong, m=10, n_reps=100)
    )
    assert (good["coverage"] >= 0.9).all()
    assert (bad["coverage"] <= 0.05).all()
    assert (bad["bias"].abs() > 0.15).all() and (good["bias"].abs() < 0.02).all()


def test_coverage_is_nominal_over_repeated_samples():
    """Over fresh samples (data *and* missingness random), a well-specified model's 95 %
    intervals cover the full-sample share (estimand 'sample') about 95 % of the time. The
    population share 0.5 (estimand 'population') is covered at least as often: T is
    conservative here because the oracle imputes with the *true* parameters, so the
    between-imputation variance has no parameter uncertainty to stand for (Meng 1994)."""
    hits_sample, hits_population = [], []
    for rep in range(150):
        survey = _toy(n=200, seed=1000 + rep)
        mask = mcar(survey, "vote", 0.5, seed=rep)
        probs = _oracle(survey.with_answers("vote", np.where(mask, None, "A")), "vote")
        s = multiple_imputation_shares(survey, "vote", mask, probs, 10, rep, estimand="sample")
        hits_sample.append(bool(s.covered[1]))
        p = multiple_imputation_shares(survey, "vote", mask, probs, 10, rep)
        hits_population.append(bool(p.pooled.lower[1] <= 0.5 <= p.pooled.upper[1]))
    # 150 reps: binomial sd of a 95 % rate is 1.8 points
    assert 0.89 <= np.mean(hits_sample) <= 0.99
    assert np.mean(hits_population) >= 0.93


def test_model_imputer_fits_on_observed_only(toy_survey):
    from surveylm.models.marginals import QuestionMarginalModel

    survey = toy_survey.subset(toy_survey.answered("vote"))
    mask = mcar(survey, "vote", 0.4, seed=0)
    imputer = model_imputer(QuestionMarginalModel(smoothing=0.0), ["party"])
    observed = survey.with_answers("vote", np.where(mask, None, survey.answers("vote")))
    preds = imputer(observed, "vote")
    assert len(preds) == mask.sum()
    w = survey.weights.to_numpy()[~mask]
    share_b = w[survey.codes("vote")[~mask] == 1].sum() / w.sum()
    assert preds.distributions[0][1] == pytest.approx(share_b)  # the observed marginal
