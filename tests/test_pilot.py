"""A group's distribution from a model plus k real respondents (experiments/pilot.py)."""

from __future__ import annotations

import numpy as np
import pytest

from surveylm.experiments import pilot
from surveylm.experiments.simulation import SimulationResults, build_split, run_simulation_benchmark
from surveylm.experiments.simulation_config import SimulationConfig
from surveylm.models.base import Predictions
from test_simulation import BASE as SIM_BASE

# The simulation tests' survey and split, the cheap methods with no data-efficiency runs.
BASE = {**SIM_BASE, "methods": SIM_BASE["methods"][:3], "n_boot": 0}


def test_cell_attributes_flatten_intersections_once():
    assert pilot.cell_attributes(["party", ["party", "educ3"], "age_group"]) == [
        "party", "educ3", "age_group"]  # fmt: skip


def test_member_cells_label_each_respondent_by_every_attribute(anes):
    cells = pilot.member_cells(anes, ["party", "educ3"])
    first = anes.data.iloc[0]
    assert cells[0] == f"party = {first['party']} & educ3 = {first['educ3']}"
    assert len(set(cells)) <= 9


def test_pilot_table_in_the_simulation_benchmark(tmp_path):
    cfg = SimulationConfig(**BASE, pilot={"sizes": [10, 20], "draws": 4})
    res = run_simulation_benchmark(cfg, tmp_path / "run" / "simulation", progress=False)
    t = res.pilot.set_index(["split", "method", "k"])
    assert set(res.pilot["method"]) == {"uniform", "qm", "gm"}
    assert {"seen_q/seen_g", "unseen_q/unseen_g"} <= set(res.pilot["split"])
    # The same prediction for every member: the rectifier cancels it, PPI++ is the pilot.
    for name in ("uniform", "qm"):
        rows = t.xs(name, level="method")
        assert np.allclose(rows["lam"], 0)
        assert np.allclose(rows["tv_ppi"], rows["tv_pilot"])
        assert np.allclose(rows["effective_n"], rows.index.get_level_values("k"))
    assert (res.pilot["cells"] > 0).all()
    back = SimulationResults.from_files(tmp_path / "run" / "simulation")
    assert back.pilot.shape == res.pilot.shape
    from surveylm.report import build_report

    html = build_report(tmp_path / "run").read_text(encoding="utf-8")
    assert "A model plus a pilot of k real respondents per group" in html
    assert "PPI++ coverage" in html and "Largest gain per method (effective n / k): none" in html


def test_pilot_methods_must_name_methods():
    with pytest.raises(ValueError, match=r"pilot\.methods"):
        SimulationConfig(**BASE, pilot={"methods": ["nope"]})
    with pytest.raises(ValueError):
        SimulationConfig(**BASE, pilot={"sizes": [1]})


def _cell_share_predictions(survey, qids, attrs, smoothing=1.0):
    """Predictions of cell items: smoothed cell shares of ``survey`` (a plain honest model
    when ``survey`` is the training half; an oracle when it is the held-out half)."""
    items = pilot.cell_items(survey, qids, attrs)
    dists = []
    for i, t in enumerate(items.targets):
        n = float(items.frame["n"].iloc[i])
        dists.append((t * n + smoothing) / (n + smoothing * len(t)))
    return items, Predictions(items.item_ids, dists)


def test_informative_cell_predictions_narrow_valid_intervals(anes):
    """A model that knows how a group's parts differ (the training half's cell shares) is
    worth more than k respondents, and its intervals still cover the held-out truth."""
    cfg = SimulationConfig(**{**BASE, "group_by": ["party", "educ3", "age_group"]})
    _, tests, train_half, _ = build_split(cfg, anes)
    half = pilot.held_out_half(cfg, anes)
    attrs = ["party", "educ3", "age_group"]
    qids = ["vote", "ClinLR"]
    tests = {"seen_q/seen_g": tests["seen_q/seen_g"].subset(
        np.isin(tests["seen_q/seen_g"].frame["question_id"], qids)
        & (tests["seen_q/seen_g"].frame["group_var"] != "age_group"))}  # fmt: skip
    _, cell_pred = _cell_share_predictions(train_half, qids, attrs)
    items = tests["seen_q/seen_g"]
    group_pred = Predictions(items.item_ids, list(items.targets))
    rows = pilot.pilot_rows("cells", group_pred, cell_pred, tests, half,
                            pilot.member_cells(half, attrs), sizes=[25], draws=40, seed=0)
    s = pilot.summarise_pilot(rows).iloc[0]
    assert s["effective_n"] > 25 * 1.05
    assert s["width_ratio"] < 0.98
    # As valid as the pilot alone; Wald-type intervals of both undercover rare options at
    # k = 25 (a pilot often has none of their answers), not the common ones.
    assert abs(s["coverage"] - s["classical_coverage"]) <= 0.02
    assert s["coverage_common"] >= 0.93
