"""Prediction-powered option shares: a model's predictions corrected by a few real answers.

A model's predicted distribution for every respondent of a population gives a weighted
option share with no sampling noise but an unknown bias; a small labelled sample of real
answers gives an unbiased share with a wide interval. Prediction-powered inference
(Angelopoulos, Bates, Fannjiang, Jordan & Zrnic 2023, *Science* 382:669) combines them:

    θ̂(λ) = Σ_j b_j λ p̂_j  +  Σ_i a_i (y_i − λ p̂_i)

— the model's share on the unlabelled respondents ``j`` plus a *rectifier*, the model's
error measured on the labelled respondents ``i`` (``y`` one-hot answers, ``p̂`` predicted
distributions, ``a``/``b`` survey weights normalised within each part). It is unbiased for
every ``λ`` when the labelled respondents are a random sample of the same population as
the unlabelled ones and their predictions do not come from a model fitted on their own
answers (use :mod:`surveylm.crossfit` when they would). ``λ = 0`` is the classical
labelled-only estimate, ``λ = 1`` classical PPI; PPI++ (Angelopoulos, Duchi & Zrnic 2024,
"PPI++: Efficient prediction-powered inference") tunes ``λ`` from the data to minimise the
variance and clips it to [0, 1], so a useless model (predictions uncorrelated with the
answers) falls back to the classical estimate instead of widening it.

Variances are the with-replacement linearisation of the two weighted (Hájek) means, as in
:func:`surveylm.mi_pooling.share_variance`:
``v = Σ_j b_j² λ²(p̂_j − p̄_u)² + Σ_i a_i² (r_i − r̄)²`` with ``r = y − λ p̂``, times
``m / (m − 1)`` in each part; intervals use Student's t with ``n_eff − 1`` degrees of
freedom (Kish's effective size of the labelled weights, as
in :func:`surveylm.mi_pooling.rubin_pool`), bounds clipped to [0, 1]. The **effective sample
size** (:func:`effective_sample_size`) is the number of real respondents that would give the
same variance without the model, ``n · v_classical / v_PPI``, with a bootstrap interval.

Relation to ``ppi-python`` (``ppi_py``, the reference implementation of both papers): with
equal weights and ``small_sample=False`` the estimates, ``λ`` and intervals equal its
``ppi_mean_pointestimate`` / ``ppi_mean_ci`` (``lam_optim_mode="element"`` for
``tuning="option"``, ``"overall"`` for ``tuning="overall"``) and ``classical_mean_ci``
(``tests/test_correct.py`` checks it). What it does not cover, and this module adds: the
variance of a *weighted* mean — ``ppi_py`` takes weights for the point estimate and ``λ``
but its variance is that of ``w·y`` uncentred at the weighted mean, and its ``λ`` uses
gradients ``w(y − θ)``, so the spread of the weights themselves counts as signal and noise
(a constant prediction gets a non-zero "imputed" variance and a spurious ``λ``); here both
are linearised about the weighted means; the small-sample factor and t quantile; shares of
every option of a categorical question at once with a per-option ``λ``; the effective sample
size and its interval; survey-level alignment of predictions with respondents
(:func:`survey_ppi_shares`). Neither covers strata or clusters (surveys here carry only
weights), nor labelled respondents chosen by anything but chance: under non-random
non-response (MAR, MNAR, convenience samples) the rectifier measured on the answerers is not
the model's error on the others, and the interval is not valid.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from surveylm.distribution_checks import check_distribution_matrix
from surveylm.errors import DataError, where

Method = Literal["ppi++", "ppi", "classical"]
Tuning = Literal["option", "overall"]
METHODS: tuple[str, ...] = ("ppi++", "ppi", "classical")

__all__ = [
    "METHODS",
    "PPIShares",
    "correct_survey",
    "effective_sample_size",
    "normal_quantile",
    "ppi_shares",
    "survey_ppi_shares",
]


@dataclass(frozen=True, eq=False)
class PPIShares:
    """Corrected option shares of one question (every array has one value per option).

    Attributes:
        options: Option labels.
        method: ``"ppi++"``, ``"ppi"`` or ``"classical"``.
        estimate: The corrected share of each option.
        se: Its standard error.
        lower, upper: The ``level`` normal interval, clipped to [0, 1].
        lam: ``λ`` of each option (0 = labelled only, 1 = classical PPI).
        classical: The labelled-only share (``λ = 0``) and ``classical_se`` its se.
        model_share: The model's share on the unlabelled respondents (no correction).
        n_labelled, n_unlabelled: Sizes of the two parts; level: interval level.
        df: Degrees of freedom of the t quantile (``inf``: normal).
    """

    options: tuple[str, ...]
    method: str
    estimate: np.ndarray
    se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    lam: np.ndarray
    classical: np.ndarray
    classical_se: np.ndarray
    model_share: np.ndarray
    n_labelled: int
    n_unlabelled: int
    level: float
    df: float = np.inf

    @property
    def effective_n(self) -> np.ndarray:
        """Per option, the labelled sample size that would give this se without the model:
        ``n · se_classical² / se²`` (``n`` where both are zero)."""
        return _ess_row(self.n_labelled, self.se**2, self.classical_se**2)[:-1]

    def to_frame(self) -> pd.DataFrame:
        """One row per option: estimate, se, interval, λ, classical share and se, the
        model's uncorrected share, effective n and the part sizes."""
        z = normal_quantile(self.level, self.df)
        return pd.DataFrame({
            "option": list(self.options), "method": self.method, "estimate": self.estimate,
            "se": self.se, "lower": self.lower, "upper": self.upper, "lam": self.lam,
            "classical": self.classical, "classical_se": self.classical_se,
            "classical_lower": np.clip(self.classical - z * self.classical_se, 0, 1),
            "classical_upper": np.clip(self.classical + z * self.classical_se, 0, 1),
            "model_share": self.model_share, "effective_n": self.effective_n,
            "n_labelled": self.n_labelled, "n_unlabelled": self.n_unlabelled,
            "level": self.level,
        })  # fmt: skip


