import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from surveylm.cli import app

runner = CliRunner(env={"COLUMNS": "200"})


def test_help_is_fast_and_lists_commands():
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", "from surveylm.cli import main; main()", "--help"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    for cmd in (
        "datasets",
        "describe",
        "items",
        "evaluate",
        "fit",
        "predict",
        "baselines",
        "impute",
        "benchmark",
    ):
        assert cmd in out.stdout
    # Heavy modules must not be imported to show help.
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys; import surveylm.cli; print('torch' in sys.modules, 'pandas' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.split() == ["False", "False"]
    assert elapsed < 5  # generous for a loaded CI box; ~0.2 s measured


def test_datasets_and_describe():
    res = runner.invoke(app, ["datasets"])
    assert res.exit_code == 0 and "anes1996" in res.stdout
    res = runner.invoke(app, ["describe", "anes1996"])
    assert res.exit_code == 0 and "944 respondents" in res.stdout


def test_items_fit_predict_evaluate_round_trip(tmp_path):
    items = tmp_path / "items.parquet"
    res = runner.invoke(
        app, ["items", "anes1996", "--by", "party", "--by", "party,educ3", "-o", str(items)]
    )
    assert res.exit_code == 0, res.output
    assert "cells suppressed" in res.stdout
    model_dir = tmp_path / "qm"
    res = runner.invoke(
        app, ["fit", str(items), "--model", "question-marginal", "-o", str(model_dir)]
    )
    assert res.exit_code == 0, res.output
    preds = tmp_path / "preds.parquet"
    res = runner.invoke(
        app, ["predict", str(items), "--model-dir", str(model_dir), "-o", str(preds)]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["evaluate", str(items), str(preds), "--n-boot", "50", "-o", str(tmp_path / "eval")]
    )
    assert res.exit_code == 0, res.output
    assert "question-marginal" in res.stdout and "uniform" in res.stdout
    assert any((tmp_path / "eval").iterdir())


def test_respondent_items_and_baselines_table(tmp_path):
    res = runner.invoke(
        app,
        [
            "baselines",
            "anes1996",
            "--kind",
            "respondent",
            "--target",
            "vote",
            "--features",
            "PID,educ",
            "--n-boot",
            "50",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "group-marginal" in res.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["describe", "no-such-file.csv"], "no-such-file.csv"),
        (["items", "anes1996", "--by", "nope", "-o", "x.parquet"], "nope"),
        (["fit", "missing.parquet", "-o", "m"], "missing.parquet"),
        (["fit", "x.parquet", "--model", "bogus", "-o", "m"], "unknown model 'bogus'"),
    ],
)
def test_errors_are_one_line_without_traceback(tmp_path, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


@pytest.mark.shared_data
def test_impute_writes_long_completed_datasets(tmp_path, shared_data):
    out = tmp_path / "imp.parquet"
    res = runner.invoke(
        app,
        [
            "impute",
            "nonvoters",
            "--target",
            "Q23",
            "--features",
            "age_group,educ",
            "--model",
            "logistic",
            "-m",
            "3",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    import pandas as pd

    frame = pd.read_parquet(out)
    assert sorted(frame[".imp"].unique()) == [0, 1, 2, 3]
    assert frame.loc[frame[".imp"] > 0, "Q23"].notna().all()
    assert frame.loc[frame[".imp"] == 0, "Q23"].isna().any()
    assert "Joe Biden" in res.stdout


def test_impute_refuses_a_complete_question():
    res = runner.invoke(
        app, ["impute", "anes1996", "--target", "vote", "--features", "PID", "-o", "x.parquet"]
    )
    assert res.exit_code == 1 and "nothing to impute" in res.stderr
