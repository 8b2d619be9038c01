"""evaluate(): per-item / overall numbers, references, bootstrap CIs, determinism, files."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from surveylm import metrics as M
from surveylm.errors import DataError
from surveylm.evaluation import REFERENCE_NOISE_FLOOR, REFERENCE_UNIFORM, Evaluation, evaluate
from surveylm.items import ItemSet, build_group_items, build_respondent_items
from surveylm.models.base import Predictions
from surveylm.survey import Question, Survey


@pytest.fixture(scope="module")
def survey() -> Survey:
    """400 respondents; an ordinal question with a "Don't know", a nominal one, groups."""
    rng = np.random.default_rng(7)
    n = 400
    party = rng.choice(["Dem", "Ind", "Rep"], size=n, p=[0.4, 0.2, 0.4])
    educ = rng.choice(["HS", "College"], size=n)
    lean = np.where(party == "Dem", 0, np.where(party == "Rep", 2, 1))
    lr = np.clip(lean + rng.integers(-1, 2, size=n), 0, 2)
    lr_label = np.array(["Left", "Centre", "Right"], dtype=object)[lr]
    lr_label[rng.random(n) < 0.08] = "Don't know"
    vote = np.where(rng.random(n) < 0.3 + 0.2 * lean, "Dole", "Clinton").astype(object)
    vote[rng.random(n) < 0.1] = "Perot"
    vote[:12] = None  # non-respondents
    data = pd.DataFrame(
        {"party": party, "educ": educ, "lr": lr_label, "vote": vote},
        index=[f"r{i}" for i in range(n)],
    )
    questions = [
        Question("party", "Party?", ("Dem", "Ind", "Rep")),
        Question("educ", "Education?", ("HS", "College")),
        Question("lr", "Left or right?", ("Left", "Centre", "Right", "Don't know"), (1, 2, 3, -1)),
        Question("vote", "Vote?", ("Clinton", "Dole", "Perot")),
    ]
    return Survey(data, questions, weights=rng.uniform(0.4, 2.5, size=n), name="toy")


@pytest.fixture(scope="module")
def group_items(survey) -> ItemSet:
    return build_group_items(survey, ["lr", "vote"], by=["party", "educ", ["party", "educ"]])


@pytest.fixture(scope="module")
def respondent_items(survey) -> ItemSet:
    return build_respondent_items(
        survey, ["vote", "lr"], ["party", "educ"], include_unanswered=True
    )


def perfect(items: ItemSet, name: str = "perfect") -> Predictions:
    known = items.filter(known_target=True)
    return Predictions(known.item_ids, list(known.targets), name)


def noisy(items: ItemSet, name: str, seed: int) -> Predictions:
    rng = np.random.default_rng(seed)
    dists = [rng.dirichlet(np.ones(len(q.options))) for q in items.item_questions()]
    return Predictions(items.item_ids, dists, name)


# -- group items -----------------------------------------------------------------------
def test_perfect_predictions_score_zero_and_references_are_present(group_items):
    ev = evaluate(group_items, perfect(group_items), n_boot=200)
    assert set(ev.models) == {"perfect", REFERENCE_UNIFORM, REFERENCE_NOISE_FLOOR}
    for metric in ("wd", "tv", "jsd", "kl"):
        assert ev.value("perfect", metric) == pytest.approx(0.0, abs=1e-12)
        assert ev.value(REFERENCE_UNIFORM, metric) > ev.value(REFERENCE_NOISE_FLOOR, metric) > 0
    assert ev.value("perfect", "simbench") == pytest.approx(100.0)
    assert ev.value(REFERENCE_UNIFORM, "simbench") == pytest.approx(0.0, abs=1e-9)
    assert ev.overall.loc[ev.overall["model"] != "perfect", "reference"].all()
    assert ev.per_respondent.empty and "log_loss" in ev.per_respondent.columns


def test_overall_means_match_single_item_metrics(group_items):
    pred = noisy(group_items, "noisy", 1)
    ev = evaluate(group_items, pred, n_boot=0)
    expected: dict[str, list[float]] = {m: [] for m in ("wd", "tv", "jsd", "kl")}
    for t, q_dist, q in zip(
        group_items.targets, pred.distributions, group_items.item_questions(), strict=True
    ):
        if q.ordinal is not None:
            expected["wd"].append(M.wasserstein(t, q_dist, q.ordinal))
        expected["tv"].append(M.total_variation(t, q_dist))
        expected["jsd"].append(M.js_divergence(t, q_dist))
        expected["kl"].append(M.kl_divergence(t, q_dist))
    rows = ev.overall.set_index(["model", "metric"])
    for metric, values in expected.items():
        assert rows.loc[("noisy", metric), "value"] == pytest.approx(np.mean(values), rel=1e-12)
        assert rows.loc[("noisy", metric), "n_items"] == len(values)
    # WD is a mean over the ordinal question's items only; nominal items are NaN.
    n_lr = int((group_items.frame["question_id"] == "lr").sum())
    assert rows.loc[("noisy", "wd"), "n_items"] == n_lr < len(group_items)
    per = ev.per_item[ev.per_item["model"] == "noisy"]
    assert per.loc[per["question_id"] == "vote", "wd"].isna().all()
    assert np.isnan(rows.loc[("noisy", "wd"), "ci_low"])  # n_boot=0: no intervals


def test_uniform_reference_equals_explicit_uniform_predictions(group_items):
    flat = Predictions(
        group_items.item_ids,
        [np.full(q.n_options, 1 / q.n_options) for q in group_items.item_questions()],
        "flat",
    )
    ev = evaluate(group_items, flat, n_boot=100)
    a = ev.overall[ev.overall["model"] == "flat"].drop(columns=["model", "reference"])
    b = ev.overall[ev.overall["model"] == REFERENCE_UNIFORM].drop(columns=["model", "reference"])
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_cis_contain_point_estimates_and_runs_are_deterministic(group_items):
    preds = [noisy(group_items, "a", 1), noisy(group_items, "b", 2)]
    ev = evaluate(group_items, preds, n_boot=300, seed=5)
    finite = ev.overall.dropna(subset=["ci_low"])
    assert len(finite) == len(ev.overall) > 0
    assert (finite["ci_low"] <= finite["value"] + 1e-12).all()
    assert (finite["value"] <= finite["ci_high"] + 1e-12).all()
    again = evaluate(group_items, preds, n_boot=300, seed=5)
    pd.testing.assert_frame_equal(ev.overall, again.overall)
    pd.testing.assert_frame_equal(ev.per_item, again.per_item)
    other = evaluate(group_items, preds, n_boot=300, seed=6)
    assert not np.allclose(ev.overall["ci_low"], other.overall["ci_low"])
    pd.testing.assert_series_equal(ev.overall["value"].iloc[:10], other.overall["value"].iloc[:10])


def test_noise_floor_rows_are_the_mean_of_per_item_floors(group_items):
    ev = evaluate(group_items, perfect(group_items), n_boot=0, n_floor_draws=50)
    floor = ev.per_item[ev.per_item["model"] == REFERENCE_NOISE_FLOOR]
    assert len(floor) == len(group_items)
    assert ev.value(REFERENCE_NOISE_FLOOR, "tv") == pytest.approx(floor["tv"].mean())
    # The floor of a small group exceeds that of a large one on average.
    small = floor["n_eff"] < floor["n_eff"].median()
    assert floor.loc[small, "tv"].mean() > floor.loc[~small, "tv"].mean()


def test_per_question_and_per_group_tables(group_items):
    ev = evaluate(group_items, noisy(group_items, "m", 3), n_boot=0)
    pq = ev.per_question
    assert set(pq.columns) >= {"model", "kind", "question_id", "metric", "value", "n_items"}
    vote_tv = pq[(pq.model == "m") & (pq.question_id == "vote") & (pq.metric == "tv")]
    per = ev.per_item[(ev.per_item.model == "m") & (ev.per_item.question_id == "vote")]
    assert vote_tv["value"].iat[0] == pytest.approx(per["tv"].mean())
    pg = ev.per_group
    dem = pg[(pg.model == "m") & (pg.group == "party = Dem") & (pg.metric == "kl")]
    assert dem["n_items"].iat[0] == 2  # lr and vote


def test_format_mass_is_reported_when_predictions_carry_it(group_items):
    pred = noisy(group_items, "lm", 4)
    pred.format_mass = np.linspace(0.5, 1.0, len(group_items))
    ev = evaluate(group_items, pred, n_boot=50)
    assert ev.value("lm", "format_mass") == pytest.approx(0.75)
    assert "format_mass" not in set(ev.overall.loc[ev.overall.model != "lm", "metric"])


# -- respondent items ------------------------------------------------------------------
def test_respondent_metrics_match_sklearn_on_pooled_question_option_labels(respondent_items):
    pred = noisy(respondent_items, "m", 5)
    ev = evaluate(respondent_items, pred, n_boot=100)
    known = respondent_items.filter(known_target=True)
    assert ev.settings["items_without_target"] == len(respondent_items) - len(known) > 0
    aligned = pred.for_items(known)
    qids = known.frame["question_id"].tolist()
    y = [f"{q}:{int(np.argmax(t))}" for q, t in zip(qids, known.targets, strict=True)]
    yhat = [f"{q}:{int(np.argmax(d))}" for q, d in zip(qids, aligned.distributions, strict=True)]
    w = known.frame["weight"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = {
            "accuracy": skm.accuracy_score(y, yhat, sample_weight=w),
            "balanced_accuracy": skm.balanced_accuracy_score(y, yhat, sample_weight=w),
            "macro_f1": skm.f1_score(y, yhat, average="macro", sample_weight=w),
        }
    for metric, value in expected.items():
        assert ev.value("m", metric) == pytest.approx(value, rel=1e-12)
    ll = [-np.log(np.clip(d[int(np.argmax(t))], 2.2e-16, 1)) for t, d in
          zip(known.targets, aligned.distributions, strict=True)]  # fmt: skip
    assert ev.value("m", "log_loss") == pytest.approx(np.average(ll, weights=w), rel=1e-9)
    # Per question = the single-question respondent metrics.
    pq = ev.per_question[(ev.per_question.model == "m") & (ev.per_question.question_id == "lr")]
    pos = [i for i, q in enumerate(qids) if q == "lr"]
    ref = M.respondent_metrics(
        [int(np.argmax(known.targets[i])) for i in pos],
        np.vstack([aligned.distributions[i] for i in pos]),
        w[pos],
    )
    for metric, value in ref.items():
        assert pq.loc[pq.metric == metric, "value"].iat[0] == pytest.approx(value)


def test_respondent_perfect_uniform_and_cis(respondent_items):
    ev = evaluate(respondent_items, [perfect(respondent_items), noisy(respondent_items, "n", 6)])
    assert ev.value("perfect", "accuracy") == 1.0
    assert ev.value("perfect", "macro_f1") == 1.0
    assert ev.value("perfect", "brier") == pytest.approx(0.0, abs=1e-12)
    assert ev.value("perfect", "log_loss") == pytest.approx(0.0, abs=1e-12)
    known = respondent_items.filter(known_target=True)
    w = known.frame["weight"].to_numpy()
    log_k = np.log([q.n_options for q in known.item_questions()])
    assert ev.value(REFERENCE_UNIFORM, "log_loss") == pytest.approx(np.average(log_k, weights=w))
    assert REFERENCE_NOISE_FLOOR not in ev.models  # no floor for single answers
    rows = ev.overall
    assert ((rows.ci_low <= rows.value + 1e-12) & (rows.value <= rows.ci_high + 1e-12)).all()
    per = ev.per_respondent
    assert len(per) == 3 * len(known)
    assert set(per.loc[per.model == "perfect", "correct"]) == {1.0}


def test_mixed_item_kinds_and_table(group_items, respondent_items):
    both = ItemSet.concat([group_items, respondent_items])
    ev = evaluate(both, {"x": noisy(both, "ignored name", 8)}, n_boot=50)
    assert set(ev.overall["kind"]) == {"group", "respondent"}
    table = ev.table()
    assert list(table.index) == ["x", REFERENCE_UNIFORM, REFERENCE_NOISE_FLOOR]
    assert any(c.startswith("WD") for c in table.columns)
    assert any(c.startswith("accuracy") for c in table.columns)
    assert "[" in table.iloc[0, 0]
    assert table.loc[REFERENCE_NOISE_FLOOR].str.len().min() == 0  # no respondent floor


# -- errors and files ------------------------------------------------------------------
def test_bad_calls_raise_clear_errors(group_items):
    pred = noisy(group_items, "m", 9)
    partial = Predictions(pred.item_ids[:-1], pred.distributions[:-1], "partial")
    with pytest.raises(DataError, match=r"model 'partial'.*no prediction"):
        evaluate(group_items, partial)
    with pytest.raises(DataError, match="reserved"):
        evaluate(group_items, {REFERENCE_UNIFORM: pred})
    with pytest.raises(DataError, match="named"):
        evaluate(group_items, [pred, pred])
    with pytest.raises(DataError, match="no items with a known target"):
        evaluate(group_items.subset(np.zeros(len(group_items), dtype=bool)), pred)
    with pytest.raises(DataError):
        evaluate(group_items, pred, ci=1.5)


def test_to_files_writes_parquet_and_csv_atomically(tmp_path, group_items, respondent_items):
    both = ItemSet.concat([group_items, respondent_items])
    ev = evaluate(both, noisy(both, "m", 10), n_boot=20)
    paths = ev.to_files(tmp_path / "out")
    names = {p.name for p in paths}
    for stem in ("overall", "per_item", "per_respondent", "per_question", "per_group"):
        assert {f"{stem}.parquet", f"{stem}.csv"} <= names
    assert {"table.csv", "settings.json"} <= names
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)  # no temp files
    back = pd.read_parquet(tmp_path / "out" / "overall.parquet")
    np.testing.assert_allclose(back["value"], ev.overall["value"])
    assert isinstance(ev, Evaluation)


def test_bootstrap_is_paired_across_models(group_items, respondent_items):
    for items in (group_items, respondent_items):
        a = noisy(items, "a", 11)
        b = Predictions(a.item_ids, a.distributions, "b")
        ev = evaluate(items, [a, b], n_boot=100, seed=3, include_references=False)
        assert ev.models == ["a", "b"]
        rows = ev.overall.set_index(["model", "metric"])
        for col in ("value", "ci_low", "ci_high"):
            np.testing.assert_allclose(rows.loc["a", col], rows.loc["b", col], rtol=1e-12)
