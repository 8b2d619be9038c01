"""Prediction-powered shares (surveylm.correct): against ppi_py, the classical fallback,
survey weights, the effective sample size, cross-fitting and a seeded coverage study."""

from __future__ import annotations

import numpy as np
import pytest

from surveylm.correct import effective_sample_size, ppi_shares, survey_ppi_shares
from surveylm.crossfit import cross_fit_predictions
from surveylm.errors import DataError
from surveylm.models import make_model

ANES_FEATURES = ["PID", "selfLR", "ClinLR", "DoleLR", "educ", "income", "age"]


def _data(n: int, n_u: int, k: int = 3, signal: float = 0.5, seed: int = 0):
    """Labels and predictions whose quality grows with ``signal`` (0 = pure noise)."""
    rng = np.random.default_rng(seed)

    def part(m):
        y = rng.integers(0, k, m)
        p = np.full((m, k), 0.2) + rng.random((m, k))
        p[np.arange(m), y] += signal * 3
        return y, p / p.sum(axis=1, keepdims=True)

    (y, p_l), (_, p_u) = part(n), part(n_u)
    return y, p_l, p_u


def _noisy(n: int, n_u: int, signal: float, k: int = 3, seed: int = 0):
    """Predictions with heavy-tailed noise: PPI++'s λ lands strictly inside (0, 1)."""
    rng = np.random.default_rng(seed)

    def part(m):
        y = rng.integers(0, k, m)
        p = 0.05 + 3 * rng.random((m, k)) ** 3
        p[np.arange(m), y] += signal
        return y, p / p.sum(axis=1, keepdims=True)

    (y, p_l), (_, p_u) = part(n), part(n_u)
    return y, p_l, p_u


@pytest.fixture(scope="module")
def ppi_py():
    return pytest.importorskip("ppi_py")


@pytest.mark.parametrize(("tuning", "mode"), [("option", "element"), ("overall", "overall")])
def test_equals_ppi_py_unweighted(ppi_py, tuning, mode):
    y, p_l, p_u = _noisy(80, 600, signal=0.3)
    onehot = np.eye(3)[y]
    s = ppi_shares(y, p_l, p_u, tuning=tuning, small_sample=False)
    assert ((s.lam > 0.05) & (s.lam < 0.95)).all()  # tuned, not clipped: a real check
    lo, hi = ppi_py.ppi_mean_ci(onehot, p_l, p_u, alpha=0.05, lam_optim_mode=mode)
    est = ppi_py.ppi_mean_pointestimate(onehot, p_l, p_u, lam_optim_mode=mode)
    np.testing.assert_allclose(s.estimate, est, atol=1e-12)
    np.testing.assert_allclose(s.lower, lo, atol=1e-12)
    np.testing.assert_allclose(s.upper, hi, atol=1e-12)
    if tuning == "overall":
        assert s.estimate.sum() == pytest.approx(1.0)


def test_equals_ppi_py_fixed_lambda_and_classical(ppi_py):
    y, p_l, p_u = _data(60, 400)
    onehot = np.eye(3)[y]
    s = ppi_shares(y, p_l, p_u, method="ppi", small_sample=False)
    lo, hi = ppi_py.ppi_mean_ci(onehot, p_l, p_u, alpha=0.1, lam=1)
    s90 = ppi_shares(y, p_l, p_u, method="ppi", small_sample=False, level=0.9)
    np.testing.assert_allclose(s90.lower, lo, atol=1e-12)
    np.testing.assert_allclose(s90.upper, hi, atol=1e-12)
    assert (s.upper - s.lower > s90.upper - s90.lower).all()
    c = ppi_shares(y, p_l, p_u, method="classical", small_sample=False)
    for k in range(3):
        lo_k, hi_k = ppi_py.classical_mean_ci(onehot[:, k], alpha=0.05)
        assert (c.lower[k], c.upper[k]) == pytest.approx((lo_k, hi_k), abs=1e-12)
        assert c.classical_se[k] == c.se[k]


