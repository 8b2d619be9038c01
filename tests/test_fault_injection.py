"""kill -9 at chosen points of ``fit`` and ``demo``: no half folder, a clean rerun or
resume, the same numbers (issue 16).

Each command runs in a subprocess with ``SURVEYLM_KILL_AT`` naming the point where it
sends itself SIGKILL (:mod:`surveylm.faults`): no cleanup code runs, as with a real kill.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from demo_fixtures import baseline_demo_config
from surveylm.datasets import load_dataset
from surveylm.experiments.run_folder import read_run, run_status
from surveylm.faults import KILL_VARIABLE
from surveylm.io.atomic import temporary_target
from surveylm.items import ItemSet, build_group_items
from surveylm.models.base import AnswerModel

pytestmark = pytest.mark.xdist_group("fault_injection")


def surveylm(*args: str, kill_at: str | None = None, cwd: Path | None = None):
    env = {k: v for k, v in os.environ.items() if k != KILL_VARIABLE}
    if kill_at:
        env[KILL_VARIABLE] = kill_at
    return subprocess.run([sys.executable, "-m", "surveylm.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600, cwd=cwd)  # fmt: skip


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if temporary_target(p.name) is not None]


def tables(folder: Path) -> dict[str, str]:
    """sha256 of every result table (Parquet and CSV) under ``folder`` by relative path,
    the wall-clock ``timings`` tables apart."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.suffix in (".parquet", ".csv")
            and temporary_target(p.name) is None and p.stem != "timings"}  # fmt: skip


@pytest.fixture(scope="module")
def items_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fault") / "items.parquet"
    build_group_items(load_dataset("anes1996"), by=["party"], min_n=30).to_parquet(path)
    return path


def test_kill_while_fit_replaces_a_model_keeps_the_old_one_whole(items_file, tmp_path):
    model = tmp_path / "model"
    fit = ["fit", items_file, "--model", "group-marginal", "-o", model]
    assert surveylm(*fit, "--param", "smoothing=1").returncode == 0
    old = (model / "model.json").read_text()
    killed = surveylm(*fit, "--param", "smoothing=9", "--overwrite",
                      kill_at="folder-written:model")  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (model / "model.json").read_text() == old  # the old model, whole
    assert AnswerModel.load(model).smoothing == 1
    assert temporaries(tmp_path)  # the new folder died unswapped beside it
    again = surveylm(*fit, "--param", "smoothing=9", "--overwrite")
    assert again.returncode == 0, again.stderr
    assert temporaries(tmp_path) == []  # removed by the rerun
    clean = tmp_path / "clean"
    assert surveylm("fit", items_file, "--model", "group-marginal", "-o", clean,
                    "--param", "smoothing=9").returncode == 0  # fmt: skip
    items = ItemSet.read_parquet(items_file)
    a, b = AnswerModel.load(model).predict(items), AnswerModel.load(clean).predict(items)
    assert all(np.array_equal(x, y) for x, y in zip(a.distributions, b.distributions,
                                                    strict=True))  # fmt: skip


@pytest.fixture(scope="module")
def demo_yaml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fault_demo") / "demo.yaml"
    path.write_text(baseline_demo_config(seed=5).to_yaml())
    return path


