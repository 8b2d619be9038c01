"""The imputation benchmark runner: configs, scenarios × methods, metrics, coverage, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from surveylm.errors import ConfigError
from surveylm.experiments.imputation import ImputationResults, run_imputation_benchmark
from surveylm.experiments.imputation_config import ImputationConfig, load_imputation_config
from surveylm.metrics.population import weighted_shares

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "dataset": "anes1996",
    "target": "vote",
    "features": ["PID", "selfLR", "educ", "income", "age"],
    "group_by": "age_group",
    "scenarios": [
        {"kind": "mcar", "rate": 0.5, "name": "MCAR 50%"},
        {"kind": "convenience", "filter": "age < 30", "name": "under 30"},
    ],
    "methods": [
        {"name": "uniform", "model": "uniform"},
        {"name": "marginal", "model": "question-marginal"},
        {"name": "logistic", "model": "logistic"},
    ],
    "m": 5,
    "repetitions": 2,
    "n_boot": 20,
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[ImputationResults, Path]:
    out = tmp_path_factory.mktemp("run")
    return run_imputation_benchmark(ImputationConfig(**TINY), out, progress=False), out


def test_every_scenario_and_method_is_scored(tiny) -> None:
    res, _ = tiny
    table = res.table()
    methods = ("uniform", "marginal", "logistic")
    scenarios = ("MCAR 50%", "under 30")
    assert list(table.index) == [(s, m) for s in scenarios for m in methods] + [
        (s, "complete case") for s in scenarios
    ]
    table = table.loc[[(s, m) for s in ("MCAR 50%", "under 30") for m in methods]]
    for col in ("accuracy", "balanced_accuracy", "macro_f1", "log_loss", "brier", "tv",
                "max_abs_error", "coverage", "mean_width", "subgroup_tv"):  # fmt: skip
        assert table[col].notna().all(), col
    # MCAR 2-fold × 2 repetitions = 4 draws; a convenience sample is deterministic: 1 draw
    assert table.loc[("MCAR 50%", "logistic"), "draws"] == 4
    assert table.loc[("under 30", "logistic"), "draws"] == 1
    # the uniform distribution has log loss ln 2 on a two-option question
    assert table.loc[("MCAR 50%", "uniform"), "log_loss"] == pytest.approx(np.log(2), abs=1e-3)
    # party ID predicts vote: logistic beats the marginal on respondents
    for s in ("MCAR 50%", "under 30"):
        assert table.loc[(s, "logistic"), "accuracy"] > table.loc[(s, "marginal"), "accuracy"] + 0.2


def test_every_metric_the_runner_writes_is_in_the_metric_registry(tiny) -> None:
    from surveylm.metrics.registry import METRICS, names

    res, _ = tiny
    assert set(res.respondent["metric"]) <= set(names("respondent")) | set(names("model"))
    written = set(res.summary.columns) - {"scenario", "method", "draws"}
    assert written <= set(names("respondent")) | set(names("population")), written - set(METRICS)


def test_mcar_folds_impute_every_respondent_once(tiny) -> None:
    res, _ = tiny
    resp = res.respondent
    mcar = resp[(resp["scenario"] == "MCAR 50%") & (resp["metric"] == "accuracy")]
    assert set(mcar["n_items"]) == {944}  # both folds together: everyone, once per repetition
    conv = resp[(resp["scenario"] == "under 30") & (resp["metric"] == "accuracy")]
    assert set(conv["n_items"]) == {int((res_age(res) >= 30).sum())}
    t = res.timings[(res.timings["scenario"] == "MCAR 50%") & (res.timings["method"] == "logistic")]
    assert (t.groupby("rep")["n_imputed"].sum() == 944).all()  # stratified: ~half each
    assert t["n_imputed"].between(470, 474).all()
    assert (t["n_train"] + t["n_imputed"] == 944).all()


def res_age(res: ImputationResults) -> np.ndarray:
    from surveylm.datasets import load_anes1996

    return load_anes1996().data["age"].to_numpy()


def test_population_metrics_against_the_true_shares(tiny, anes) -> None:
    res, _ = tiny
    pop = res.population
    full = pop[pop["group"].isna()]
    t = weighted_shares(anes.codes("vote"), anes.weights.to_numpy(), 2)
    for option, share in zip(anes.questions["vote"].options, t, strict=True):
        # one truth, the full sample's weighted share, whatever the scenario or method
        np.testing.assert_allclose(full.loc[full["option"] == option, "truth"], share)
    np.testing.assert_allclose(full["abs_error"], np.abs(full["expected"] - full["truth"]))
    tv = full.groupby(["scenario", "method", "rep", "unit"])["abs_error"].sum() / 2
    np.testing.assert_allclose(
        tv.to_numpy(), full.groupby(["scenario", "method", "rep", "unit"])["tv"].first()
    )
    assert ((full["lower"] <= full["estimate"]) & (full["estimate"] <= full["upper"])).all()
    # covered is the interval holding the truth (fails if it were another row's or a stale flag)
    held = (full["lower"] <= full["truth"]) & (full["truth"] <= full["upper"])
    assert (full["covered"] == held).all()
    # subgroups: one block per age group, each with its own truth
    sub = pop[pop["group"].notna()]
    assert set(sub["group"]) == set(anes.questions["age_group"].options)
    young = sub[(sub["group"] == "18-29") & (sub["scenario"] == "under 30")]
    assert (young["n_imputed"] == 0).all()  # the under-30s answered in that scenario
    assert np.allclose(young["abs_error"], 0.0)


def _respondent_metrics_from_predictions(res: ImputationResults) -> pd.DataFrame:
    """Weighted accuracy (first most probable option) and log loss per scenario × method
    recomputed from the predictions table, averaged over repetitions as the summary is."""
    keys = ["scenario", "method", "rep", "unit", "respondent_id"]
    pred = res.predictions
    best = pred.loc[pred.groupby(keys, sort=False)["prob"].idxmax()]
    obs = pred[pred["observed"] == 1]
    eps = np.finfo(float).eps
    per_rep = pd.DataFrame({
        "accuracy": (best["observed"] * best["weight"]).groupby(
            [best["scenario"], best["method"], best["rep"]]).sum(),
        "log_loss": (-np.log(obs["prob"].clip(eps, 1 - eps)) * obs["weight"]).groupby(
            [obs["scenario"], obs["method"], obs["rep"]]).sum(),
    }).div(obs.groupby(["scenario", "method", "rep"])["weight"].sum(), axis=0)  # fmt: skip
    return per_rep.groupby(level=["scenario", "method"]).mean()


def _coverage_from_intervals(res: ImputationResults) -> pd.Series:
    """Share of draws whose pooled interval holds the truth, from the full-sample
    population rows' own bounds (not their ``covered`` flag)."""
    full = res.population[res.population["group"].isna()]
    held = (full["lower"] <= full["truth"]) & (full["truth"] <= full["upper"])
    return held.groupby([full["scenario"], full["method"], full["option"]]).mean()


