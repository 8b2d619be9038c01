"""Simulation benchmark and data-efficiency curves on ANES 1996 with fast methods only."""

from __future__ import annotations

import numpy as np
import pytest

from surveylm.errors import ConfigError
from surveylm.experiments.data_efficiency import equivalent_fraction, run_data_efficiency
from surveylm.experiments.simulation import SPLITS, run_simulation_benchmark
from surveylm.experiments.simulation_config import SimulationConfig

BASE = {
    "dataset": "anes1996",
    "questions": ["vote", "selfLR", "ClinLR", "DoleLR", "TVnews"],
    "group_by": ["party", "educ3"],
    "min_n": 15,
    "test_questions": ["DoleLR"],
    "methods": [
        {"name": "uniform", "model": "uniform"},
        {"name": "qm", "model": "question-marginal"},
        {"name": "gm", "model": "group-marginal"},
        {"name": "td", "model": "training-data", "params": {"fraction": 0.5}},
    ],
    "robustness": None,
    "data_efficiency": {"fractions": [0.1, 0.5, 1.0], "subsamples": 2, "methods": ["gm"]},
    "n_boot": 20,
}


def test_simulation_runs_every_split_and_writes_tidy_files(tmp_path):
    res = run_simulation_benchmark(SimulationConfig(**BASE), tmp_path, progress=False)
    assert set(res.overall["split"]) == set(SPLITS) - {"unseen_survey"}
    tv = res.overall[res.overall["metric"] == "tv"].set_index(["split", "method"])["value"]
    # group marginal knows seen groups: better than the question marginal there
    assert tv["seen_q/seen_g", "gm"] < tv["seen_q/seen_g", "qm"]
    # on unseen questions the marginals can only fall back to uniform
    assert tv["unseen_q/seen_g", "gm"] == pytest.approx(tv["unseen_q/seen_g", "uniform"])
    assert "noise floor (ref)" in set(res.overall["method"])
    assert {"entropy_pred", "spread_human"} <= set(res.diversity.columns)
    for name in ("overall.parquet", "per_question.csv", "table.csv", "config.yaml"):
        assert (tmp_path / name).is_file()
    assert res.table().shape[0] >= 4
    from surveylm.metrics.registry import names

    written = set(res.overall["metric"]) | set(res.per_question["metric"])
    assert written <= set(names("distribution")) | set(names("model"))


def test_config_rejects_unknown_keys_and_models():
    with pytest.raises(ValueError):
        SimulationConfig(**BASE, typo=1)
    bad = {**BASE, "methods": [{"name": "x", "model": "nope"}]}
    with pytest.raises(ConfigError):
        run_simulation_benchmark(SimulationConfig(**bad), progress=False)


def test_equivalent_fraction_interpolates_a_decreasing_curve():
    f, e = np.array([0.1, 0.5, 1.0]), np.array([0.3, 0.2, 0.1])
    assert equivalent_fraction(f, e, 0.25) == pytest.approx(0.3)
    assert equivalent_fraction(f, e, 0.5) == 0.1 and equivalent_fraction(f, e, 0.0) == 1.0


def test_data_efficiency_curves_and_figure(tmp_path):
    curves, worth = run_data_efficiency(SimulationConfig(**BASE), tmp_path, progress=False)
    assert set(curves["method"]) == {"training data", "gm"} and len(curves) == 12
    td = worth[worth["method"] == "training data"].sort_values("fraction")["value"].to_numpy()
    assert td[0] > td[-1]  # more respondents, closer to the held-out truth
    assert (tmp_path / "data_efficiency.png").stat().st_size > 0
    assert (tmp_path / "data_efficiency.svg").is_file()


def test_near_duplicate_threshold_reaches_the_split():
    import warnings

    from surveylm.errors import LeakageWarning
    from surveylm.experiments.demo import demo_config
    from surveylm.experiments.simulation import build_split

    config = demo_config(quick=True).simulation
    # ANES DoleLR (unseen) and ClinLR (seen) share most words: 0.8 exactly, so a lower
    # threshold must warn and None must not.
    with pytest.warns(LeakageWarning, match="DoleLR"):
        build_split(config.with_overrides(near_duplicate_threshold=0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LeakageWarning)
        build_split(config.with_overrides(near_duplicate_threshold=None))
        build_split(config)  # the default (0.8) does not flag the ANES scales


def test_fitted_lm_methods_leave_their_loss_curves_in_the_results(tmp_path):
    """Issue 17: the encoder's train and validation curves reach the results (and the
    report); methods without a curve add none."""
    from surveylm.experiments.simulation import SimulationResults

    cfg = {**BASE, "methods": [{"name": "qm", "model": "question-marginal"},
                               {"name": "enc", "model": "encoder"}],
           "data_efficiency": {"fractions": [1.0], "subsamples": 1, "methods": ["qm"]}}  # fmt: skip
    res = run_simulation_benchmark(SimulationConfig(**cfg), tmp_path, progress=False)
    curves = res.training_curves
    assert set(curves["method"]) == {"enc"}
    assert {"train", "validation"} <= set(curves["split"])
    start = curves[(curves["split"] == "validation") & (curves["step"] == 0)]
    assert len(start) == 1  # the untrained state (the marginal) opens the validation curve
    again = SimulationResults.from_files(tmp_path)
    assert len(again.training_curves) == len(curves)
