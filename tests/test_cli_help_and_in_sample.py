"""CLI truths (issue 18): plain flags in --help, every model in `fit --model`, --version,
--weight, built-in names on a missing dataset, covariates in `describe`, and the
in-sample warning of `evaluate` (against a held-out half that does not warn)."""

from __future__ import annotations

import re

import pandas as pd
from typer.testing import CliRunner

from surveylm.cli import MODEL_NAMES, app
from surveylm.models import MODELS

runner = CliRunner(env={"COLUMNS": "200"})


def test_help_has_no_type_tags_on_flags_and_lists_every_model() -> None:
    out = runner.invoke(app, ["demo", "--help"]).output
    assert "--quick" in out and "<bool>" not in out
    fit = runner.invoke(app, ["fit", "--help"]).output
    assert set(MODEL_NAMES) == set(MODELS)
    for name in MODELS:
        assert name in re.sub(r"\s+", "", fit), name


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("surveylm ")


def test_unknown_dataset_lists_the_built_in_names() -> None:
    result = runner.invoke(app, ["describe", "anes2020"])
    assert result.exit_code == 1
    assert "anes2020" in result.output and "anes1996" in result.output


def test_describe_weight_and_covariates(tmp_path) -> None:
    csv = tmp_path / "s.csv"
    pd.DataFrame({"q": ["a", "b"] * 30, "age": range(60), "wt": [1.0, 3.0] * 30}).to_csv(
        csv, index=False
    )
    book = tmp_path / "book.yaml"
    book.write_text("questions:\n  q: {text: Question, options: [a, b]}\ncovariates: [age]\n")
    plain = runner.invoke(app, ["describe", str(csv), "-c", str(book)])
    assert plain.exit_code == 0, plain.output
    assert "covariates (not questions): age" in plain.output and "unweighted" in plain.output
    weighted = runner.invoke(app, ["describe", str(csv), "-c", str(book), "--weight", "wt"])
    assert weighted.exit_code == 0, weighted.output
    assert "Kish n_eff 48 of 60" in weighted.output  # (30*1+30*3)^2 / (30*1+30*9) = 48


def test_evaluate_warns_on_the_training_items_only(tmp_path) -> None:
    def run(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    for half in ("train", "test"):
        run("items", "anes1996", "--by", "party", "--half", half,
            "-o", str(tmp_path / f"{half}.parquet"))  # fmt: skip
    run("fit", str(tmp_path / "train.parquet"), "--model", "group-marginal",
        "-o", str(tmp_path / "m"))  # fmt: skip
    for half in ("train", "test"):
        run("predict", str(tmp_path / f"{half}.parquet"), "--model-dir", str(tmp_path / "m"),
            "-o", str(tmp_path / f"p_{half}.parquet"))  # fmt: skip
    inside = run("evaluate", str(tmp_path / "train.parquet"), str(tmp_path / "p_train.parquet"),
                 "--n-boot", "10")  # fmt: skip
    held_out = run("evaluate", str(tmp_path / "test.parquet"), str(tmp_path / "p_test.parquet"),
                   "--n-boot", "10")  # fmt: skip
    assert "in-sample fit, not a held-out evaluation" in inside
    assert "in-sample" not in held_out
