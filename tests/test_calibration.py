"""Calibration metrics (surveylm.metrics.calibration): reliability bins and the ECE."""

from __future__ import annotations

import numpy as np
import pandas as pd

from surveylm.metrics.calibration import calibration_bins, expected_calibration_error


def test_calibration_bins_and_ece() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    observed = (rng.random(p.size) < p).astype(int)
    frame = pd.DataFrame({"method": "m", "prob": p, "observed": observed, "weight": 1.0})
    bins = calibration_bins(frame, n_bins=10)
    assert len(bins) == 10 and expected_calibration_error(bins) < 0.02
    wrong = frame.assign(observed=(rng.random(p.size) < 0.5).astype(int))
    ece = expected_calibration_error(calibration_bins(wrong, n_bins=10))
    assert 0.2 < ece < 0.3  # E|p - 0.5| = 0.25 for uniform p
    heavy = frame.assign(weight=np.where(p > 0.5, 100.0, 1.0), observed=(p <= 0.5).astype(int))
    b = calibration_bins(heavy, n_bins=2)
    assert b.set_index("bin")["observed"].to_dict() == {0: 1.0, 1: 0.0}