def test_weights_point_as_ppi_py_variance_linearised(ppi_py):
    y, p_l, p_u = _noisy(70, 500, signal=0.3, seed=3)
    rng = np.random.default_rng(4)
    w_l, w_u = rng.uniform(0.3, 3, len(y)), rng.uniform(0.3, 3, len(p_u))
    s = ppi_shares(y, p_l, p_u, labelled_weights=w_l, unlabelled_weights=w_u,
                   small_sample=False)  # fmt: skip
    assert ((s.lam > 0) & (s.lam < 1)).all()
    for lam in (1.0, float(s.lam[0])):
        fixed = ppi_shares(y, p_l, p_u, labelled_weights=w_l, unlabelled_weights=w_u, lam=lam)
        est = ppi_py.ppi_mean_pointestimate(np.eye(3)[y], p_l, p_u, lam=lam, w=w_l,
                                            w_unlabeled=w_u)  # fmt: skip
        np.testing.assert_allclose(fixed.estimate, est, atol=1e-12)
    # the linearised variance by hand: Σ a²(r − r̄)² + λ² Σ b²(p − p̄)²
    a, b = w_l / w_l.sum(), w_u / w_u.sum()
    r = np.eye(3)[y] - s.lam * p_l
    v = (a[:, None] ** 2 * (r - a @ r) ** 2).sum(0)
    v += s.lam**2 * (b[:, None] ** 2 * (p_u - b @ p_u) ** 2).sum(0)
    np.testing.assert_allclose(s.se, np.sqrt(v), rtol=1e-12)
    # scaling the weights changes nothing
    s2 = ppi_shares(y, p_l, p_u, labelled_weights=5 * w_l, unlabelled_weights=w_u / 7,
                    small_sample=False)  # fmt: skip
    np.testing.assert_allclose(s2.se, s.se, rtol=1e-12)


def test_constant_prediction_has_no_imputed_variance_with_weights(ppi_py):
    """ppi_py's weighted variance counts the weights' spread; the linearisation does not."""
    y, p_l, _ = _data(50, 10)
    p_u = np.tile([0.2, 0.3, 0.5], (400, 1))
    w_u = np.random.default_rng(1).uniform(0.2, 4, 400)
    s = ppi_shares(y, p_l, p_u, unlabelled_weights=w_u, method="ppi", small_sample=False)
    classical_rect = ppi_shares(
        y, p_l, np.tile([0.2, 0.3, 0.5], (400, 1)), method="ppi", small_sample=False
    )
    np.testing.assert_allclose(s.se, classical_rect.se, rtol=1e-12)  # weights of p_u: no noise
    lo, hi = ppi_py.ppi_mean_ci(np.eye(3)[y], p_l, p_u, alpha=0.05, lam=1, w_unlabeled=w_u)
    assert ((hi.ravel() - lo.ravel()) > (s.upper - s.lower) + 1e-3).all()
    tuned = ppi_shares(y, np.tile([0.2, 0.3, 0.5], (50, 1)), p_u, unlabelled_weights=w_u,
                       labelled_weights=np.linspace(0.5, 2, 50))  # fmt: skip
    assert (tuned.lam == 0).all()  # weights' spread is not a signal


def test_useless_model_falls_back_to_classical():
    y, p_l, p_u = _data(100, 800)
    const_l, const_u = np.tile([0.3, 0.3, 0.4], (100, 1)), np.tile([0.3, 0.3, 0.4], (800, 1))
    s = ppi_shares(y, const_l, const_u)
    assert (s.lam == 0).all()
    np.testing.assert_allclose(s.estimate, s.classical, atol=1e-15)
    np.testing.assert_allclose(s.se, s.classical_se, atol=1e-15)
    widths = []
    for seed in range(30):  # predictions independent of the answers: pure noise
        y, p_l, p_u = _data(100, 800, signal=0.0, seed=seed)
        n = ppi_shares(y, p_l, p_u)
        widths.append(n.se / n.classical_se)
    assert np.mean(widths) <= 1.05
    assert np.max(widths) <= 1.10


def test_good_model_narrows_and_ess():
    y, p_l, p_u = _data(100, 800, signal=0.6)
    s = ppi_shares(y, p_l, p_u)
    assert (s.se < 0.8 * s.classical_se).all()
    ess = effective_sample_size(y, p_l, p_u, n_boot=200, seed=1).set_index("option")
    assert list(ess.index) == ["0", "1", "2", "all"]
    np.testing.assert_allclose(ess.loc[["0", "1", "2"], "effective_n"], s.effective_n)
    assert (ess["effective_n"] > 150).all()
    assert ((ess["ci_low"] <= ess["effective_n"]) & (ess["effective_n"] <= ess["ci_high"])).all()
    flat = effective_sample_size(y, np.full((100, 3), 1 / 3), np.full((800, 3), 1 / 3), n_boot=50)
    np.testing.assert_allclose(flat[["effective_n", "ci_low", "ci_high"]].to_numpy(), 100.0)