def ppi_shares(
    labels: np.ndarray | Sequence[int],
    labelled_predictions: np.ndarray,
    unlabelled_predictions: np.ndarray,
    *,
    labelled_weights: np.ndarray | None = None,
    unlabelled_weights: np.ndarray | None = None,
    options: Sequence[str] | None = None,
    method: Method = "ppi++",
    tuning: Tuning = "option",
    lam: float | None = None,
    level: float = 0.95,
    small_sample: bool = True,
) -> PPIShares:
    """Prediction-powered weighted share of every option, with a confidence interval.

    Args:
        labels: Real answer (option index ``0..K-1``) of each labelled respondent.
        labelled_predictions: ``[n, K]`` predicted distributions of the labelled
            respondents, from a model not fitted on their answers.
        unlabelled_predictions: ``[N, K]`` predicted distributions of the unlabelled ones.
        labelled_weights, unlabelled_weights: Survey weights (default 1).
        options: Option labels (default ``"0".."K-1"``).
        method: ``"ppi++"`` (λ tuned, default), ``"ppi"`` (λ = 1) or ``"classical"``
            (λ = 0, the labelled answers alone).
        tuning: PPI++ only: ``"option"`` tunes one λ per option (each interval as narrow
            as the data allow); ``"overall"`` one λ minimising the summed variance, which
            keeps the estimates summing to 1.
        lam: A fixed λ (overrides ``method``'s).
        level: Interval level.
        small_sample: Each part's variance times ``m / (m − 1)`` and a Student-t
            quantile on the labelled part's Kish ``n_eff − 1`` degrees of freedom;
            ``False``: neither, a normal interval as ``ppi_py``'s.

    Returns:
        :class:`PPIShares`.

    Raises:
        DataError: mismatched shapes, labels outside ``0..K-1``, rows that are not
            distributions, bad weights, fewer than 2 labelled or 1 unlabelled respondent.
    """
    y, p_l, p_u, a, b = _check(labels, labelled_predictions, unlabelled_predictions,
                               labelled_weights, unlabelled_weights)  # fmt: skip
    if method not in METHODS:
        raise DataError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if tuning not in ("option", "overall"):
        raise DataError(f"tuning must be 'option' or 'overall', got {tuning!r}")
    if not 0 < level < 1:
        raise DataError(f"level must be in (0, 1), got {level}")
    n, k = p_l.shape
    labels_out = tuple(str(i) for i in range(k)) if options is None else tuple(options)
    if len(labels_out) != k:
        raise DataError(f"{len(labels_out)} option labels for {k} predicted options")
    ddof = int(small_sample)
    est, var, lam_k, c_est, c_var = _fit(y, p_l, p_u, a, b, method, tuning, lam, ddof)
    se, c_se = np.sqrt(var), np.sqrt(c_var)
    df = 1.0 / float((a**2).sum()) - 1.0 if small_sample else np.inf
    half = normal_quantile(level, df) * se
    return PPIShares(
        labels_out, method if lam is None else f"lambda={lam:g}", est, se,
        np.clip(est - half, 0, 1), np.clip(est + half, 0, 1), lam_k, c_est, c_se,
        b @ p_u, n, len(p_u), level, df,
    )  # fmt: skip


