"""Shared fixtures. Tests are offline and need no GPU; see DESIGN.md."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from surveylm.survey import Question, Survey

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """One thread per test process (torch, CatBoost, BLAS, tokenizers; surveylm.threads):
    with pytest-xdist on 2 cores, OpenMP spin-waiting threads of several processes made
    tiny-model tests 5-100x slower (measured). ``$OMP_NUM_THREADS`` set by the caller wins."""
    from surveylm.threads import apply_thread_policy

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    apply_thread_policy()  # before torch loads OpenMP
    try:
        import torch  # noqa: F401
    except ImportError:  # pragma: no cover
        return
    apply_thread_policy()  # torch's intra-op threads, now that it is loaded


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """House rule: a test that uses the ``shared_data`` fixture carries the ``shared_data``
    marker (so ``-m "not shared_data"`` leaves out every test that needs ../shared)."""
    unmarked = [
        item.nodeid
        for item in items
        if "shared_data" in getattr(item, "fixturenames", ())
        and item.get_closest_marker("shared_data") is None
    ]
    if unmarked:
        raise pytest.UsageError(f"mark these @pytest.mark.shared_data: {unmarked}")


SHARED_DATA = Path(os.environ.get("SURVEYLM_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of the FiveThirtyEight surveys; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def baseline_run(tmp_path_factory):
    """``(run folder, results)`` of the demo pipeline on baseline methods only
    (:func:`demo_fixtures.baseline_demo_config`, seed 3; seconds), run once per session
    (per xdist worker) and shared by the demo and report tests. Read it, never change it:
    a test that alters a run works on a copy."""
    from demo_fixtures import baseline_demo_config
    from surveylm.experiments.demo import run_demo

    run = tmp_path_factory.mktemp("baseline_run")
    results = run_demo(baseline_demo_config(seed=3), run, progress=False, report=False,
                       command="pytest")  # fmt: skip
    return run, results


@pytest.fixture(scope="session")
def anes():
    """ANES 1996 (built in, from statsmodels)."""
    from surveylm.datasets import load_anes1996

    return load_anes1996()


@pytest.fixture()
def toy_survey() -> Survey:
    """120 respondents, two questions (one ordinal), a covariate and unequal weights."""
    rng = np.random.default_rng(0)
    n = 120
    party = rng.choice(["Dem", "Ind", "Rep"], size=n, p=[0.4, 0.2, 0.4])
    p_b = np.where(party == "Dem", 0.2, np.where(party == "Rep", 0.8, 0.5))
    vote = np.where(rng.random(n) < p_b, "B", "A").astype(object)
    vote[:5] = None  # five non-respondents
    data = pd.DataFrame(
        {"party": party, "vote": vote, "age": rng.integers(18, 90, size=n)},
        index=[f"r{i}" for i in range(n)],
    )
    questions = [
        Question("party", "Which party?", ("Dem", "Ind", "Rep"), (1, 2, 3), "toy", "Party"),
        Question("vote", "Who will you vote for?", ("A", "B"), None, "toy", "Vote"),
    ]
    weights = rng.uniform(0.5, 2.0, size=n)
    return Survey(data, questions, weights=weights, name="toy", covariates=["age"])