def test_bad_input_is_one_clear_error():
    y, p_l, p_u = _data(20, 30)
    with pytest.raises(DataError, match="option indices"):
        ppi_shares(np.append(y[:-1], 3), p_l, p_u)
    with pytest.raises(DataError, match="labels for"):
        ppi_shares(y[:-1], p_l, p_u)
    with pytest.raises(DataError, match="unlabelled 2"):
        ppi_shares(y, p_l, p_u[:, :2] / p_u[:, :2].sum(1, keepdims=True))
    with pytest.raises(DataError, match="method"):
        ppi_shares(y, p_l, p_u, method="bayes")
    with pytest.raises(DataError, match="weights"):
        ppi_shares(y, p_l, p_u, labelled_weights=-np.ones(20))


def test_cross_fit_and_survey_shares(anes):
    from surveylm.missingness import apply_missingness

    rng = np.random.default_rng(0)
    keep = np.zeros(anes.n_respondents, dtype=bool)
    keep[rng.choice(anes.n_respondents, 150, replace=False)] = True
    observed = apply_missingness(anes, "vote", ~keep)
    preds = cross_fit_predictions(make_model("logistic"), observed, "vote", ANES_FEATURES,
                                  folds=3, seed=0)  # fmt: skip
    assert len(preds) == anes.n_respondents and preds.extra["folds"] == 3
    s = survey_ppi_shares(observed, "vote", preds)
    assert s.n_labelled == 150 and s.n_unlabelled == anes.n_respondents - 150
    truth = np.bincount(anes.codes("vote"), minlength=2) / anes.n_respondents
    assert ((s.lower <= truth) & (truth <= s.upper)).all()
    assert (s.se < s.classical_se).all() and (s.lam > 0).all()
    # a model that fitted its own labelled respondents would look better than it is:
    # out-of-fold predictions of the labelled set differ from in-sample ones
    m = make_model("question-marginal")
    oof = cross_fit_predictions(m, observed, "vote", ["PID"], folds=3)
    lab = np.flatnonzero(keep)
    spread = np.ptp(np.vstack([oof.distributions[i] for i in lab])[:, 0])
    assert spread > 0  # each fold's marginal leaves its own answers out


def test_coverage_study_anes(anes):
    """Acceptance, seeded: 200 draws of n = 50, 100, 200; PPI++ covers ≥ 93 % for a good
    (logistic), a poor (marginal) and a biased model; good narrower, poor ≤ 5 % wider."""
    from surveylm.experiments.ppi_coverage import coverage_study, summarise_coverage

    draws = coverage_study(anes, "vote", ANES_FEATURES,
                           {"logistic": "logistic", "marginal": "question-marginal"},
                           draws=200, seed=0, biased_from="logistic")  # fmt: skip
    table = summarise_coverage(draws).set_index(["model", "n"])
    assert (table["draws"] == 200).all() and len(table) == 9
    assert (table["coverage"] >= 0.93).all(), table
    assert (table.loc["logistic", "width_ratio"] < 0.9).all()
    assert (table.loc["marginal", "width_ratio"] <= 1.05).all()
    biased = draws[draws["model"] == "logistic biased"]
    assert (
        biased.groupby("option")["estimate"].mean() - biased.groupby("option")["truth"].first()
    ).abs().max() < 0.02  # the rectifier removes a 0.5-mass bias


