"""Distribution metrics for one item (human ``p`` vs model ``q``) and noise floors.

The ordinal Wasserstein distance of SubPOP (Suh et al. 2025) and OpinionQA (Santurkar et
al. 2023), total variation, the SimBench score (Hu et al. 2025), the Jensen–Shannon
divergence in bits and KL(p‖q) in nats (the objective of Cao et al. 2025 and of SubPOP's
fine-tuning), exactly as DESIGN.md defines them. The single-item functions validate their
inputs and are the reference; :func:`distribution_metrics` runs the same row-wise kernels
over many items of one question.

The **noise floor** is the score a *perfect* model gets because the human distribution is
itself a finite sample: the yardstick reported beside every method.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import numpy as np

from surveylm.distribution_checks import check_distribution, check_distribution_matrix
from surveylm.errors import CodebookError, DataError, DistributionError
from surveylm.metrics.registry import names

#: Floor on the model probability inside KL(p‖q) (DESIGN.md), so that a zero costs a lot
#: (−ln 1e-12 ≈ 27.6 nats) instead of infinity.
KL_FLOOR = 1e-12
#: A human distribution closer than this (in TV) to uniform has no SimBench score (NaN):
#: its denominator TV(p, uniform) is zero.
SIMBENCH_MIN_TV = 1e-12
#: Names of the per-item distribution metrics, in report order (from the registry).
DISTRIBUTION_METRICS = names("distribution")

ArrayLike = Sequence[float] | np.ndarray


# -- validation ------------------------------------------------------------------------
def _pair(p: ArrayLike, q: ArrayLike, context: str) -> tuple[np.ndarray, np.ndarray]:
    p = check_distribution(p, context=f"{context}human distribution: ")
    q = check_distribution(q, len(p), context=f"{context}model distribution: ")
    return p[None, :], q[None, :]


def check_ordinal(ordinal: ArrayLike, n_options: int, *, context: str = "") -> np.ndarray:
    """Validate ordinal option values: one per option, finite, at least two distinct
    substantive (non-negative) values. They need not increase in option order: the scale's
    order and spacing are the values' own (SubPOP lists e.g. 2.0 / 1.5 / 1.0).

    Raises:
        CodebookError: if any of these does not hold.
    """
    o = np.asarray(ordinal, dtype=np.float64)
    if o.shape != (n_options,):
        raise CodebookError(f"{context}{o.size} ordinal values for {n_options} options")
    if not np.all(np.isfinite(o)):
        raise CodebookError(f"{context}ordinal values must be finite, got {o.tolist()}")
    if np.unique(o[o >= 0]).size < 2:
        raise CodebookError(
            f"{context}ordinal values need 2+ distinct non-negative values, got {o.tolist()}"
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
    keep = np.flatnonzero(ordinal >= 0)
    # Options in the order of their values (stable: ties keep option order), with the
    # values' own spacing.
    keep = keep[np.argsort(ordinal[keep], kind="stable")]
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
    OpinionQA. The options are taken in the order of their values ``o`` (sorted), so
    fractional, descending and unequally spaced values count as given: the distance equals
    ``scipy.stats.wasserstein_distance(o, o, p, q) / (max o − min o)``.

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


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's 'mean of empty slice' warnings inside a block."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