def test_biased_method_misses_and_coverage_is_computed(tiny) -> None:
    res, _ = tiny
    cov = res.coverage.set_index(["scenario", "method", "option"]).sort_index()
    # the coverage table is the share of draws whose interval holds the truth: fails if it
    # averaged another column, grouped wrongly or the covered flag disagreed with the bounds
    np.testing.assert_allclose(cov["coverage"], _coverage_from_intervals(res).loc[cov.index])
    assert set(cov["draws"].loc["MCAR 50%"]) == {4} and set(cov["draws"].loc["under 30"]) == {1}
    # under MCAR the marginal is unbiased: its intervals cover; trained on the under-30s
    # only, it is confidently wrong about everyone else: they miss
    assert (cov.loc[("MCAR 50%", "marginal"), "coverage"] == 1.0).all()
    assert (cov.loc[("under 30", "marginal"), "coverage"] == 0.0).all()
    assert (cov.loc[("under 30", "marginal"), "bias"].abs() > 0.05).all()


def test_summary_metrics_are_those_of_the_kept_predictions(tiny) -> None:
    """Recomputed from the predictions table: fails if the scored distributions and the
    written ones differed, or the summary averaged or weighted a metric otherwise."""
    res, _ = tiny
    summary = res.summary.set_index(["scenario", "method"])
    again = _respondent_metrics_from_predictions(res)
    np.testing.assert_allclose(summary.loc[again.index, "accuracy"], again["accuracy"])
    np.testing.assert_allclose(summary.loc[again.index, "log_loss"], again["log_loss"])


def test_files_and_config_round_trip(tiny) -> None:
    res, out = tiny
    for name in ("summary", "respondent", "population", "coverage", "timings"):
        for ext in ("parquet", "csv"):
            assert (out / f"{name}.{ext}").is_file()
    back = pd.read_parquet(out / "population.parquet")
    assert len(back) == len(res.population)
    assert load_imputation_config(out / "config.yaml") == res.config
    settings = (out / "settings.json").read_text()
    assert '"pandas"' in settings and '"wall_seconds"' not in settings  # timings apart
    assert '"wall_seconds"' in (out / "timings.json").read_text()
    assert "seconds_per_fit" not in pd.read_parquet(out / "summary.parquet").columns


