"""Bad outputs, table-driven: every case is one clear line (no traceback) or the right
result, and nothing half-written is left behind (issue 16)."""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from surveylm.cli import app
from surveylm.datasets import load_dataset
from surveylm.errors import CodebookError, ConfigError, DataError, OutputError
from surveylm.experiments.run_folder import RunRecord, read_run, run_status
from surveylm.io.atomic import atomic_dir
from surveylm.io.tables import write_table
from surveylm.items import build_group_items
from surveylm.models import make_model
from surveylm.models.base import AnswerModel, Predictions
from surveylm.survey import Question

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An item set, a fitted model folder and its predictions, built once."""
    root = tmp_path_factory.mktemp("outputs")
    items = build_group_items(load_dataset("anes1996"), by=["party"], min_n=30)
    items.to_parquet(root / "items.parquet")
    model = make_model("group-marginal").fit(items)
    model.save(root / "model")
    model.predict(items).to_parquet(root / "preds.parquet")
    (root / "existing.txt").write_text("not a folder")
    return root


def _one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]


CASES = [
    # (name, argv with {root} for the fixture folder, fragment of the one-line error)
    ("items into a folder", ["items", "anes1996", "-o", "{root}/model"], "is a folder"),
    ("items under a file", ["items", "anes1996", "-o", "{root}/existing.txt/g.parquet"],
     "is a file"),
    ("items with a suffix it does not write", ["items", "anes1996", "-o", "{root}/out/g.txt"],
     "has '.txt'"),
    ("predict into a folder",
     ["predict", "{root}/items.parquet", "--model-dir", "{root}/model", "-o", "{root}/model"],
     "is a folder"),
    ("predict as CSV",
     ["predict", "{root}/items.parquet", "--model-dir", "{root}/model", "-o", "{root}/p.csv"],
     "writes .parquet"),
    ("impute into a folder",
     ["impute", "anes1996", "--target", "vote", "--features", "PID", "-o", "{root}/model"],
     "is a folder"),
    ("fit onto a file", ["fit", "{root}/items.parquet", "-o", "{root}/existing.txt"],
     "is a file"),
    ("fit under a file", ["fit", "{root}/items.parquet", "-o", "{root}/existing.txt/m"],
     "is a file"),
    ("fit into an existing model", ["fit", "{root}/items.parquet", "-o", "{root}/model"],
     "--overwrite"),
    ("fit --overwrite into a folder of other files",
     ["fit", "{root}/items.parquet", "-o", "{root}", "--overwrite"], "no model.json"),
    ("fit smoothing=abc",
     ["fit", "{root}/items.parquet", "-o", "{root}/m2", "--param", "smoothing=abc"],
     "smoothing must be a number >= 0, got 'abc'"),
    ("fit smoothing=-3",
     ["fit", "{root}/items.parquet", "-o", "{root}/m2", "--param", "smoothing=-3"],
     "got -3"),
    ("evaluate under a file",
     ["evaluate", "{root}/items.parquet", "{root}/preds.parquet", "--n-boot", "0",
      "-o", "{root}/existing.txt/eval"], "is a file"),
    ("demo onto a file", ["demo", "--quick", "-o", "{root}/existing.txt"], "is a file"),
    ("demo under a file", ["demo", "--quick", "-o", "{root}/existing.txt/run"], "is a file"),
    ("demo into a folder of other files", ["demo", "--quick", "-o", "{root}", "--overwrite"],
     "no run.json"),
    ("demo --overwrite --resume", ["demo", "--quick", "-o", "{root}/r", "--overwrite",
                                   "--resume"], "not both"),
    ("report on a model folder", ["report", "{root}/model"], "not a run folder"),
    ("benchmark into a model folder",
     ["benchmark", "imputation", "{root}/bench.yaml", "-o", "{root}/model"], "no settings.json"),
]  # fmt: skip


@pytest.mark.parametrize("name, argv, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_output_is_one_line_and_writes_nothing(files, name, argv, fragment):
    (files / "bench.yaml").write_text("dataset: anes1996\n")  # never read: output first
    before = sorted(p.relative_to(files) for p in files.rglob("*"))
    result = runner.invoke(app, [a.format(root=files) for a in argv])
    _one_line_error(result, fragment)
    after = sorted(p.relative_to(files) for p in files.rglob("*"))
    assert after == before  # nothing created, nothing removed


def test_read_only_folder_is_one_line(files, monkeypatch):
    """A read-only filesystem (EROFS) is refused before any work."""
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    result = runner.invoke(app, ["items", "anes1996", "-o", str(files / "ro" / "g.parquet")])
    _one_line_error(result, "is not writable (read-only file system)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_folder_without_write_permission_is_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        result = runner.invoke(app, ["items", "anes1996", "-o", str(ro / "g.parquet")])
    finally:
        ro.chmod(0o755)
    _one_line_error(result, "not writable")


def test_fit_overwrite_replaces_the_model_folder_whole(files, tmp_path):
    target = tmp_path / "model"
    (target).mkdir()
    for name in ("model.json", "stale_weights.safetensors"):
        (target / name).write_text((files / "model" / "model.json").read_text())
    result = runner.invoke(app, ["fit", str(files / "items.parquet"), "-o", str(target),
                                 "--overwrite", "--param", "smoothing=4"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in target.iterdir()) == ["model.json"]  # no old half left
    assert AnswerModel.load(target).smoothing == 4


def test_saved_model_folder_has_ordinary_permissions(tmp_path):
    with atomic_dir(tmp_path / "m") as tmp:
        fd = os.open(tmp / "model.safetensors", os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    plain = tmp_path / "plain"
    plain.write_text("x")
    want = stat.S_IMODE(plain.stat().st_mode)
    assert stat.S_IMODE((tmp_path / "m" / "model.safetensors").stat().st_mode) == want
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) & 0o055 == 0o055 & ~os.umask(
        os.umask(0)
    )


def test_killed_writers_temporaries_are_removed_on_the_next_write(tmp_path):
    stale = [tmp_path / n for n in (".summary.parquet.tmp-8w4glvt6.parquet",
                                    ".summary.csv.tmp-abcd1234.csv", ".model.tmp-x1y2z3w4")]
    stale[0].write_bytes(b"")
    stale[1].write_bytes(b"")
    stale[2].mkdir()
    write_table(pd.DataFrame({"a": [1]}), tmp_path / "summary")
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "model.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model", "summary.csv", "summary.parquet"
    ]  # fmt: skip


def test_duplicate_prediction_ids_are_refused(files, tmp_path):
    frame = pd.read_parquet(files / "preds.parquet")
    dup = pd.concat([frame, frame.iloc[:1]], ignore_index=True)
    dup.to_parquet(tmp_path / "dup.parquet")
    result = runner.invoke(app, ["evaluate", str(files / "items.parquet"),
                                 str(tmp_path / "dup.parquet"), "--n-boot", "0"])  # fmt: skip
    _one_line_error(result, "duplicate item ids")
    with pytest.raises(DataError, match="duplicate item ids"):
        Predictions(np.array(["a", "a"]), [np.array([0.5, 0.5])] * 2)


def test_question_options_must_not_be_a_string():
    with pytest.raises(CodebookError, match="options must be a list"):
        Question("q", "text", "abc")
    assert Question("q", "text", ["abc", "d"]).options == ("abc", "d")


@pytest.mark.parametrize(
    "model, params, fragment",
    [
        ("question-marginal", {"smoothing": "abc"}, "smoothing must be a number >= 0"),
        ("group-marginal", {"smoothing": -3}, "got -3"),
        ("group-marginal", {"smoothing": float("inf")}, "got inf"),
        ("logistic", {"C": 0}, "C must be a number > 0"),
        ("catboost", {"depth": 2.5}, "depth must be a whole number >= 1"),
        ("random-forest", {"epsilon": 1.0}, "epsilon must be a number >= 0 and < 1"),
    ],
)
def test_bad_parameters_are_refused_at_construction(model, params, fragment):
    with pytest.raises(ConfigError, match=fragment):
        make_model(model, **params)


def test_set_params_is_checked_again_at_fit(files):
    from surveylm.items import ItemSet

    model = make_model("question-marginal").set_params(smoothing=-1)
    with pytest.raises(ConfigError, match="smoothing"):
        model.fit(ItemSet.read_parquet(files / "items.parquet"))


def test_existing_run_is_refused_and_report_shows_an_interrupted_run(tmp_path):
    run = tmp_path / "run"
    record = RunRecord(run, {"seed": 0})
    with pytest.raises(KeyboardInterrupt), record.stage("simulation"):
        raise KeyboardInterrupt
    assert run_status(read_run(run)) == "interrupted at stage simulation: KeyboardInterrupt"
    result = runner.invoke(app, ["demo", "--quick", "-o", str(run)])
    _one_line_error(result, "--overwrite")
    # a run killed outright: "running" with a process that no longer exists
    info = {**read_run(run), "status": "running", "pid": 2**22 + 12345}
    (run / "run.json").write_text(json.dumps(info))
    assert run_status(read_run(run)).startswith("interrupted at stage simulation")
    with pytest.raises(OutputError, match="--overwrite"):
        from surveylm.io.output_paths import check_folder_output

        check_folder_output(run, "run folder", marker="run.json")
