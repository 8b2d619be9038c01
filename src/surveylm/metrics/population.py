"""Population-level metrics: weighted option shares, truth against an estimate.

The full population's weighted shares against the estimate from observed + imputed
answers (observed one-hot, imputed as predicted distributions): absolute error per option
and total variation (DESIGN.md, "Population level"). Multiple imputation, Rubin pooling
and interval coverage are :mod:`surveylm.mi_pooling`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from surveylm.distribution_checks import check_distribution_matrix
from surveylm.errors import DataError, DistributionError

ArrayLike = Sequence[float] | np.ndarray


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
    return {
        "truth": t,
        "estimate": e,
        "abs_error": np.abs(e - t),
        "tv": float(0.5 * np.abs(t - e).sum()),
    }
