"""Checking and normalising probability distributions (arrays in memory).

Every target and every prediction in surveylm is a distribution over a question's
options. These helpers refuse anything that is not one, naming where it came from,
instead of letting a metric silently compute a wrong number. Reading and writing files of
group distributions is :mod:`surveylm.io.distributions`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from surveylm.errors import DistributionError

#: Absolute tolerance on ``sum(p) == 1`` for a distribution read from a file or a model.
SUM_TOLERANCE = 1e-6


def check_distribution(
    p: Sequence[float] | np.ndarray,
    n_options: int | None = None,
    *,
    context: str = "",
    tol: float = SUM_TOLERANCE,
    renormalise: bool = True,
) -> np.ndarray:
    """Validate ``p`` as a probability distribution and return it as float64.

    Args:
        p: The probabilities, in option order.
        n_options: Expected length (the question's number of options), if known.
        context: Location prefix for the error message (see :func:`surveylm.errors.where`).
        tol: Allowed absolute deviation of ``sum(p)`` from 1.
        renormalise: Divide by the sum so that rounding error within ``tol`` disappears.

    Raises:
        DistributionError: if ``p`` has the wrong length, NaN/inf or negative entries,
            or does not sum to 1 within ``tol``.
    """
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 1:
        raise DistributionError(f"{context}expected a 1-D distribution, got shape {arr.shape}")
    if n_options is not None and arr.shape[0] != n_options:
        raise DistributionError(
            f"{context}distribution has {arr.shape[0]} values but the question has "
            f"{n_options} options"
        )
    if not np.all(np.isfinite(arr)):
        raise DistributionError(f"{context}distribution contains NaN or infinite values: {arr}")
    if np.any(arr < 0):
        raise DistributionError(f"{context}distribution has negative probabilities: {arr}")
    total = float(arr.sum())
    if abs(total - 1.0) > tol:
        raise DistributionError(
            f"{context}probabilities sum to {total:.6g}, not 1 (tolerance {tol:g})"
        )
    return arr / total if renormalise else arr


def check_distribution_matrix(
    p: np.ndarray, *, context: str = "", tol: float = SUM_TOLERANCE
) -> np.ndarray:
    """Validate each row of a 2-D array as a distribution (see :func:`check_distribution`)."""
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 2:
        raise DistributionError(f"{context}expected a 2-D array of distributions, got {arr.shape}")
    bad = ~np.all(np.isfinite(arr), axis=1) | np.any(arr < 0, axis=1)
    bad |= np.abs(arr.sum(axis=1) - 1.0) > tol
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        check_distribution(arr[i], context=f"{context}row {i}: ", tol=tol)
    return arr / arr.sum(axis=1, keepdims=True)


def one_hot(index: int, n_options: int) -> np.ndarray:
    """The one-hot distribution putting all mass on option ``index``."""
    out = np.zeros(n_options, dtype=np.float64)
    out[index] = 1.0
    return out


def uniform(n_options: int) -> np.ndarray:
    """The uniform distribution over ``n_options`` options."""
    return np.full(n_options, 1.0 / n_options, dtype=np.float64)
