"""Paired percentile bootstrap of (weighted) means, vectorised.

Every model is scored on the same resamples (a fresh generator from one seed each call),
so the intervals of different rows in an evaluation table are comparable. Resamples are
multiplicity counts, so the means of many columns at once are one matrix product.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np


def count_chunks(
    n: int, n_boot: int, seed: np.random.SeedSequence | np.random.Generator
) -> Iterator[np.ndarray]:
    """Bootstrap resamples of ``n`` units as multiplicity counts, ``(chunk, n)`` at a time.

    A fresh generator from a ``SeedSequence`` each call, so every model sees the same
    resamples (a paired bootstrap); a ``Generator`` is drawn from where it stands (one
    stream over several calls). The chunk size depends on ``n`` only.
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 4_000_000 // max(n, 1)))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(b, n)) + n * np.arange(b)[:, None]
        yield np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        done += b


def bootstrap_means(
    v: np.ndarray,
    w: np.ndarray,
    seed: np.random.SeedSequence | np.random.Generator,
    n_boot: int,
    ci: float,
    clusters: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted column means of ``v`` ignoring NaN, with percentile bootstrap intervals.

    ``clusters`` (one label per row): resample whole clusters (a cluster bootstrap, Davison
    & Hinkley 1997, sec. 3.8) — the rows of a cluster move together, so items that share a
    question are not counted as independent evidence. ``None``: rows are resampled.

    Returns point estimates, interval bounds and the non-NaN count of each column.
    """
    ok = np.isfinite(v)
    v0 = np.where(ok, v, 0.0) * w[:, None]
    okw = ok * w[:, None]
    if clusters is None:
        unit, n_units = None, len(v)
    else:
        _, unit = np.unique(np.asarray(clusters), return_inverse=True)
        n_units = int(unit.max()) + 1 if len(unit) else 0
    with np.errstate(divide="ignore", invalid="ignore"):
        point = v0.sum(axis=0) / okw.sum(axis=0)
        reps = [c @ v0 / (c @ okw) if unit is None else c[:, unit] @ v0 / (c[:, unit] @ okw)
                for c in count_chunks(n_units, n_boot, seed)]  # fmt: skip
    low, high = percentile_interval(np.vstack(reps) if reps else np.empty((0, v.shape[1])), ci)
    return point, low, high, ok.sum(axis=0)


def percentile_interval(reps: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    if reps.shape[0] == 0:
        nan = np.full(reps.shape[1], np.nan)
        return nan, nan.copy()
    alpha = 100 * (1 - ci) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(reps, [alpha, 100 - alpha], axis=0)
    return low, high