def effective_sample_size(
    labels: np.ndarray | Sequence[int],
    labelled_predictions: np.ndarray,
    unlabelled_predictions: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    **kwargs: Any,
) -> pd.DataFrame:
    """How many real respondents the model is worth: the labelled sample size that would
    give the PPI interval's width without the model, with a bootstrap interval.

    The effective size of option ``k`` is ``n · v_classical,k / v_PPI,k`` (the interval
    widths' squared ratio); the row ``option = "all"`` uses the variances summed over
    options. Its interval is the percentile interval over ``n_boot`` bootstrap resamples
    of both parts (λ re-tuned in each), respondents drawn with their weights.

    Returns:
        One row per option and ``"all"``: ``effective_n``, ``ci_low``, ``ci_high``,
        ``gain`` (``effective_n / n``), ``n_labelled``, ``n_boot``.
    """
    if n_boot < 1:
        raise DataError(f"n_boot must be at least 1, got {n_boot}")
    if "lam" in kwargs:
        raise DataError("effective_sample_size tunes λ itself")
    point = ppi_shares(labels, labelled_predictions, unlabelled_predictions, **kwargs)
    y, p_l, p_u, a, b = _check(labels, labelled_predictions, unlabelled_predictions,
                               kwargs.get("labelled_weights"),
                               kwargs.get("unlabelled_weights"))  # fmt: skip
    method, tuning, level = point.method, kwargs.get("tuning", "option"), point.level
    n, n_u = len(y), len(p_u)
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, p_l.shape[1] + 1))
    for r in range(n_boot):
        i, j = rng.integers(0, n, n), rng.integers(0, n_u, n_u)
        ai, bj = a[i] / a[i].sum(), b[j] / b[j].sum()
        _, var, _, _, c_var = _fit(y[i], p_l[i], p_u[j], ai, bj, method, tuning, None,
                                   int(kwargs.get("small_sample", True)))  # fmt: skip
        boot[r] = _ess_row(n, var, c_var)
    lo, hi = np.nanquantile(boot, [(1 - level) / 2, (1 + level) / 2], axis=0)
    ess = _ess_row(n, point.se**2, point.classical_se**2)
    return pd.DataFrame({
        "option": [*point.options, "all"], "effective_n": ess, "ci_low": lo, "ci_high": hi,
        "gain": ess / n, "n_labelled": n, "n_boot": n_boot,
    })  # fmt: skip


