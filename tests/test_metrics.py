"""Metrics agree with independent implementations (scipy, scikit-learn) on random inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from sklearn import metrics as skm

from surveylm import metrics as M
from surveylm.errors import CodebookError, DataError, DistributionError

FAST = settings(max_examples=60, deadline=None)


@st.composite
def dist_pair(draw, min_k: int = 2, max_k: int = 9, zeros: bool = True):
    """Two random distributions of the same length (with exact zeros sometimes)."""
    k = draw(st.integers(min_k, max_k))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    alpha = draw(st.sampled_from([0.2, 1.0, 5.0]))
    p, q = rng.dirichlet(np.full(k, alpha), size=2)
    if zeros and draw(st.booleans()):
        p[rng.integers(k)] = 0.0
        p = p / p.sum() if p.sum() > 0 else np.full(k, 1.0 / k)
    return p, q


@st.composite
def ordinal_case(draw):
    """Distributions plus increasing ordinal values, some options negative (non-substantive)."""
    p, q = draw(dist_pair(min_k=3, max_k=9))
    k = len(p)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_neg = draw(st.integers(0, min(2, k - 2)))
    neg_pos = rng.choice(k, size=n_neg, replace=False)
    values = np.cumsum(rng.uniform(0.1, 3.0, size=k)) + rng.uniform(0, 5)
    values[neg_pos] = -rng.integers(1, 10, size=n_neg)
    keep = values >= 0
    values[keep] = np.sort(values[keep])
    # Each side needs substantive mass for the distance to be defined.
    p[keep] += 1e-3
    q[keep] += 1e-3
    return p / p.sum(), q / q.sum(), values


# -- distribution metrics vs scipy -----------------------------------------------------
@st.composite
def values_as_given(draw):
    """Distributions plus ordinal values in any order: fractional, descending, unequally
    spaced, with ties and with -1 codes, as in SubPOP's files."""
    p, q = draw(dist_pair(min_k=2, max_k=9))
    k = len(p)
    style = draw(st.sampled_from(["descending", "shuffled", "fractional-ties"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = np.round(np.cumsum(rng.uniform(0.05, 4.0, size=k)), 2)
    if style == "descending":
        values = values[::-1].copy()
    elif style == "shuffled":
        values = rng.permutation(values)
    else:
        values = rng.choice([0.0, 0.5, 1.0, 1.5, 2.25], size=k)
        values[:2] = [0.5, 2.25]  # at least two distinct values
    n_neg = draw(st.integers(0, max(0, k - 2)))
    neg = rng.permutation(np.arange(2, k))[:n_neg] if k > 2 else []
    values[neg] = -1.0
    keep = values >= 0
    p[keep] += 1e-3
    q[keep] += 1e-3
    return p / p.sum(), q / q.sum(), values


@settings(max_examples=200, deadline=None)
@given(values_as_given())
def test_wasserstein_on_values_as_given_matches_scipy(case):
    p, q, o = case
    keep = o >= 0
    ps, qs, os_ = p[keep] / p[keep].sum(), q[keep] / q[keep].sum(), o[keep]
    expected = scipy.stats.wasserstein_distance(os_, os_, ps, qs) / (os_.max() - os_.min())
    got = M.wasserstein(p, q, o)
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= got <= 1.0 + 1e-12
    # the matrix kernel agrees row by row
    rows = M.distribution_metrics(np.stack([p, q]), np.stack([q, p]), o)["wd"]
    np.testing.assert_allclose(rows, [got, got], atol=1e-12)


def test_wasserstein_descending_fractional_values_equal_their_ascending_reordering():
    # SubPOP: "Too little / About right / Too much" coded 2.0 / 1.5 / 1.0
    p, q = [0.5, 0.3, 0.2], [0.1, 0.3, 0.6]
    got = M.wasserstein(p, q, [2.0, 1.5, 1.0])
    assert got == pytest.approx(M.wasserstein(p[::-1], q[::-1], [1.0, 1.5, 2.0]))
    assert got == pytest.approx(scipy.stats.wasserstein_distance(
        [2.0, 1.5, 1.0], [2.0, 1.5, 1.0], p, q) / 1.0)  # fmt: skip
    # unequal spacing counts: moving mass across the wide gap costs more
    assert M.wasserstein([1, 0, 0], [0, 1, 0], [1, 2, 10]) == pytest.approx(1 / 9)
    assert M.wasserstein([0, 1, 0], [0, 0, 1], [1, 2, 10]) == pytest.approx(8 / 9)


@FAST
@given(ordinal_case())
def test_wasserstein_matches_scipy_with_non_substantive_options_dropped(case):
    p, q, o = case
    keep = o >= 0
    ps, qs, os_ = p[keep] / p[keep].sum(), q[keep] / q[keep].sum(), o[keep]
    expected = scipy.stats.wasserstein_distance(os_, os_, ps, qs) / (os_[-1] - os_[0])
    got = M.wasserstein(p, q, o)
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= got <= 1.0 + 1e-12


@FAST
@given(dist_pair())
def test_js_divergence_matches_scipy(pq):
    p, q = pq
    expected = jensenshannon(p, q, base=2) ** 2
    assert M.js_divergence(p, q) == pytest.approx(expected, abs=1e-12)
    assert M.js_distance(p, q) == pytest.approx(np.sqrt(expected), abs=1e-7)
    # (js_divergence clips to [0, 1], so a bounds check could not fail): symmetric, and zero
    # only against itself
    assert M.js_divergence(q, p) == pytest.approx(M.js_divergence(p, q), abs=1e-12)
    assert M.js_divergence(p, p) == pytest.approx(0.0, abs=1e-12)


@FAST
@given(dist_pair())
def test_kl_matches_scipy_entropy_with_floor(pq):
    p, q = pq
    expected = scipy.stats.entropy(p, np.maximum(q, M.KL_FLOOR))
    assert M.kl_divergence(p, q) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@FAST
@given(dist_pair())
def test_tv_simbench_and_entropy(pq):
    p, q = pq
    tv = 0.5 * np.abs(p - q).sum()
    assert M.total_variation(p, q) == pytest.approx(tv, abs=1e-15)
    tv_u = 0.5 * np.abs(p - 1 / len(p)).sum()
    if tv_u > 1e-9:
        assert M.simbench_score(p, q) == pytest.approx(100 * (1 - tv / tv_u), rel=1e-9)
    assert M.entropy(p) == pytest.approx(scipy.stats.entropy(p, base=2), abs=1e-12)


@FAST
@given(st.lists(dist_pair(min_k=4, max_k=4), min_size=1, max_size=8))
def test_matrix_version_equals_single_item_functions(pairs):
    p = np.vstack([a for a, _ in pairs])
    q = np.vstack([b for _, b in pairs])
    o = np.array([1.0, 2.0, 5.0, -1.0])
    rows = M.distribution_metrics(p, q, o)
    for i in range(len(p)):
        assert rows["tv"][i] == pytest.approx(M.total_variation(p[i], q[i]), abs=1e-15)
        assert rows["kl"][i] == pytest.approx(M.kl_divergence(p[i], q[i]), abs=1e-12)
        assert rows["jsd"][i] == pytest.approx(M.js_divergence(p[i], q[i]), abs=1e-15)
        np.testing.assert_allclose(rows["wd"][i], M.wasserstein(p[i], q[i], o), atol=1e-15)
        np.testing.assert_allclose(rows["simbench"][i], M.simbench_score(p[i], q[i]))


# -- edge cases ------------------------------------------------------------------------
def test_nominal_wd_is_nan_and_identical_distributions_score_zero():
    p = np.array([0.2, 0.5, 0.3])
    assert np.isnan(M.wasserstein(p, p, None))
    assert M.wasserstein(p, p, [1, 2, 3]) == 0.0
    assert M.total_variation(p, p) == 0.0
    assert M.js_divergence(p, p) == pytest.approx(0.0, abs=1e-15)
    assert M.kl_divergence(p, p) == pytest.approx(0.0, abs=1e-15)
    assert M.simbench_score(p, p) == pytest.approx(100.0)


def test_wd_extremes_and_all_mass_on_dont_know():
    assert M.wasserstein([1, 0, 0], [0, 0, 1], [1, 2, 3]) == pytest.approx(1.0)
    # Unequal spacing: the middle option sits at 3 of [1, 5].
    assert M.wasserstein([1, 0, 0], [0, 1, 0], [1, 3, 5]) == pytest.approx(0.5)
    # Dropped "don't know" option, renormalised: [0.5, 0.5] vs [0, 1] -> 0.5.
    assert M.wasserstein([0.25, 0.25, 0.5], [0, 1, 0], [1, 2, -1]) == pytest.approx(0.5)
    assert np.isnan(M.wasserstein([0, 0, 1], [0.5, 0.5, 0], [1, 2, -1]))


def test_simbench_is_nan_for_uniform_human_and_zero_for_uniform_model():
    assert np.isnan(M.simbench_score([0.25] * 4, [0.1, 0.2, 0.3, 0.4]))
    assert M.simbench_score([0.1, 0.2, 0.3, 0.4], [0.25] * 4) == pytest.approx(0.0, abs=1e-9)


def test_kl_floor_bounds_a_zero_prediction():
    assert M.kl_divergence([0.5, 0.5], [1.0, 0.0]) == pytest.approx(
        0.5 * np.log(0.5) + 0.5 * np.log(0.5 / 1e-12)
    )


@pytest.mark.parametrize(
    "p, q",
    [
        ([0.5, 0.6], [0.5, 0.5]),  # does not sum to 1
        ([-0.1, 1.1], [0.5, 0.5]),  # negative
        ([np.nan, 1.0], [0.5, 0.5]),  # NaN
        ([0.5, 0.5], [0.2, 0.3, 0.5]),  # lengths differ
    ],
)
def test_invalid_distributions_raise(p, q):
    for fn in (M.total_variation, M.js_divergence, M.kl_divergence, M.simbench_score):
        with pytest.raises(DistributionError):
            fn(p, q)
    with pytest.raises(DistributionError):
        M.wasserstein(p, q, [1, 2])
    with pytest.raises(DistributionError):
        M.distribution_metrics(np.atleast_2d(p), np.atleast_2d(q))


def test_error_names_the_location():
    with pytest.raises(DistributionError, match=r"question 'q1'.*model distribution"):
        M.total_variation([0.5, 0.5], [0.9, 0.3], context="question 'q1': ")


@pytest.mark.parametrize("ordinal", [[1, 2], [2, 2, -1], [1, -1, -2], [1, np.nan, 3]])
def test_bad_ordinal_values_raise(ordinal):
    with pytest.raises(CodebookError):
        M.wasserstein([0.2, 0.3, 0.5], [0.3, 0.3, 0.4], ordinal)


# -- noise floor -----------------------------------------------------------------------
def test_noise_floor_is_seeded_shrinks_with_n_and_matches_tv_expectation():
    p = [0.1, 0.2, 0.3, 0.4]
    a = M.noise_floor(p, 50, [1, 2, 3, 4], seed=3)
    assert a == M.noise_floor(p, 50, [1, 2, 3, 4], seed=3)
    big = M.noise_floor(p, 5000, [1, 2, 3, 4], seed=3)
    for m in ("wd", "tv", "jsd", "kl"):
        assert 0 < big[m] < a[m]
    # E|p̂_k − p_k| ≈ sqrt(2 p_k(1−p_k) / (π n)) for large n.
    n = 5000
    approx = 0.5 * sum(np.sqrt(2 * x * (1 - x) / (np.pi * n)) for x in p)
    assert big["tv"] == pytest.approx(approx, rel=0.1)
    assert np.isnan(M.noise_floor(p, 50, None)["wd"])


def test_floor_sample_size_prefers_kish_n_eff():
    assert M.floor_sample_size(100, 63.4) == 63
    assert M.floor_sample_size(100, 0.2) == 1
    assert M.floor_sample_size(100, float("nan")) == 100
    assert M.floor_sample_size(0, None) == 0


def test_bootstrap_floor_is_close_to_the_multinomial_floor():
    rng = np.random.default_rng(1)
    codes = rng.choice(3, size=400, p=[0.2, 0.5, 0.3])
    boot = M.bootstrap_floor(codes, 3, ordinal=[1, 2, 3], n_draws=400, seed=0)
    shares = np.bincount(codes, minlength=3) / len(codes)
    multi = M.noise_floor(shares, len(codes), [1, 2, 3], n_draws=400, seed=0)
    assert boot["tv"] == pytest.approx(multi["tv"], rel=0.2)
    with pytest.raises(DataError):
        M.bootstrap_floor([-1, -1], 3)


# -- respondent metrics vs scikit-learn ------------------------------------------------
@st.composite
def respondent_case(draw):
    k = draw(st.integers(2, 6))
    n = draw(st.integers(1, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    y = rng.integers(0, k, size=n)
    q = rng.dirichlet(np.full(k, draw(st.sampled_from([0.3, 1.0, 3.0]))), size=n)
    if draw(st.booleans()):
        q[rng.integers(n), rng.integers(k)] = 0.0
        q = q / q.sum(axis=1, keepdims=True)
    w = rng.uniform(0.0, 3.0, size=n) if draw(st.booleans()) else None
    if w is not None and w.sum() == 0:
        w[0] = 1.0
    return y, q, w


@settings(max_examples=80, deadline=None)
@given(respondent_case())
def test_respondent_metrics_match_sklearn(case):
    y, q, w = case
    k = q.shape[1]
    got = M.respondent_metrics(y, q, w)
    pred = q.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = {
            "accuracy": skm.accuracy_score(y, pred, sample_weight=w),
            "balanced_accuracy": skm.balanced_accuracy_score(y, pred, sample_weight=w),
            "macro_f1": skm.f1_score(y, pred, average="macro", sample_weight=w),
            "log_loss": skm.log_loss(y, q, labels=list(range(k)), sample_weight=w),
            "brier": skm.brier_score_loss(
                y, q, labels=list(range(k)), sample_weight=w, scale_by_half=False
            ),
        }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    # One-hot targets give the same numbers as option indices.
    onehot = np.eye(k)[y]
    assert M.respondent_metrics(onehot, q, w) == got
    assert M.accuracy(y, q, w) == got["accuracy"]
    assert M.brier_score(y, q, w) == got["brier"]
    assert M.log_loss(y, q, w) == got["log_loss"]
    assert M.macro_f1(y, q, w) == got["macro_f1"]
    assert M.balanced_accuracy(y, q, w) == got["balanced_accuracy"]


def test_respondent_metrics_reject_bad_input():
    q = np.array([[0.5, 0.5], [0.2, 0.8]])
    with pytest.raises(DataError):
        M.respondent_metrics([0, 2], q)  # option index out of range
    with pytest.raises(DataError):
        M.respondent_metrics([0, 1], q, [1.0, -1.0])  # negative weight
    with pytest.raises(DataError):
        M.respondent_metrics([0], q)  # lengths differ
    with pytest.raises(DistributionError):
        M.respondent_metrics([0, 1], np.array([[0.5, 0.6], [0.2, 0.8]]))


# -- population metrics ----------------------------------------------------------------
def test_population_errors_with_observed_and_imputed_answers():
    truth = np.array([0, 1, 1, 2, 0, 1])
    w = np.array([1.0, 2.0, 1.0, 1.0, 3.0, 1.0])
    true_shares = np.bincount(truth, weights=w, minlength=3) / w.sum()
    # Respondents 4 and 5 did not answer: their imputations are distributions.
    est = np.eye(3)[truth]
    est[4] = [0.5, 0.5, 0.0]
    est[5] = [0.0, 0.0, 1.0]
    res = M.population_errors(truth, est, w, 3)
    np.testing.assert_allclose(res["truth"], true_shares)
    expected = (w @ est) / w.sum()
    np.testing.assert_allclose(res["estimate"], expected)
    np.testing.assert_allclose(res["abs_error"], np.abs(expected - true_shares))
    assert res["tv"] == pytest.approx(0.5 * np.abs(expected - true_shares).sum())
    # Complete-case estimate: code -1 marks a missing answer and is left out.
    cc = M.weighted_shares(np.array([0, 1, 1, 2, -1, -1]), w, 3)
    np.testing.assert_allclose(cc, np.bincount(truth[:4], weights=w[:4], minlength=3) / 5)
    with pytest.raises(DataError):
        M.weighted_shares([0, 3], None, 3)