def test_imputation_runner_writes_ppi_beside_mi(tmp_path):
    """The runner's hook: answerers = labelled, nonrespondents = unlabelled; the table is
    written only when asked for, read back, and flags MI estimates outside PPI++."""
    from surveylm.experiments.imputation import ImputationConfig, ImputationResults
    from surveylm.experiments.imputation import run_imputation_benchmark as run

    cfg = {
        "dataset": "anes1996", "target": "vote", "features": ANES_FEATURES[:5],
        "scenarios": [{"kind": "mcar", "rate": 0.5, "name": "MCAR 50%"}],
        "methods": [{"name": "uniform", "model": "uniform"},
                    {"name": "logistic", "model": "logistic"}],
        "m": 2, "n_boot": 0,
    }  # fmt: skip
    off = run(ImputationConfig(**cfg), tmp_path / "off", progress=False)
    assert off.ppi.empty and not (tmp_path / "off" / "ppi.parquet").exists()
    res = run(ImputationConfig(**cfg, ppi_folds=2), tmp_path / "run" / "imputation",
              progress=False)  # fmt: skip
    ppi = res.ppi
    assert len(ppi) == 2 * 2 * 2  # MCAR 2 folds, 2 methods, 2 options
    assert ppi["mi_estimate"].notna().all() and ppi["truth"].notna().all()
    mcar = ppi[(ppi["scenario"] == "MCAR 50%")]
    assert mcar["covered"].all()  # random non-response: PPI++ holds
    uni = mcar[mcar["method"] == "uniform"]
    np.testing.assert_allclose(uni["estimate"], uni["classical"])  # useless model: λ = 0
    logi = mcar[mcar["method"] == "logistic"]
    assert (logi["se"] < logi["classical_se"]).all() and (logi["effective_n"] > 472).all()
    assert (ppi["effective_n_low"] <= ppi["effective_n_high"]).all()
    outside = (ppi["mi_estimate"] < ppi["lower"]) | (ppi["mi_estimate"] > ppi["upper"])
    assert (ppi["disagree"] == outside).all() and not logi["disagree"].any()
    back = ImputationResults.from_files(tmp_path / "run" / "imputation")
    assert len(back.ppi) == len(ppi)
    from surveylm.report import build_report

    html = build_report(tmp_path / "run").read_text(encoding="utf-8")
    assert "Prediction-powered shares beside multiple imputation" in html
    assert "effective n [95% CI]" in html and "logistic" in html
    assert "Prediction-powered" not in build_report(tmp_path / "off").read_text("utf-8")


def test_cli_correct(tmp_path):
    from typer.testing import CliRunner

    from surveylm.cli import app

    out = tmp_path / "shares.csv"
    args = ["correct", "anes1996", "--target", "vote", "--model", "logistic", "--features",
            "PID,selfLR", "--keep", "80", "--folds", "2", "-o", str(out)]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    import pandas as pd

    table = pd.read_csv(out)
    assert list(table["option"]) == ["Bill Clinton", "Bob Dole"]
    assert (table["effective_n"] > 80).all() and table["truth"].notna().all()
    bad = CliRunner().invoke(app, ["correct", "anes1996", "--target", "vote"])
    assert bad.exit_code == 1 and "exactly one of predictions and model" in bad.output


def test_cli_correct_one_group_with_a_pilot(tmp_path, anes):
    from typer.testing import CliRunner

    from surveylm.cli import app

    out = tmp_path / "group.csv"
    args = ["correct", "anes1996", "--target", "vote", "--model", "logistic", "--features",
            "PID,selfLR", "--keep", "40", "--folds", "2", "--group", "educ3=High school or less",
            "-o", str(out)]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    import pandas as pd

    table = pd.read_csv(out)
    members = anes.subset(anes.answers("educ3").eq("High school or less").to_numpy())
    codes = members.codes("vote")
    w = members.weights.to_numpy()[codes >= 0]
    truth = np.bincount(codes[codes >= 0], weights=w, minlength=2) / w.sum()
    np.testing.assert_allclose(table["truth"], truth)  # the group's share, not everyone's
    assert (table["n_labelled"] == 40).all()
    assert (table["n_unlabelled"] == members.n_respondents - 40).all()
    bad = CliRunner().invoke(app, [*args[:-2], "--group", "educ3"])
    assert bad.exit_code != 0 and "attribute=value" in bad.output


def test_a_group_level_prediction_is_corrected_away(anes):
    """The same prediction for every member of a group: PPI++ is the members' answers."""
    from surveylm.correct import correct_survey
    from surveylm.items import build_respondent_items
    from surveylm.models.base import Predictions

    items = build_respondent_items(anes, "vote", [], include_unanswered=True)
    preds = Predictions(items.item_ids, [np.array([0.9, 0.1])] * len(items))
    t = correct_survey(anes, "vote", predictions=preds, keep=30, group={"party": "Democrat"},
                       n_boot=20)  # fmt: skip
    np.testing.assert_allclose(t["estimate"], t["classical"])
    np.testing.assert_allclose(t["lam"], 0)
