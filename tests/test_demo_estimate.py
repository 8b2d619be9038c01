"""The demo's time estimate (experiments/demo_estimate.py) and the bars' ETA (progress.py)."""

from __future__ import annotations

import pytest

from surveylm.experiments import demo_estimate
from surveylm.experiments.demo import demo_config
from surveylm.progress import _remaining, eta_text, expected_duration, progress_bar


@pytest.fixture()
def twice_as_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine on which the speed check takes twice its reference time."""
    for ref in demo_estimate.REFERENCE.values():
        monkeypatch.setitem(ref, "probe", 0.1)
    monkeypatch.setattr(demo_estimate, "speed_probe", lambda: 0.2)


def test_packaged_config_is_estimated_from_reference_times_scaled_by_the_probe(
    twice_as_slow,
) -> None:
    est = demo_estimate.estimate_demo(demo_config(quick=True, seed=7))
    assert est is not None
    ref = demo_estimate.REFERENCE["quick"]["stages"]
    assert est.slowdown == pytest.approx(2.0)
    assert est.stages == pytest.approx({k: 2 * v for k, v in ref.items()})
    assert est.total == pytest.approx(2 * sum(ref.values()))
    line = est.describe()
    assert line.startswith("estimated time on this machine: ~") and "2.0x" in line
    assert set(est.as_dict()) == {"stages", "total", "slowdown", "probe_seconds"}


def test_full_config_and_stages_left_out(twice_as_slow) -> None:
    full = demo_estimate.estimate_demo(demo_config(), report=False)
    assert full is not None and "report" not in full.stages
    assert full.stages["imputation"] == pytest.approx(
        2 * demo_estimate.REFERENCE["full"]["stages"]["imputation"]
    )
    no_curves = demo_config().model_copy(update={"data_efficiency": False})
    assert "data_efficiency" not in demo_estimate.estimate_demo(no_curves).stages


def test_a_custom_config_gets_no_estimate(twice_as_slow) -> None:
    cfg = demo_config(quick=True)
    cfg = cfg.model_copy(update={"imputation": cfg.imputation.with_overrides(n_boot=7)})
    assert demo_estimate.estimate_demo(cfg) is None


def test_later_stages_are_rescaled_by_how_the_finished_ones_went() -> None:
    est = demo_estimate.DemoEstimate({"a": 10.0, "b": 20.0}, slowdown=1.0, probe_seconds=0.1)
    assert est.expected("b") == pytest.approx(20.0)
    est.actual["a"] = 30.0  # three times the estimate
    assert est.expected("b") == pytest.approx(60.0)
    assert est.expected("missing") is None


def test_speed_probe_times_real_work() -> None:
    assert 0 < demo_estimate.speed_probe(steps=2, repeats=1) < 30


def test_eta_counts_down_from_the_estimate_then_follows_the_rate() -> None:
    assert _remaining(100.0, 30.0, 1, 10) == pytest.approx(70.0)
    assert _remaining(100.0, 120.0, 8, 10) == pytest.approx(30.0)  # past it: the rate
    assert _remaining(None, 10.0, 2, 4) == pytest.approx(10.0)
    assert _remaining(None, 10.0, 0, 4) is None
    assert eta_text(None) == "ETA unknown"
    assert eta_text(83.4, now=0).startswith("~1m23s left, ETA ")
    assert eta_text(-5, now=0).startswith("~0s left")
    assert eta_text(83.4, clock=False) == "~1m23s left"


def test_expected_duration_reaches_the_bar_and_is_reset() -> None:
    from surveylm import progress

    with expected_duration(12.0):
        assert progress._EXPECTED.get() == 12.0
        with progress_bar("stage", 2, enabled=False) as advance:
            advance("one")
            advance("two")
    assert progress._EXPECTED.get() is None


def test_the_causal_lm_demo_is_estimated_too(twice_as_slow) -> None:
    """``surveylm demo --causal-lm`` (the full config plus SmolLM2) gets its own, longer
    estimate: about half an hour on the machine it was timed on, not the plain run's."""
    from surveylm.experiments.demo import with_causal_lm

    est = demo_estimate.estimate_demo(with_causal_lm(demo_config()))
    plain = demo_estimate.estimate_demo(demo_config())
    assert est is not None and plain is not None
    ref = demo_estimate.REFERENCE["full_causal_lm"]["stages"]
    assert est.stages == pytest.approx({k: 2 * v for k, v in ref.items()})
    assert est.stages["simulation"] > 20 * plain.stages["simulation"]
    assert est.stages["imputation"] == pytest.approx(plain.stages["imputation"])
