"""Calibration of predicted answer probabilities: reliability bins and the expected
calibration error (ECE).

Metrics only; the report's reliability diagram (:func:`surveylm.report.figures.reliability`)
draws them. Both work on tidy prediction rows (``prob``, ``observed`` 0/1, optional
``weight``), one row per predicted probability of one option: rows of every option give
class-wise pooled calibration (the report keeps only the first option of a two-option
target, whose other option is its mirror image). Bins and ECE are weighted by the
respondents' survey weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["calibration_bins", "expected_calibration_error"]


def calibration_bins(
    predictions: pd.DataFrame, n_bins: int = 10, by: Sequence[str] = ("method",)
) -> pd.DataFrame:
    """Reliability bins: every predicted probability of every option (weighted by the
    respondent's weight) is binned; ``observed`` is the weighted share of those that were
    the true answer. Columns ``*by, bin, predicted, observed, weight, count``."""
    df = predictions.copy()
    w = df["weight"].astype(float) if "weight" in df else pd.Series(1.0, index=df.index)
    df["_w"] = w.to_numpy()
    p = df["prob"].astype(float).clip(0, 1).to_numpy()
    df["bin"] = np.minimum((p * n_bins).astype(int), n_bins - 1)
    df["_wp"] = df["_w"] * p
    df["_wo"] = df["_w"] * df["observed"].astype(float)
    g = df.groupby([*by, "bin"], sort=False)
    out = g[["_w", "_wp", "_wo"]].sum()
    out["count"] = g.size()
    out = out[out["_w"] > 0]
    out["predicted"] = out["_wp"] / out["_w"]
    out["observed"] = out["_wo"] / out["_w"]
    out = out.rename(columns={"_w": "weight"}).reset_index()
    return out[[*by, "bin", "predicted", "observed", "weight", "count"]]


def expected_calibration_error(bins: pd.DataFrame) -> float:
    """ECE: the weight-averaged |observed − predicted| over the bins of one method
    (Naeini et al. 2015; Guo et al. 2017)."""
    w = bins["weight"].to_numpy(float)
    if w.sum() <= 0:
        return float("nan")
    gap = np.abs(bins["observed"].to_numpy(float) - bins["predicted"].to_numpy(float))
    return float((w * gap).sum() / w.sum())
