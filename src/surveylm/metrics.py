"""Metrics: distribution, respondent and population level, and sampling-noise floors.

The definitions are the ones of DESIGN.md ("Reference definitions") and are tested
against independent implementations (scipy, scikit-learn):

* **Distribution metrics** for one item — human distribution ``p`` (the target), model
  distribution ``q`` (the prediction): the ordinal Wasserstein distance used by SubPOP
  (Suh et al. 2025) and OpinionQA (Santurkar et al. 2023), total variation, the SimBench
  score (Hu et al. 2025), the Jensen–Shannon divergence in bits and KL(p‖q) in nats (the
  loss of Cao et al. 2025 and of SubPOP's fine-tuning).
* **Respondent metrics** for imputation (Holtdirk et al. 2025): accuracy, balanced
  accuracy, macro F1, log loss and the multiclass Brier score, all survey-weighted.
* **Population metrics**: weighted option shares of the full population against the
  estimate from observed + imputed answers.
* **Noise floors**: the metric a *perfect* model would get, given that the human
  distribution is itself a finite sample — the yardstick beside every method.

Single-item functions (:func:`wasserstein`, :func:`kl_divergence`, ...) validate their
inputs and are the reference; :func:`distribution_metrics` applies the same kernels to
many items of one question at once.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from surveylm.distributions import check_distribution, check_distribution_matrix
from surveylm.errors import CodebookError, DataError, DistributionError

#: Floor on the model probability inside KL(p‖q) (DESIGN.md), so that a zero costs a lot
#: (−ln 1e-12 ≈ 27.6 nats) instead of infinity.
KL_FLOOR = 1e-12
#: A human distribution closer than this (in TV) to uniform has no SimBench score (NaN):
#: its denominator TV(p, uniform) is zero.
SIMBENCH_MIN_TV = 1e-12
#: Names of the per-item distribution metrics, in report order.
DISTRIBUTION_METRICS = ("wd", "tv", "jsd", "kl", "simbench")
#: Names of the respondent-level metrics, in report order.
RESPONDENT_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss", "brier")

ArrayLike = Sequence[float] | np.ndarray


# -- validation ------------------------------------------------------------------------
def _pair(p: ArrayLike, q: ArrayLike, context: str) -> tuple[np.ndarray, np.ndarray]:
    p = check_distribution(p, context=f"{context}human distribution: ")
    q = check_distribution(q, len(p), context=f"{context}model distribution: ")
    return p[None, :], q[None, :]


def check_ordinal(ordinal: ArrayLike, n_options: int, *, context: str = "") -> np.ndarray:
    """Validate ordinal option values: one per option, finite, substantive (non-negative)
    values increasing in option order, at least two of them.

    Raises:
        CodebookError: if any of these does not hold.
    """
    o = np.asarray(ordinal, dtype=np.float64)
    if o.shape != (n_options,):
        raise CodebookError(f"{context}{o.size} ordinal values for {n_options} options")
    if not np.all(np.isfinite(o)):
        raise CodebookError(f"{context}ordinal values must be finite, got {o.tolist()}")
    sub = o[o >= 0]
    if sub.size < 2 or np.any(np.diff(sub) <= 0):
        raise CodebookError(
            f"{context}ordinal values need 2+ non-negative values increasing in option "
            f"order, got {o.tolist()}"
        )
    return o


# -- kernels: rows are items of one question -------------------------------------------
def _tv_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return 0.5 * np.abs(p - q).sum(axis=-1)


def _kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    q = np.maximum(q, KL_FLOOR)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / q), 0.0)
    # ≥ 0 up to rounding (and up to K·1e-12 from the unrenormalised floor).
    return np.maximum(terms.sum(axis=-1), 0.0)


def _jsd_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    m = 0.5 * (p + q)

    def half(a: np.ndarray) -> np.ndarray:
        safe_a = np.where(a > 0, a, 1.0)
        safe_m = np.where(a > 0, m, 1.0)
        return np.where(a > 0, a * np.log2(safe_a / safe_m), 0.0).sum(axis=-1)

    return np.clip(0.5 * half(p) + 0.5 * half(q), 0.0, 1.0)


def _wd_rows(p: np.ndarray, q: np.ndarray, ordinal: np.ndarray | None) -> np.ndarray:
    if ordinal is None:
        return np.full(p.shape[:-1], np.nan)
    keep = ordinal >= 0
    o = ordinal[keep]
    ps, qs = p[..., keep], q[..., keep]
    ms, mq = ps.sum(axis=-1, keepdims=True), qs.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ps, qs = ps / ms, qs / mq
    gaps = np.abs(np.cumsum(ps, axis=-1) - np.cumsum(qs, axis=-1))[..., :-1]
    wd = (gaps * np.diff(o)).sum(axis=-1) / (o[-1] - o[0])
    # No substantive mass on one side (everyone said "don't know"): undefined.
    return np.where((ms[..., 0] > 0) & (mq[..., 0] > 0), wd, np.nan)


def _simbench_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    tv_uniform = _tv_rows(p, np.full_like(p, 1.0 / p.shape[-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 100.0 * (1.0 - _tv_rows(p, q) / tv_uniform)
    return np.where(tv_uniform > SIMBENCH_MIN_TV, score, np.nan)


def _all_rows(p: np.ndarray, q: np.ndarray, ordinal: np.ndarray | None) -> dict[str, np.ndarray]:
    return {
        "wd": _wd_rows(p, q, ordinal),
        "tv": _tv_rows(p, q),
        "jsd": _jsd_rows(p, q),
        "kl": _kl_rows(p, q),
        "simbench": _simbench_rows(p, q),
    }


# -- single-item reference functions ---------------------------------------------------
def wasserstein(
    p: ArrayLike, q: ArrayLike, ordinal: ArrayLike | None, *, context: str = ""
) -> float:
    """Normalised ordinal Wasserstein (earth mover's) distance, in [0, 1].

    ``WD = Σ_{i<K} |F_p(i) − F_q(i)| · (o_{i+1} − o_i) / (o_K − o_1)`` over the
    substantive options (ordinal value ≥ 0; "don't know"/"refused" options with negative
    values are dropped and both sides renormalised), as in SubPOP (Suh et al. 2025) and
    OpinionQA. Equals ``scipy.stats.wasserstein_distance(o, o, p, q) / (o_K − o_1)``.

    Args:
        p: Human distribution over the question's options.
        q: Model distribution.
        ordinal: The options' ordinal values; ``None`` for a nominal question.
        context: Location prefix for error messages.

    Returns:
        The distance; NaN for a nominal question, or when one side puts no mass on any
        substantive option.

    Raises:
        DistributionError: ``p`` or ``q`` is not a distribution, or their lengths differ.
        CodebookError: invalid ordinal values.
    """
    pp, qq = _pair(p, q, context)
    o = None if ordinal is None else check_ordinal(ordinal, pp.shape[1], context=context)
    return float(_wd_rows(pp, qq, o)[0])


def total_variation(p: ArrayLike, q: ArrayLike, *, context: str = "") -> float:
    """Total variation distance ``½ Σ |p − q|``, in [0, 1]."""
    pp, qq = _pair(p, q, context)
    return float(_tv_rows(pp, qq)[0])


def simbench_score(p: ArrayLike, q: ArrayLike, *, context: str = "") -> float:
    """SimBench score ``100 · (1 − TV(p, q) / TV(p, uniform))`` (Hu et al. 2025).

    100 is perfect, 0 is as good as predicting uniform, negative is worse than uniform.
    NaN when the human distribution ``p`` is itself (within 1e-12) uniform.
    """
    pp, qq = _pair(p, q, context)
    return float(_simbench_rows(pp, qq)[0])


def js_divergence(p: ArrayLike, q: ArrayLike, *, context: str = "") -> float:
    """Jensen–Shannon **divergence** in bits (base 2), in [0, 1].

    ``JSD = ½ KL(p‖m) + ½ KL(q‖m)`` with ``m = (p + q)/2``; equals
    ``scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2``. This is what the
    evaluation reports as ``jsd``; see :func:`js_distance` for the square root.
    """
    pp, qq = _pair(p, q, context)
    return float(_jsd_rows(pp, qq)[0])


def js_distance(p: ArrayLike, q: ArrayLike, *, context: str = "") -> float:
    """Jensen–Shannon **distance** (base 2): the square root of :func:`js_divergence`."""
    return float(np.sqrt(js_divergence(p, q, context=context)))


def kl_divergence(p: ArrayLike, q: ArrayLike, *, context: str = "") -> float:
    """KL(p‖q) in nats, with ``q`` floored at :data:`KL_FLOOR` (1e-12), not renormalised.

    The forward KL from the human distribution ``p`` to the model ``q``: the training
    objective of SubPOP and Cao et al. 2025; for a one-hot ``p`` it is the log loss.
    """
    pp, qq = _pair(p, q, context)
    return float(_kl_rows(pp, qq)[0])


def entropy(p: ArrayLike, *, context: str = "") -> float:
    """Shannon entropy of ``p`` in bits (for reporting how diverse predictions are)."""
    arr = check_distribution(p, context=context)
    nz = arr[arr > 0]
    return float(-(nz * np.log2(nz)).sum()) if nz.size else 0.0


def distribution_metrics(
    p: np.ndarray, q: np.ndarray, ordinal: ArrayLike | None = None, *, context: str = ""
) -> dict[str, np.ndarray]:
    """All of :data:`DISTRIBUTION_METRICS` for many items of one question at once.

    Args:
        p: ``(n_items, K)`` human distributions (targets).
        q: ``(n_items, K)`` model distributions.
        ordinal: The question's ordinal values, ``None`` if nominal (``wd`` is then NaN).
        context: Location prefix for error messages.

    Returns:
        ``{"wd", "tv", "jsd", "kl", "simbench"}`` → ``(n_items,)`` arrays, identical to
        the single-item functions row by row.
    """
    pm = check_distribution_matrix(p, context=f"{context}human distributions: ")
    qm = check_distribution_matrix(q, context=f"{context}model distributions: ")
    if pm.shape != qm.shape:
        raise DistributionError(f"{context}shapes differ: {pm.shape} vs {qm.shape}")
    o = None if ordinal is None else check_ordinal(ordinal, pm.shape[1], context=context)
    return _all_rows(pm, qm, o)


# -- sampling-noise floors -------------------------------------------------------------
def floor_sample_size(n: float, n_eff: float | None = None) -> int:
    """The multinomial sample size used for a group's noise floor.

    Kish's effective n (rounded, at least 1) when known and positive — weighted shares
    vary like a simple random sample of n_eff respondents — else the unweighted ``n``;
    0 when neither is positive (no floor can be computed).
    """
    if n_eff is not None and np.isfinite(n_eff) and n_eff > 0:
        return max(1, round(float(n_eff)))
    return max(0, round(float(n))) if np.isfinite(n) else 0


def noise_floor_matrix(
    p: np.ndarray,
    sizes: np.ndarray,
    ordinal: np.ndarray | None,
    *,
    n_draws: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Expected metrics of a *perfect* model for many items of one question.

    For each item, draws ``n_draws`` multinomial samples of its size from ``p`` and
    averages ``metric(target = sample shares, prediction = p)``: the score a model that
    knows the true distribution would get against a finite-sample human target. (The
    sample plays the target, so KL stays finite.) Items of size 0 get NaN.
    """
    p = np.asarray(p, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.int64)
    out = {m: np.full(len(p), np.nan) for m in DISTRIBUTION_METRICS}
    ok = np.flatnonzero(sizes > 0)
    if ok.size == 0:
        return out
    pk, nk = p[ok], sizes[ok]
    counts = rng.multinomial(nk, pk, size=(n_draws, len(ok)))  # (draws, items, K)
    samples = counts / nk[None, :, None]
    rows = _all_rows(samples, np.broadcast_to(pk, samples.shape), ordinal)
    with np.errstate(all="ignore"), _quiet():
        for m, v in rows.items():
            out[m][ok] = np.nanmean(v, axis=0)
    return out


def noise_floor(
    p: ArrayLike,
    n: int,
    ordinal: ArrayLike | None = None,
    *,
    n_draws: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Sampling-noise floor of one group item (see :func:`noise_floor_matrix`).

    Args:
        p: The group's distribution.
        n: Sample size of the multinomial draws (use :func:`floor_sample_size`).
        ordinal: Ordinal values, ``None`` if nominal.
        n_draws: Number of resamples averaged.
        seed: Random seed.
    """
    pm = check_distribution(p)[None, :]
    o = None if ordinal is None else check_ordinal(ordinal, pm.shape[1])
    rows = noise_floor_matrix(
        pm, np.array([n]), o, n_draws=n_draws, rng=np.random.default_rng(seed)
    )
    return {m: float(v[0]) for m, v in rows.items()}


def bootstrap_floor(
    codes: ArrayLike,
    n_options: int,
    weights: ArrayLike | None = None,
    ordinal: ArrayLike | None = None,
    *,
    n_draws: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Noise floor by resampling a group's own respondents (with replacement).

    The weighted shares of each bootstrap resample play the target, the full group's
    weighted shares the prediction; metrics are averaged over ``n_draws`` resamples.
    Codes of -1 (not answered) are ignored.
    """
    c = np.asarray(codes, dtype=np.int64)
    w = np.ones(len(c)) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = c >= 0
    c, w = c[keep], w[keep]
    if c.size == 0 or w.sum() <= 0 or c.max() >= n_options:
        raise DataError("bootstrap_floor needs answered codes in [0, n_options) with weight")
    o = None if ordinal is None else check_ordinal(ordinal, n_options)
    full = np.bincount(c, weights=w, minlength=n_options) / w.sum()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, c.size, size=(n_draws, c.size))
    flat = c[idx] + n_options * np.arange(n_draws)[:, None]
    sums = np.bincount(flat.ravel(), weights=w[idx].ravel(), minlength=n_draws * n_options)
    sums = sums.reshape(n_draws, n_options)
    with np.errstate(all="ignore"):
        samples = sums / sums.sum(axis=1, keepdims=True)
    valid = np.isfinite(samples).all(axis=1)
    rows = _all_rows(samples[valid], np.broadcast_to(full, samples[valid].shape), o)
    with np.errstate(all="ignore"), _quiet():
        return {m: float(np.nanmean(v)) if v.size else float("nan") for m, v in rows.items()}


# -- respondent level ------------------------------------------------------------------
def _respondent_inputs(
    y_true: ArrayLike, q: np.ndarray, sample_weight: ArrayLike | None, context: str = ""
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    qm = check_distribution_matrix(np.asarray(q, dtype=np.float64), context=context)
    y = np.asarray(y_true)
    if y.ndim == 2:
        if y.shape != qm.shape or not np.all((y == 0) | (y == 1)) or np.any(y.sum(1) != 1):
            raise DataError(f"{context}true answers must be one-hot rows shaped like {qm.shape}")
        y = y.argmax(axis=1)
    y = y.astype(np.int64)
    if y.shape != (len(qm),) or np.any((y < 0) | (y >= qm.shape[1])):
        raise DataError(
            f"{context}need {len(qm)} true option indices in [0, {qm.shape[1]}), got shape "
            f"{y.shape}"
        )
    if sample_weight is None:
        w = np.ones(len(y))
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != y.shape or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise DataError(
                f"{context}sample weights must be {len(y)} finite values >= 0, not all 0"
            )
    return y, qm, w


def respondent_values(y: np.ndarray, q: np.ndarray) -> dict[str, np.ndarray]:
    """Per-respondent pieces: predicted option (argmax, first on ties), correct (0/1),
    log loss ``−ln clip(q_y, ε, 1−ε)`` (ε = float64 machine epsilon, as scikit-learn),
    Brier ``Σ_k (q_k − y_k)²``."""
    pred = q.argmax(axis=1)
    q_y = q[np.arange(len(y)), y]
    eps = np.finfo(np.float64).eps
    return {
        "pred": pred,
        "correct": (pred == y).astype(np.float64),
        "log_loss": -np.log(np.clip(q_y, eps, 1 - eps)),
        "brier": (q * q).sum(axis=1) - 2 * q_y + 1.0,
    }


def class_metrics(
    tp: np.ndarray, t: np.ndarray, pr: np.ndarray, present: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced accuracy and macro F1 from weighted per-class sums (last axis = class).

    ``tp``: weight of correct answers of each class; ``t``: weight truly in the class;
    ``pr``: weight predicted in it; ``present``: class occurs (unweighted) as a true or a
    predicted label. Balanced accuracy averages recall over classes with ``t > 0``; macro F1
    averages ``2·tp / (t + pr)`` (0 when that is 0/0) over present classes — both exactly
    as scikit-learn.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(t > 0, tp / t, 0.0)
        f1 = np.where(t + pr > 0, 2 * tp / (t + pr), 0.0)
        bal = (recall * (t > 0)).sum(-1) / (t > 0).sum(-1)
        mf1 = (f1 * present).sum(-1) / present.sum(-1)
    return np.clip(bal, 0.0, 1.0), np.clip(mf1, 0.0, 1.0)


def respondent_metrics(
    y_true: ArrayLike, q: np.ndarray, sample_weight: ArrayLike | None = None
) -> dict[str, float]:
    """All of :data:`RESPONDENT_METRICS` for one question's respondents.

    Args:
        y_true: True option index per respondent, or one-hot rows.
        q: ``(n, K)`` predicted distributions.
        sample_weight: Survey weights (default 1).

    Returns:
        ``accuracy`` (argmax prediction, ties to the first option), ``balanced_accuracy``,
        ``macro_f1`` (over options that occur as a true or predicted answer), ``log_loss``
        (nats) and ``brier`` (multiclass: weighted mean of ``Σ_k (q_k − y_k)²``, in
        [0, 2]) — equal to scikit-learn's ``accuracy_score``, ``balanced_accuracy_score``,
        ``f1_score(average="macro")``, ``log_loss(labels=range(K))`` and
        ``brier_score_loss(labels=range(K), scale_by_half=False)`` with ``sample_weight``.
    """
    y, qm, w = _respondent_inputs(y_true, q, sample_weight)
    v = respondent_values(y, qm)
    k = qm.shape[1]
    t = np.bincount(y, weights=w, minlength=k)
    tp = np.bincount(y, weights=w * v["correct"], minlength=k)
    pr = np.bincount(v["pred"], weights=w, minlength=k)
    present = (np.bincount(y, minlength=k) + np.bincount(v["pred"], minlength=k)) > 0
    bal, mf1 = class_metrics(tp, t, pr, present)
    return {
        "accuracy": float(np.average(v["correct"], weights=w)),
        "balanced_accuracy": float(bal),
        "macro_f1": float(mf1),
        "log_loss": float(np.average(v["log_loss"], weights=w)),
        "brier": float(np.average(v["brier"], weights=w)),
    }


def accuracy(y_true: ArrayLike, q: np.ndarray, sample_weight: ArrayLike | None = None) -> float:
    """Weighted share of respondents whose most likely option is their answer."""
    return respondent_metrics(y_true, q, sample_weight)["accuracy"]


def balanced_accuracy(
    y_true: ArrayLike, q: np.ndarray, sample_weight: ArrayLike | None = None
) -> float:
    """Mean over true options of the weighted recall (see :func:`respondent_metrics`)."""
    return respondent_metrics(y_true, q, sample_weight)["balanced_accuracy"]


def macro_f1(y_true: ArrayLike, q: np.ndarray, sample_weight: ArrayLike | None = None) -> float:
    """Unweighted mean of per-option F1 (see :func:`respondent_metrics`)."""
    return respondent_metrics(y_true, q, sample_weight)["macro_f1"]


def log_loss(y_true: ArrayLike, q: np.ndarray, sample_weight: ArrayLike | None = None) -> float:
    """Weighted mean of ``−ln q_y`` (nats), q clipped to [ε, 1−ε] as scikit-learn does."""
    return respondent_metrics(y_true, q, sample_weight)["log_loss"]


def brier_score(y_true: ArrayLike, q: np.ndarray, sample_weight: ArrayLike | None = None) -> float:
    """Multiclass Brier score: weighted mean over respondents of ``Σ_k (q_k − y_k)²``."""
    return respondent_metrics(y_true, q, sample_weight)["brier"]


# -- population level ------------------------------------------------------------------
def weighted_shares(
    answers: ArrayLike | np.ndarray, weights: ArrayLike | None = None, n_options: int | None = None
) -> np.ndarray:
    """Weighted share of each option.

    Args:
        answers: Option indices (``-1`` = not answered, left out), or an ``(n, K)``
            matrix of per-respondent distributions (observed answers one-hot, imputed
            ones as predicted distributions).
        weights: Survey weights (default 1).
        n_options: Number of options (needed for indices; taken from the matrix otherwise).
    """
    a = np.asarray(answers)
    w = np.ones(len(a)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(a),) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DataError(f"need {len(a)} finite, non-negative weights")
    if a.ndim == 2:
        m = check_distribution_matrix(a)
        total = w.sum()
        shares = (w @ m) / total if total > 0 else None
    else:
        if n_options is None:
            raise DataError("weighted_shares needs n_options for option indices")
        c = a.astype(np.int64)
        if np.any(c >= n_options) or np.any(c < -1):
            raise DataError(f"option indices must lie in [-1, {n_options})")
        keep = c >= 0
        total = w[keep].sum()
        shares = (
            np.bincount(c[keep], weights=w[keep], minlength=n_options) / total
            if total > 0
            else None
        )
    if shares is None:
        raise DataError("no (weighted) answers to compute shares from")
    return shares


def population_errors(
    truth: ArrayLike | np.ndarray,
    estimate: ArrayLike | np.ndarray,
    weights: ArrayLike | None = None,
    n_options: int | None = None,
    *,
    estimate_weights: ArrayLike | None = None,
) -> dict[str, Any]:
    """Compare the full population's weighted shares with an estimate.

    Args:
        truth: The full population's answers (indices or distributions, see
            :func:`weighted_shares`).
        estimate: Observed + imputed answers (same forms), e.g. one-hot for observed
            respondents and predicted distributions for imputed ones.
        weights: Survey weights of ``truth`` (and of ``estimate`` unless given apart).
        n_options: Number of options, when answers are indices.
        estimate_weights: Weights of ``estimate`` when its respondents differ.

    Returns:
        ``{"truth", "estimate", "abs_error"}`` arrays over options and ``"tv"``, the total
        variation between the two share vectors.
    """
    t = weighted_shares(truth, weights, n_options)
    ew = weights if estimate_weights is None else estimate_weights
    e = weighted_shares(estimate, ew, n_options if n_options is not None else len(t))
    if len(t) != len(e):
        raise DistributionError(f"truth has {len(t)} options but the estimate {len(e)}")
    return {"truth": t, "estimate": e, "abs_error": np.abs(e - t), "tv": float(_tv_rows(t, e))}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's 'mean of empty slice' warnings inside a block."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