def test_deterministic(tiny) -> None:
    res, _ = tiny
    cfg = ImputationConfig(**{**TINY, "scenarios": TINY["scenarios"][:1]})
    again = run_imputation_benchmark(cfg, None, progress=False)
    a = res.population[res.population["scenario"] == "MCAR 50%"].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, again.population)


def test_shipped_configs_validate() -> None:
    anes = load_imputation_config(REPO / "configs" / "imputation_anes.yaml")
    assert anes.target == "vote" and anes.features == ["PID", "selfLR", "educ", "income", "age"]
    models = {m.model for m in anes.methods}
    assert {"uniform", "question-marginal", "logistic", "random-forest", "catboost",
            "chained-equations", "encoder"} <= models  # fmt: skip
    assert [m.fit for m in anes.methods if m.model == "encoder"] == [False, True]
    assert {s.kind for s in anes.scenarios} == {"mcar", "convenience"}
    nv = load_imputation_config(REPO / "configs" / "imputation_nonvoters.yaml")
    assert nv.target == "Q23" and nv.dataset == "nonvoters"


def test_config_errors(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "dataset: anes1996\ntarget: vote\nfeatures: [PID]\n"
        "scenarios: [{kind: mcar, rate: 0.5}]\n"
        "methods: [{name: u, model: uniform}]\nrepetitons: 3\n"
    )
    with pytest.raises(ConfigError, match="repetitons"):
        load_imputation_config(bad)
    with pytest.raises(ValueError, match="duplicate method"):
        ImputationConfig(**{**TINY, "methods": [TINY["methods"][0]] * 2})
    with pytest.raises(ConfigError, match="unknown model 'svm'"):
        run_imputation_benchmark(
            ImputationConfig(**{**TINY, "methods": [{"name": "s", "model": "svm"}]}),
            progress=False,
        )
    with pytest.raises(ConfigError, match="shoe_size"):
        run_imputation_benchmark(ImputationConfig(**{**TINY, "features": ["shoe_size"]}),
                                 progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="3 folds"):
        run_imputation_benchmark(ImputationConfig(**{**TINY, "folds": 3}), progress=False)


@pytest.mark.shared_data
def test_nonvoters_runs(shared_data) -> None:
    cfg = ImputationConfig(
        dataset="nonvoters", target="Q23", features=["age_group", "educ", "race", "income_cat"],
        scenarios=[{"kind": "convenience", "filter": 'educ == "College"'}],
        methods=[{"name": "marginal", "model": "question-marginal"},
                 {"name": "logistic", "model": "logistic"}],
        m=3, n_boot=0,
    )  # fmt: skip
    res = run_imputation_benchmark(cfg, None, progress=False)
    assert res.settings["dropped_without_target"] == 109
    assert res.settings["respondents"] == 5836 - 109
    assert set(res.population["option"]) == {"Donald Trump", "Joe Biden", "Unsure"}
    assert res.table()["tv"].notna().all()


@pytest.mark.slow
def test_encoder_zero_shot_and_fine_tuned_run_in_the_comparison() -> None:
    tuned = {"fine_tune": {"max_steps": 2, "batch_size": 16, "save_every_epoch": False,
                           "lora": {"enabled": False}}}  # fmt: skip
    cfg = ImputationConfig(
        dataset="anes1996", target="vote", features=["PID", "age"],
        scenarios=[{"kind": "convenience", "filter": "age >= 30", "name": "only 30+"}],
        methods=[{"name": "zero-shot", "model": "encoder", "fit": False},
                 {"name": "tuned", "model": "encoder", "params": tuned}],
        m=3, n_boot=0,
    )  # fmt: skip
    res = run_imputation_benchmark(cfg, None, progress=False)
    table = res.table()
    assert table["log_loss"].notna().all() and table["tv"].notna().all()
    zs = res.population[res.population["method"] == "zero-shot"]
    ft = res.population[res.population["method"] == "tuned"]
    # two steps of fine-tuning change the predicted distributions
    assert not np.allclose(zs["expected"].to_numpy(), ft["expected"].to_numpy())


