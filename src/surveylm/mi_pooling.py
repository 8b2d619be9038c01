"""Multiple imputation and Rubin pooling: population shares, with intervals, from imputed data.

What lives where: this module draws completed datasets, estimates each one's weighted
shares with their variance and pools them (Rubin's rules), and measures the coverage of
the pooled intervals; :mod:`surveylm.metrics.population` holds the plain weighted shares
and the error of an estimate against the truth (no imputation, no intervals);
:mod:`surveylm.correct` the prediction-powered (PPI) correction.

An imputation model returns, for each respondent who did not answer, a distribution over
the options. Multiple imputation (Rubin 1987, *Multiple Imputation for Nonresponse in
Surveys*) turns those into honest population estimates:

1. draw ``m`` completed datasets — each missing answer sampled from its predicted
   distribution (:func:`draw_imputations`);
2. estimate the weighted option shares and their sampling variance in each
   (:func:`completed_shares`, :func:`share_variance`);
3. pool with Rubin's rules (:func:`rubin_pool`): the point estimate is the mean, the
   total variance ``T = W + (1 + 1/m) B`` adds the between-imputation variance ``B`` to
   the average within-imputation variance ``W``, and intervals use Student's t with the
   Barnard & Rubin (1999, *Biometrika* 86:948) small-sample degrees of freedom.

A model that is confident and wrong gives nearly identical completed datasets (``B ≈ 0``)
and intervals that miss the truth; :func:`coverage` measures that over repeated scenario
draws instead of assuming it. Models that only return one distribution per respondent
(no parameter draws) give *improper* imputations in Rubin's sense — their intervals
ignore the model's own estimation error — while :class:`~surveylm.models.chained.
ChainedEquationsImputer` exposes per-draw distributions (``Predictions.extra["draws"]``),
which are used one per completed dataset.

Two estimands are offered. ``"population"`` is the textbook one: the share in the
population the survey samples, with each completed dataset's sampling variance as ``W``.
``"sample"`` is the share in the full sample itself — what an imputation benchmark
compares against — which a completed dataset knows exactly (``W = 0``), so only the
imputation uncertainty counts. Evaluated over repeated missingness draws on one fixed
survey, even a perfect model's ``"sample"`` intervals are somewhat conservative (the
hidden respondents are drawn without replacement from a fixed sample, a finite-population
correction the intervals do not know about); fresh samples give nominal coverage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from surveylm.distribution_checks import check_distribution_matrix
from surveylm.errors import DataError, where
from surveylm.metrics import weighted_shares
from surveylm.models.base import AnswerModel, Predictions
from surveylm.survey import Survey, kish_effective_n

Estimand = Literal["population", "sample"]
#: ``f(survey, target) -> predictions`` for every respondent without an answer.
Imputer = Callable[[Survey, str], "Predictions | np.ndarray"]


@dataclass(frozen=True)
class PooledEstimate:
    """Rubin's rules applied to ``k`` quantities (all arrays have length ``k``).

    Attributes:
        estimate: Pooled point estimate (mean over imputations).
        within: ``W``, mean of the within-imputation variances.
        between: ``B``, sample variance of the estimates over imputations.
        total: ``T = W + (1 + 1/m) B``.
        df: Degrees of freedom (Barnard–Rubin 1999; Rubin 1987 when ``df_com`` is ∞).
        lower, upper: The ``level`` t interval ``estimate ± t_{df} · √T``.
        fmi: ``λ = (1 + 1/m) B / T``, the proportion of the variance due to missingness
            (statsmodels' ``frac_miss_info``).
        m: Number of imputations; level: interval level; df_com: complete-data df.
    """

    estimate: np.ndarray
    within: np.ndarray
    between: np.ndarray
    total: np.ndarray
    df: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    fmi: np.ndarray
    m: int
    level: float
    df_com: float

    @property
    def se(self) -> np.ndarray:
        """Pooled standard error ``√T``."""
        return np.sqrt(self.total)


def rubin_pool(
    estimates: np.ndarray | Sequence[Sequence[float]],
    variances: np.ndarray | Sequence[Sequence[float]],
    n: float | None,
    *,
    level: float = 0.95,
) -> PooledEstimate:
    """Pool ``m`` completed-data estimates with Rubin's rules.

    Args:
        estimates: ``[m, k]`` estimates (or ``[m]`` for one quantity).
        variances: ``[m, k]`` their completed-data variances.
        n: Complete-data sample size; the complete-data degrees of freedom are
            ``df_com = n − 1`` (one estimated mean). For weighted data pass Kish's
            effective size ``n_eff``, so ``df_com = n_eff − 1``. ``None``: ``df_com = ∞``,
            which gives Rubin's (1987) ``(m − 1) / λ²``.
        level: Confidence level of the intervals.

    Returns:
        A :class:`PooledEstimate`. The Barnard–Rubin degrees of freedom are
        ``ν = 1 / (1/ν_old + 1/ν_obs)`` with ``ν_old = (m − 1) / λ²`` and
        ``ν_obs = (df_com + 1) / (df_com + 3) · df_com · (1 − λ)``. Where ``T = 0``
        (every completed dataset agrees and none has sampling variance) ``λ = 0`` and the
        interval has zero width.
    """
    q = np.asarray(estimates, dtype=np.float64)
    u = np.asarray(variances, dtype=np.float64)
    if q.ndim == 1:
        q, u = q[:, None], u.reshape(-1, 1) if u.ndim == 1 else u
    if q.shape != u.shape or q.ndim != 2:
        raise DataError(f"estimates {q.shape} and variances {u.shape} must both be [m, k]")
    m = q.shape[0]
    if m < 2:
        raise DataError(f"Rubin's rules need at least 2 imputations, got {m}")
    if not (np.isfinite(q).all() and np.isfinite(u).all()) or (u < 0).any():
        raise DataError("estimates and variances must be finite, variances non-negative")
    if not 0 < level < 1:
        raise DataError(f"level must be in (0, 1), got {level}")
    df_com = np.inf if n is None else float(n) - 1.0
    if df_com <= 0:
        raise DataError(f"complete-data sample size must exceed 1, got {n}")
    qbar = q.mean(axis=0)
    w = u.mean(axis=0)
    b = q.var(axis=0, ddof=1)
    t = w + (1 + 1 / m) * b
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.where(t > 0, (1 + 1 / m) * b / t, 0.0)
        inv_old = lam**2 / (m - 1)
        if np.isinf(df_com):
            inv_obs = np.zeros_like(lam)
        else:
            nu_obs = (df_com + 1) / (df_com + 3) * df_com * (1 - lam)
            inv_obs = np.where(nu_obs > 0, 1 / nu_obs, np.inf)
        df = np.where(inv_old + inv_obs > 0, 1 / (inv_old + inv_obs), np.inf)
    half = stats.t.ppf(0.5 + level / 2, df) * np.sqrt(t)
    return PooledEstimate(qbar, w, b, t, df, qbar - half, qbar + half, lam, m, level, df_com)


def completed_shares(
    codes: np.ndarray, weights: np.ndarray, n_options: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted option shares of a completed dataset and their variances.

    Args:
        codes: Option index per respondent (all ``>= 0``: the data are complete).
        weights: Survey weights.
        n_options: Number of options.

    Returns:
        ``(shares, variances)``, see :func:`share_variance`.
    """
    codes = np.asarray(codes, dtype=np.int64)
    if (codes < 0).any():
        raise DataError("a completed dataset cannot have missing answers")
    shares = weighted_shares(codes, weights, n_options)
    return shares, share_variance(codes, weights, n_options, shares)


def share_variance(
    codes: np.ndarray, weights: np.ndarray, n_options: int, shares: np.ndarray | None = None
) -> np.ndarray:
    """Sampling variance of each weighted share ``p_k = Σ w_i y_ik / Σ w_i``.

    The with-replacement linearisation (Taylor) estimator of a ratio mean
    (Wolter 2007, *Introduction to Variance Estimation*, ch. 6):
    ``v(p_k) = n / (n − 1) · Σ_i w_i² (y_ik − p_k)² / (Σ_i w_i)²``, which with equal
    weights is ``p_k (1 − p_k) / (n − 1)``, the usual ``s² / n``. It ignores strata and
    clusters (surveys here carry only weights), so it understates the variance of a
    clustered design.
    """
    c = np.asarray(codes, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    n = len(c)
    if n < 2:
        raise DataError("need at least 2 respondents for a variance")
    p = weighted_shares(c, w, n_options) if shares is None else np.asarray(shares)
    y = np.zeros((n, n_options))
    y[np.arange(n), c] = 1.0
    return n / (n - 1) * ((w[:, None] ** 2) * (y - p) ** 2).sum(axis=0) / w.sum() ** 2


def draw_imputations(predictions: Predictions | np.ndarray, m: int, seed: int = 0) -> np.ndarray:
    """Sample ``m`` completed answers for each item from its predicted distribution.

    Args:
        predictions: ``[n, K]`` distributions (one per item), ``[d, n, K]`` per-draw
            distributions (imputation ``j`` uses draw ``j mod d`` — proper multiple
            imputation when the draws reflect parameter uncertainty), or
            :class:`Predictions` of one question (its per-draw ``extra["draws"]`` used
            when present).
        m: Number of imputations.
        seed: Random seed.

    Returns:
        ``[m, n]`` sampled option indices.
    """
    if m < 1:
        raise DataError(f"m must be at least 1, got {m}")
    p = _as_draw_array(predictions)
    d, n, k = p.shape
    cdf = np.cumsum(p, axis=-1)
    u = np.random.default_rng(seed).random((m, n))
    picks = np.stack([(u[j][:, None] > cdf[j % d]).sum(axis=1) for j in range(m)])
    return np.minimum(picks, k - 1)


def _as_draw_array(predictions: Predictions | np.ndarray) -> np.ndarray:
    if isinstance(predictions, Predictions):
        draws = predictions.extra.get("draws")
        if draws:
            d = max(len(v) for v in draws.values())
            rows = [
                np.asarray(draws[str(i)], dtype=np.float64)
                if str(i) in draws
                else np.tile(dist, (d, 1))  # no draws for this item (e.g. a fallback)
                for i, dist in zip(predictions.item_ids, predictions.distributions, strict=True)
            ]
            if any(r.shape[0] != d for r in rows):
                raise DataError("items have different numbers of imputation draws")
            return np.stack(rows, axis=1) if rows else np.zeros((1, 0, 2))
        ks = {len(d) for d in predictions.distributions}
        if len(ks) > 1:
            raise DataError("predictions mix questions with different numbers of options")
        arr = np.vstack(predictions.distributions) if len(predictions) else np.zeros((0, 2))
        return arr[None]
    arr = np.asarray(predictions, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise DataError(f"predicted distributions must be [n, K] or [d, n, K], got {arr.shape}")
    for j in range(arr.shape[0]):
        check_distribution_matrix(arr[j], context=f"draw {j}: ")
    return arr


@dataclass(eq=False)
class MIShares:
    """Multiply imputed weighted option shares of one question (see
    :func:`multiple_imputation_shares`)."""

    question: str
    options: tuple[str, ...]
    pooled: PooledEstimate
    expected: np.ndarray
    truth: np.ndarray | None
    n_imputed: int
    estimand: str

    @property
    def covered(self) -> np.ndarray | None:
        """Whether each option's interval contains the true full-sample share."""
        if self.truth is None:
            return None
        return (self.pooled.lower <= self.truth) & (self.truth <= self.pooled.upper)

    def to_frame(self) -> pd.DataFrame:
        """One row per option: pooled share, se, interval, df, fmi, truth, covered."""
        p = self.pooled
        nan = np.full(len(self.options), np.nan)
        return pd.DataFrame({
            "question": self.question, "option": list(self.options), "estimate": p.estimate,
            "expected": self.expected, "se": p.se, "lower": p.lower, "upper": p.upper,
            "df": p.df, "fmi": p.fmi, "within": p.within, "between": p.between, "m": p.m,
            "truth": nan if self.truth is None else self.truth,
            "covered": nan if self.covered is None else self.covered,
            "n_imputed": self.n_imputed, "estimand": self.estimand,
        })  # fmt: skip


def multiple_imputation_shares(
    survey: Survey,
    target: str,
    missing_mask: np.ndarray,
    predictions: Predictions | np.ndarray,
    m: int = 20,
    seed: int = 0,
    *,
    level: float = 0.95,
    estimand: Estimand = "population",
    subgroup: np.ndarray | None = None,
) -> MIShares:
    """Weighted option shares of ``target`` by multiple imputation, pooled by Rubin's rules.

    Respondents to impute are those in ``missing_mask`` plus any who never answered.

    Args:
        survey: The survey; where the masked respondents' answers are still present (the
            original survey) they are the truth the interval is checked against.
        target: The question.
        missing_mask: Boolean mask over respondents whose answers are hidden.
        predictions: :class:`Predictions` containing the respondent items
            ``"{target}|r={respondent}"`` of every respondent to impute, or an ``[n_imp, K]``
            / ``[d, n_imp, K]`` array in respondent order.
        m: Number of imputations (≥ 2).
        seed: Random seed of the draws.
        level: Interval level.
        estimand: ``"population"`` (default): the textbook analysis — the share in the
            population the survey samples; ``W`` is each completed dataset's sampling
            variance (:func:`share_variance`) and ``df_com = n_eff − 1``.
            ``"sample"``: the full-sample share itself, which a completed dataset would
            know exactly (``W = 0``, ``df_com = ∞``), so only imputation uncertainty
            counts — the calibrated choice when the yardstick is the full sample's truth.
        subgroup: Optional boolean mask over respondents: estimate the shares within
            this subgroup only (e.g. ``evaluate_filter(survey, 'age < 30')``).

    Returns:
        :class:`MIShares` with the pooled estimate, the expected share (observed answers +
        predicted distributions, no sampling), and the true full-sample share when known.
    """
    if estimand not in ("population", "sample"):
        raise DataError(f"estimand must be 'population' or 'sample', got {estimand!r}")
    q = survey.question(target)
    codes = survey.codes(target)
    mask = np.asarray(missing_mask, dtype=bool)
    if mask.shape != codes.shape:
        raise DataError(f"missing_mask has shape {mask.shape}; need {codes.shape}")
    impute = mask | (codes < 0)
    idx = np.flatnonzero(impute)
    p = _align(predictions, survey, target, idx)
    if p.shape[2] != q.n_options:
        raise DataError(f"{where(question=target)}predictions have {p.shape[2]} options, not "
                        f"{q.n_options}")  # fmt: skip
    w = survey.weights.to_numpy()
    sub = np.ones(len(codes), bool) if subgroup is None else np.asarray(subgroup, dtype=bool)
    if sub.shape != codes.shape or sub.sum() < 2:
        raise DataError(f"subgroup must be a mask over {len(codes)} respondents, 2+ selected")
    draws = draw_imputations(p, m, seed)
    est, var = [], []
    for j in range(m):
        completed = codes.copy()
        completed[idx] = draws[j]
        s, v = completed_shares(completed[sub], w[sub], q.n_options)
        est.append(s)
        var.append(v if estimand == "population" else np.zeros_like(v))
    n = kish_effective_n(w[sub]) if estimand == "population" else None
    pooled = rubin_pool(np.array(est), np.array(var), n, level=level)
    dist = np.zeros((len(codes), q.n_options))
    obs = np.flatnonzero(~impute)
    dist[obs, codes[obs]] = 1.0
    dist[idx] = p.mean(axis=0)
    expected = weighted_shares(dist[sub], w[sub])
    known = (codes[sub] >= 0).all()
    truth = weighted_shares(codes[sub], w[sub], q.n_options) if known else None
    return MIShares(target, q.options, pooled, expected, truth, int(impute[sub].sum()), estimand)


def _align(
    predictions: Predictions | np.ndarray, survey: Survey, target: str, idx: np.ndarray
) -> np.ndarray:
    if isinstance(predictions, Predictions):
        rids = survey.data.index[idx]
        wanted = [f"{target}|r={r}" for r in rids]
        pos = {iid: k for k, iid in enumerate(predictions.item_ids)}
        lost = [i for i in wanted if i not in pos]
        if lost:
            raise DataError(
                f"no prediction for {len(lost)} respondents to impute, e.g. {lost[0]!r}"
            )
        sub = Predictions(
            np.array(wanted, dtype=object),
            [predictions.distributions[pos[i]] for i in wanted],
            predictions.model,
            extra=predictions.extra,
        )
        return _as_draw_array(sub)
    arr = _as_draw_array(predictions)
    if arr.shape[1] != len(idx):
        raise DataError(f"{arr.shape[1]} predictions for {len(idx)} respondents to impute")
    return arr


def model_imputer(model: AnswerModel, features: Sequence[str]) -> Imputer:
    """An :data:`Imputer` that fits a fresh clone of ``model`` on the respondents who
    answered and predicts the others (respondent items with ``features`` as context)."""
    from surveylm.items import build_respondent_items

    def impute(observed: Survey, target: str) -> Predictions:
        items = build_respondent_items(observed, target, features, include_unanswered=True)
        known = items.has_target
        fitted = model.clone().fit(items.subset(known))
        return fitted.predict(items.subset(~known))

    return impute


def coverage(
    survey: Survey,
    target: str,
    scenario: Any,
    imputer: Imputer,
    *,
    m: int = 20,
    n_reps: int = 100,
    seed: int = 0,
    level: float = 0.95,
    estimand: Estimand = "population",
) -> pd.DataFrame:
    """Coverage of the true full-sample shares over repeated scenario draws.

    For each repetition ``r``: draw the missing mask (``scenario.mask(survey, target,
    seed + r)``, or ``scenario(survey, target, seed + r)``), blank those answers, impute
    with ``imputer``, and pool ``m`` imputations (:func:`multiple_imputation_shares`).

    Returns:
        One row per repetition × option (``rep``, ``option``, ``estimate``, ``lower``,
        ``upper``, ``truth``, ``covered``, ...). Summarise with :func:`summarise_coverage`.
    """
    from surveylm.missingness import apply_missingness

    if not survey.answered(target).all():
        raise DataError(f"{where(question=target)}coverage needs every true answer known")
    rows = []
    for r in range(n_reps):
        draw = getattr(scenario, "mask", scenario)
        mask = np.asarray(draw(survey, target, seed + r), dtype=bool)
        preds = imputer(apply_missingness(survey, target, mask), target)
        res = multiple_imputation_shares(
            survey, target, mask, preds, m, seed + r, level=level, estimand=estimand
        )
        rows.append(res.to_frame().assign(rep=r))
    return pd.concat(rows, ignore_index=True)


def summarise_coverage(
    reps: pd.DataFrame,
    by: Sequence[str] = ("question", "option"),
    count: str = "reps",
) -> pd.DataFrame:
    """Per ``by`` group (default: per option): coverage rate (with its Monte Carlo
    standard error), mean interval width, bias and RMSE of the pooled estimate against the
    truth; ``count`` names the column of how many repetitions each row pools."""
    g = reps.assign(
        width=reps["upper"] - reps["lower"],
        error=reps["estimate"] - reps["truth"],
        covered=reps["covered"].astype(float),
    ).groupby(list(by), sort=False)
    out = g.agg(
        **{count: ("covered", "size")},
        coverage=("covered", "mean"),
        mean_width=("width", "mean"),
        bias=("error", "mean"),
        rmse=("error", lambda e: float(np.sqrt(np.mean(np.square(e))))),
    ).reset_index()
    out["coverage_se"] = np.sqrt(out["coverage"] * (1 - out["coverage"]) / out[count])
    return out