@pytest.fixture(scope="module")
def clean_run(demo_yaml, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("clean") / "run"
    done = surveylm("demo", "--config", demo_yaml, "-o", run, "--no-progress")
    assert done.returncode == 0, done.stderr
    return run


@pytest.mark.parametrize("kill_at", ["folder-written:simulation", "stage-done:imputation",
                                     "stage-start:data_efficiency"])  # fmt: skip
def test_killed_demo_leaves_no_half_stage_and_resumes_to_the_same_numbers(
    demo_yaml, clean_run, tmp_path, kill_at
):
    run = tmp_path / "run"
    killed = surveylm("demo", "--config", demo_yaml, "-o", run, "--no-progress",
                      kill_at=kill_at)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    where = {"folder-written:simulation": "at stage simulation",
             "stage-done:imputation": "after stage imputation",
             "stage-start:data_efficiency": "at stage data_efficiency"}[kill_at]  # fmt: skip
    status = run_status(read_run(run))
    assert status == "interrupted " + where, status
    if kill_at.startswith("folder-written"):
        assert not (run / "simulation").exists()  # only its unswapped temporary
        assert temporaries(run)
    assert (run / "imputation" / "settings.json").is_file()  # the finished stage, whole
    report = surveylm("report", run)
    assert report.returncode == 0 and "incomplete" in report.stderr, report.stderr
    refused = surveylm("demo", "--config", demo_yaml, "-o", run)
    assert refused.returncode == 1 and "--overwrite" in refused.stderr
    resumed = surveylm("demo", "--config", demo_yaml, "-o", run, "--no-progress", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "complete" and "imputation" in info["resumed_stages"]
    assert temporaries(run) == []
    assert tables(run) == tables(clean_run)  # byte for byte


def test_resume_refuses_another_config(demo_yaml, clean_run, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(baseline_demo_config(seed=6).to_yaml())
    result = surveylm("demo", "--config", other, "-o", clean_run, "--resume")
    assert result.returncode == 1 and "another config" in result.stderr


@pytest.fixture(scope="module")
def respondent_items_file(tmp_path_factory) -> Path:
    from surveylm.items import build_respondent_items

    survey = load_dataset("anes1996")
    items = build_respondent_items(survey, "vote", ["PID", "selfLR", "educ", "age", "income"])
    path = tmp_path_factory.mktemp("fault_fit") / "respondents.parquet"
    items.subset(np.arange(200)).to_parquet(path)
    return path


def test_killed_encoder_fit_resumes_to_the_uninterrupted_model(respondent_items_file, tmp_path):
    """kill -9 right after the epoch-16 checkpoint of ``fit --model encoder``: no model
    folder, a plain rerun refuses to drop the checkpoints, ``--resume`` with other
    parameters is refused, and ``--resume`` ends with exactly the model of an
    uninterrupted fit (whose best state comes before the kill's step and whose early
    stop after it). The checkpoints are gone afterwards."""
    from surveylm.training.resume import checkpoints_for

    model = tmp_path / "encoder"
    fit = ["fit", respondent_items_file, "--model", "encoder", "-o", model]
    killed = surveylm(*fit, kill_at="checkpoint-saved:48")  # 3 steps an epoch
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not model.exists() and (checkpoints_for(model) / "checkpoint-48").is_dir()
    refused = surveylm(*fit)
    assert refused.returncode == 1 and "--resume" in refused.stderr, refused.stderr
    other = surveylm(*fit, "--resume", "--param", "hidden=64")
    assert other.returncode == 1 and "other parameters" in other.stderr, other.stderr
    resumed = surveylm(*fit, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert not checkpoints_for(model).exists() and temporaries(tmp_path) == []
    # The uninterrupted fit runs as a fresh process too: an in-process fit shares the
    # test worker's caches and settings, which moved the last bits on CI.
    uninterrupted = tmp_path / "uninterrupted"
    assert surveylm(*fit[:-1], uninterrupted).returncode == 0
    items = ItemSet.read_parquet(respondent_items_file)
    got, clean = AnswerModel.load(model), AnswerModel.load(uninterrupted)
    assert got.output_dir is None  # the checkpoint folder is not a saved parameter
    assert got.validation_["best_step"] == clean.validation_["best_step"] < 48
    a, b = got.predict(items).distributions, clean.predict(items).distributions
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    finished = surveylm(*fit, "--resume")
    assert finished.returncode == 1 and "finished model" in finished.stderr, finished.stderr


@pytest.mark.shared_data
def test_killed_impute_keeps_the_old_file_and_a_rerun_writes_the_same_bytes(
    tmp_path, shared_data
):
    """kill -9 after ``impute`` wrote its completed datasets under a temporary name:
    the previous output is intact; the rerun removes the temporary and writes the same
    bytes as a run never killed."""
    out = tmp_path / "completed.parquet"
    impute = ["impute", "nonvoters", "--target", "Q23", "--features", "age_group,educ",
              "-m", "3", "--model", "logistic", "-o", out]  # fmt: skip
    assert surveylm(*impute, "--seed", "1").returncode == 0
    old = out.read_bytes()
    killed = surveylm(*impute, kill_at="file-written:completed.parquet")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert out.read_bytes() == old and temporaries(tmp_path)
    again = surveylm(*impute)
    assert again.returncode == 0, again.stderr
    assert temporaries(tmp_path) == []
    clean = tmp_path / "clean.parquet"
    assert surveylm(*impute[:-1], clean).returncode == 0
    assert out.read_bytes() == clean.read_bytes() != old