def _small_survey_file(folder: Path, n: int = 60) -> Path:
    """A 60-respondent survey file whose vote follows party (weights all 1)."""
    rng = np.random.default_rng(0)
    party = rng.choice(["Democrat", "Independent", "Republican"], size=n)
    p_rep = np.select([party == "Democrat", party == "Republican"], [0.15, 0.85], 0.5)
    vote = np.where(rng.random(n) < p_rep, "Republican candidate", "Democratic candidate")
    age = rng.integers(18, 80, size=n)
    path = folder / "small_survey.csv"
    pd.DataFrame({"party": party, "age": age, "vote": vote}).to_csv(path, index=False)
    return path


def test_causal_lm_zero_shot_and_lora_fine_tuned_in_the_comparison(tmp_path) -> None:
    """The causal-LM path end to end on the tiny Llama (issue 4): MCAR 50 % (2 folds) and a
    convenience sample, zero-shot and a few LoRA steps, scored and pooled (Rubin)."""
    from lm_fixtures import fast_fine_tune, tiny_model_dir

    lm = str(tiny_model_dir("space"))
    cfg = ImputationConfig(
        dataset=str(_small_survey_file(tmp_path)), target="vote", features=["party", "age"],
        group_by="party", min_group_n=10,
        scenarios=[{"kind": "mcar", "rate": 0.5, "name": "MCAR 50%"},
                   {"kind": "convenience", "filter": "age < 45", "name": "under 45"}],
        methods=[{"name": "marginal", "model": "question-marginal"},
                 {"name": "lm zero-shot", "model": "causal-lm", "fit": False,
                  "params": {"model_name": lm, "batch_size": 16}},
                 {"name": "lm fine-tuned", "model": "causal-lm",
                  "params": {"model_name": lm, "batch_size": 16,
                             "fine_tune": fast_fine_tune(max_steps=4)}}],
        m=3, n_boot=0,
    )  # fmt: skip
    res = run_imputation_benchmark(cfg, tmp_path / "run", progress=False)
    table = res.table()
    lm_methods = ("lm zero-shot", "lm fine-tuned")
    assert {(s, m) for s in ("MCAR 50%", "under 45") for m in lm_methods} <= set(table.index)
    rows = table.loc[[(s, m) for s in ("MCAR 50%", "under 45") for m in lm_methods]]
    # the summary's metrics are those of the kept predictions (fails if the scored
    # distributions and the written ones differ, or a metric is mis-weighted), and finite
    # (a zero probability on an observed answer would make the log loss infinite)
    again = _respondent_metrics_from_predictions(res).loc[rows.index]
    np.testing.assert_allclose(rows["accuracy"], again["accuracy"], atol=5e-4)  # table: 3 dp
    np.testing.assert_allclose(rows["log_loss"], again["log_loss"], atol=5e-4)
    assert np.isfinite(rows["log_loss"]).all() and (rows["mean_width"] > 0).all()
    cov = res.coverage.set_index(["scenario", "method", "option"])
    np.testing.assert_allclose(cov["coverage"], _coverage_from_intervals(res).loc[cov.index])
    # Rubin intervals around every pooled share, for the whole sample and the subgroups
    pop = res.population[res.population["method"].isin(lm_methods)]
    assert len(pop) and pop["group"].notna().any()
    assert ((pop["lower"] <= pop["estimate"]) & (pop["estimate"] <= pop["upper"])).all()
    assert (pop["upper"] - pop["lower"] > 0).all()
    held = (pop["lower"] <= pop["truth"]) & (pop["truth"] <= pop["upper"])
    assert (pop["covered"] == held).all()
    # a few LoRA steps change what the model predicts for the same missing respondents
    key = ["scenario", "rep", "unit", "group", "option"]
    zs = pop[pop["method"] == "lm zero-shot"].sort_values(key, na_position="first")
    ft = pop[pop["method"] == "lm fine-tuned"].sort_values(key, na_position="first")
    assert len(zs) == len(ft)
    assert np.abs(zs["expected"].to_numpy() - ft["expected"].to_numpy()).max() > 1e-3
    assert (tmp_path / "run" / "summary.csv").is_file()
    # the language models' format mass is in the summary (and the report's table); the
    # marginal has none
    mass = res.summary.set_index(["scenario", "method"])["format_mass"]
    assert mass.loc[[(s, m) for s in ("MCAR 50%", "under 45") for m in lm_methods]].between(
        0, 1).all()  # fmt: skip
    assert np.isnan(mass.loc[("MCAR 50%", "marginal")])