def survey_ppi_shares(
    survey: object,
    target: str,
    predictions: object,
    *,
    labelled: np.ndarray | None = None,
    method: Method = "ppi++",
    level: float = 0.95,
    tuning: Tuning = "option",
) -> PPIShares:
    """:func:`ppi_shares` of one question of a survey, predictions matched by respondent.

    Args:
        survey: A :class:`~surveylm.survey.Survey`; its weights are used on both parts.
        target: The question.
        predictions: :class:`~surveylm.models.base.Predictions` holding the respondent
            items ``"{target}|r={respondent}"`` of every respondent (``surveylm predict``
            on respondent items), from a model that was not fitted on these answers.
        labelled: Boolean mask of the labelled respondents (default: those who answered
            ``target``); they must have an answer. Every other respondent is unlabelled.
    """
    from surveylm.survey import Survey

    if not isinstance(survey, Survey):
        raise DataError("survey_ppi_shares needs a Survey")
    q = survey.question(target)
    codes = survey.codes(target)
    mask = codes >= 0 if labelled is None else np.asarray(labelled, dtype=bool)
    if mask.shape != codes.shape:
        raise DataError(f"labelled mask has shape {mask.shape}; need {codes.shape}")
    if (codes[mask] < 0).any():
        raise DataError(f"{where(question=target)}labelled respondents without an answer")
    p = respondent_predictions(survey, target, predictions)
    w = survey.weights.to_numpy(dtype=np.float64)
    return ppi_shares(codes[mask], p[mask], p[~mask], labelled_weights=w[mask],
                      unlabelled_weights=w[~mask], options=q.options, method=method,
                      level=level, tuning=tuning)  # fmt: skip


def respondent_predictions(survey: object, target: str, predictions: object) -> np.ndarray:
    """``[n_respondents, K]`` predicted distributions in the survey's respondent order,
    taken from the items ``"{target}|r={respondent}"`` of ``predictions``."""
    from surveylm.models.base import Predictions

    if not isinstance(predictions, Predictions):
        raise DataError("predictions must be a Predictions object (surveylm predict)")
    pos = {str(iid): i for i, iid in enumerate(predictions.item_ids)}
    wanted = [f"{target}|r={r}" for r in survey.data.index]  # type: ignore[attr-defined]
    lost = [i for i in wanted if i not in pos]
    if lost:
        raise DataError(f"{where(question=target)}no prediction for {len(lost)} respondents, "
                        f"e.g. item {lost[0]!r}")  # fmt: skip
    k = survey.question(target).n_options  # type: ignore[attr-defined]
    rows = [np.asarray(predictions.distributions[pos[i]], dtype=np.float64) for i in wanted]
    if any(r.shape != (k,) for r in rows):
        raise DataError(f"{where(question=target)}predictions must have {k} options")
    return check_distribution_matrix(np.vstack(rows), context="predictions: ")


# -- internals ----------------------------------------------------------------------------
def normal_quantile(level: float, df: float = np.inf) -> float:
    """The two-sided quantile of ``level``: normal, or Student's t with ``df`` (≥ 1)."""
    return _quantile(float(level), float(df))


@functools.lru_cache(maxsize=4096)
def _quantile(level: float, df: float) -> float:
    # Cached: repeated-draw studies ask for the same few (level, df) thousands of times.
    if np.isinf(df):
        return float(stats.norm.ppf(0.5 + level / 2))
    return float(stats.t.ppf(0.5 + level / 2, max(df, 1.0)))


def _check(
    labels: np.ndarray | Sequence[int],
    p_l: np.ndarray,
    p_u: np.ndarray,
    w_l: np.ndarray | None,
    w_u: np.ndarray | None,
) -> tuple[np.ndarray, ...]:
    """Validated ``(y codes, p_l, p_u, a, b)`` with ``a``, ``b`` summing to 1."""
    y = np.asarray(labels)
    p_l = check_distribution_matrix(np.asarray(p_l, dtype=np.float64), context="labelled: ")
    p_u = check_distribution_matrix(np.asarray(p_u, dtype=np.float64), context="unlabelled: ")
    if y.ndim != 1 or len(y) != len(p_l):
        raise DataError(f"{y.shape} labels for {len(p_l)} labelled predictions")
    if p_l.shape[1] != p_u.shape[1]:
        raise DataError(f"labelled predictions have {p_l.shape[1]} options, unlabelled "
                        f"{p_u.shape[1]}")  # fmt: skip
    if len(y) < 2 or len(p_u) < 1:
        raise DataError(f"need 2+ labelled and 1+ unlabelled respondents; got {len(y)} and "
                        f"{len(p_u)}")  # fmt: skip
    if not np.issubdtype(y.dtype, np.integer) or (y < 0).any() or (y >= p_l.shape[1]).any():
        raise DataError(f"labels must be option indices 0..{p_l.shape[1] - 1}")
    return y, p_l, p_u, _norm_weights(w_l, len(y), "labelled"), _norm_weights(
        w_u, len(p_u), "unlabelled")  # fmt: skip


def _norm_weights(w: np.ndarray | None, n: int, part: str) -> np.ndarray:
    if w is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise DataError(f"{part} weights: need {n} finite, non-negative weights, not all 0")
    return w / w.sum()


def _estimate(
    y: np.ndarray, p_l: np.ndarray, p_u: np.ndarray, a: np.ndarray, b: np.ndarray,
    lam: np.ndarray, ddof: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Point estimate and linearised variance for per-option ``lam``."""
    n, k = p_l.shape
    onehot = np.eye(k)[y]
    rect = onehot - lam * p_l
    rbar = a @ rect
    pbar = b @ p_u
    v_l = (a[:, None] ** 2 * (rect - rbar) ** 2).sum(axis=0) * _factor(n, ddof)
    v_u = lam**2 * (b[:, None] ** 2 * (p_u - pbar) ** 2).sum(axis=0) * _factor(len(p_u), ddof)
    return lam * pbar + rbar, v_l + v_u


def _factor(m: int, ddof: int) -> float:
    return m / (m - ddof) if m > ddof else np.inf


def _tuned_lambda(
    y: np.ndarray, p_l: np.ndarray, p_u: np.ndarray, a: np.ndarray, b: np.ndarray,
    tuning: Tuning,
) -> np.ndarray:  # fmt: skip
    """PPI++'s variance-minimising λ for a mean (Angelopoulos, Duchi & Zrnic 2024), computed as
    ``ppi_py._calc_lam_glm`` does (identical without weights), with survey weights in
    gradients linearised about the weighted means: the answers' about their labelled mean,
    the predictions of both parts about the unlabelled mean of the predictions."""
    n, k = p_l.shape
    big_n = len(p_u)
    centre = b @ p_u
    g = n * a[:, None] * (np.eye(k)[y] - a @ np.eye(k)[y])
    gh = n * a[:, None] * (p_l - centre)
    ghu = big_n * b[:, None] * (p_u - centre)
    cov = ((g - g.mean(0)) * (gh - gh.mean(0))).sum(axis=0) / n
    var = np.var(np.vstack([gh, ghu]), axis=0, ddof=1)
    num, den = cov, (1 + n / big_n) * var
    if tuning == "overall":
        num, den = np.full(k, num.sum()), np.full(k, den.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        # a prediction that does not vary (the question marginal) gets λ = 0, not noise
        lam = np.where(den > 1e-12, num / den, 0.0)
    return np.clip(lam, 0.0, 1.0)


def _fit(
    y: np.ndarray, p_l: np.ndarray, p_u: np.ndarray, a: np.ndarray, b: np.ndarray,
    method: str, tuning: Tuning, lam: float | None, ddof: int,
) -> tuple[np.ndarray, ...]:  # fmt: skip
    """``(estimate, variance, λ, classical estimate, classical variance)`` per option."""
    k = p_l.shape[1]
    if lam is not None:
        lam_k = np.full(k, float(lam))
    elif method == "classical":
        lam_k = np.zeros(k)
    elif method == "ppi":
        lam_k = np.ones(k)
    else:
        lam_k = _tuned_lambda(y, p_l, p_u, a, b, tuning)
    est, var = _estimate(y, p_l, p_u, a, b, lam_k, ddof)
    c_est, c_var = _estimate(y, p_l, p_u, a, b, np.zeros(k), ddof)
    return est, var, lam_k, c_est, c_var


def _ess_row(n: int, var: np.ndarray, c_var: np.ndarray) -> np.ndarray:
    """Effective sizes ``n · v_classical / v`` per option and for the summed variances."""
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(var > 0, n * c_var / var, float(n))
    tot = float(var.sum())
    return np.append(per, n * float(c_var.sum()) / tot if tot > 0 else float(n))


def correct_survey(
    survey: object,
    target: str,
    *,
    predictions: object | None = None,
    model: object | None = None,
    features: Sequence[str] = (),
    keep: int | None = None,
    folds: int = 5,
    seed: int = 0,
    level: float = 0.95,
    n_boot: int = 1000,
    group: Mapping[str, str | Sequence[str]] | None = None,
) -> pd.DataFrame:
    """What ``surveylm correct`` prints: PPI++ beside classical shares and the effective n.

    Args:
        survey: The survey; respondents who answered ``target`` are the labelled set.
        target: The question.
        predictions: Predictions of every respondent from a model fitted elsewhere; or
        model: an unfitted model (or registry name) cross-fitted on the answerers with
            ``folds`` folds (:func:`surveylm.crossfit.cross_fit_predictions`) on
            ``features``.
        keep: Keep only this many answers (drawn with ``seed``) and hide the rest — the
            few-real-respondents setting on a survey where everyone answered; the hidden
            answers' full share is then shown as ``truth``.
        folds, seed, level, n_boot: Cross-fitting folds, seed, interval level, bootstrap
            resamples of the effective-n interval.
        group: Estimate one group's shares (``{"party": "Democrat"}``): only its members
            are labelled and unlabelled respondents (with ``keep``: a pilot of ``keep``
            members). Predictions that are the same for every member (a group-level
            distribution) are corrected away entirely — PPI++ is then the members'
            answers alone; the gain comes from predictions that differ between members.

    Returns:
        One row per option: PPI++ ``estimate``/``lower``/``upper``, ``lam``, classical
        share and interval, the model's share, ``effective_n`` with ``effective_n_low`` /
        ``effective_n_high``, and ``truth`` (full-sample share) when known.
    """
    from surveylm.missingness import apply_missingness
    from surveylm.survey import Survey

    if not isinstance(survey, Survey):
        raise DataError("correct_survey needs a Survey")
    if (predictions is None) == (model is None):
        raise DataError("give exactly one of predictions and model")
    if group is not None:
        from surveylm.items import Group

        members = Group.from_mapping(group).mask(survey)
        if not members.any():
            raise DataError(f"group {dict(group)} has no respondent")
        survey = survey.subset(members)
    codes = survey.codes(target)
    w = survey.weights.to_numpy(dtype=np.float64)
    truth = None
    observed = survey
    if keep is not None:
        answered = np.flatnonzero(codes >= 0)
        if not 2 <= keep < len(answered):
            raise DataError(f"keep must be in [2, {len(answered)}), got {keep}")
        kept = np.random.default_rng(seed).choice(answered, keep, replace=False)
        hide = codes >= 0
        hide[kept] = False
        observed = apply_missingness(survey, target, hide)
        k = survey.question(target).n_options
        truth = np.bincount(codes[answered], weights=w[answered], minlength=k)
        truth = truth / truth.sum()
    if predictions is None:
        from surveylm.crossfit import cross_fit_predictions
        from surveylm.models import make_model
        from surveylm.models.base import AnswerModel

        m = make_model(model) if isinstance(model, str) else model
        if not isinstance(m, AnswerModel):
            raise DataError("model must be an AnswerModel or a registry name")
        predictions = cross_fit_predictions(m, observed, target, features, folds=folds,
                                            seed=seed)  # fmt: skip
    shares = survey_ppi_shares(observed, target, predictions, level=level)
    obs = observed.codes(target)
    lab = obs >= 0
    p = respondent_predictions(observed, target, predictions)
    ess = effective_sample_size(obs[lab], p[lab], p[~lab], labelled_weights=w[lab],
                                unlabelled_weights=w[~lab], level=level, n_boot=n_boot,
                                seed=seed)  # fmt: skip
    ess = ess[ess["option"] != "all"]
    frame = shares.to_frame().assign(
        effective_n_low=ess["ci_low"].to_numpy(), effective_n_high=ess["ci_high"].to_numpy()
    )
    if truth is not None:
        frame["truth"] = truth
    return frame
