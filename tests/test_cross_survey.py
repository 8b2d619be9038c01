"""The unseen-survey protocol and distribution files as the simulation dataset.

Synthetic files are built here in the published layouts (SubPOP JSONL for training, Cao et
al. JSON for the unseen survey, as in Cao et al.'s WVS → Pew protocol). The test on the
FiveThirtyEight surveys skips when ../shared/data is absent, and fails under CI=true.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from surveylm.errors import ConfigError, FileFormatError
from surveylm.evaluation import REFERENCE_NOISE_FLOOR, REFERENCE_UNIFORM
from surveylm.experiments.cross_survey import UNSEEN_SURVEY
from surveylm.experiments.simulation import prepare_split, run_simulation_benchmark
from surveylm.experiments.simulation_config import SimulationConfig, load_simulation_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
METHODS = [{"name": "uniform", "model": "uniform"},
           {"name": "qm", "model": "question-marginal"},
           {"name": "gm", "model": "group-marginal"}]  # fmt: skip


def _train_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    lines = []
    for q in ("q1", "q2", "q3", "q4"):
        for country in ("Kenya", "Chile", "Peru"):
            p = rng.dirichlet(np.ones(3))
            lines.append({"qkey": q, "attribute": "country", "group": country,
                          "question": f"How important is {q} in your life?",
                          "options": ["Very", "Somewhat", "Not at all", "Refused"],
                          "ordinal": [3.0, 2.0, 1.0], "responses": p.tolist(),
                          "refusal_rate": 0.01, "n": 400})  # fmt: skip
    path = tmp_path / "wvs_train.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def _test_file(tmp_path: Path) -> Path:
    records = []
    for i, q in enumerate(("Is the UN favourable?", "Is the EU favourable?")):
        for country in ("Kenya", "Chile (urban)", "Peru", "Japan"):
            records.append({"id": i, "instruction": f"How would someone from {country} answer "
                            "the following question:\n\n", "input": f"{q} \nHere are the "
                            "options: \n", "options": ["(A)Yes", "(B)No"],
                            "options_dist": {"B": 0.4, "A": 0.6}, "data_type": "test",
                            "n": 250})  # fmt: skip
    path = tmp_path / "global_pew_test.json"
    path.write_text(json.dumps(records, indent=4))
    return path


def _config(tmp_path: Path, **unseen) -> SimulationConfig:
    spec = {"dataset": str(_test_file(tmp_path)), "group_by": ["country"],
            "group_map": {"country": {"to": "country",
                                      "values": {"Chile (urban)": "Chile", "Japan": None}}},
            **unseen}  # fmt: skip
    return SimulationConfig(
        dataset=str(_train_file(tmp_path)),
        group_by=["country"],
        unseen_survey=spec,
        methods=METHODS,
        robustness=None,
        n_boot=20,
    )


def test_unseen_survey_trains_on_one_file_and_tests_on_another(tmp_path):
    config = _config(tmp_path)
    train, tests, survey, facts = prepare_split(config)
    assert survey is None and len(train) == 12 and list(tests) == [UNSEEN_SURVEY]
    test = tests[UNSEEN_SURVEY]
    assert facts["groups_not_mapped"] == ["country = Japan"]
    assert facts["test_questions"] == ["0", "1"]
    # the item keeps the test survey's group, the model sees it in training terms
    i = list(test.item_ids).index("0|country = Chile (urban)")
    assert test.contexts[i] == {"country": ["Chile"]}
    res = run_simulation_benchmark(config, tmp_path / "run", progress=False)
    assert set(res.overall["split"]) == {UNSEEN_SURVEY}
    methods = set(res.overall["method"])
    assert {"uniform", "qm", "gm", REFERENCE_UNIFORM, REFERENCE_NOISE_FLOOR} <= methods
    tv = res.overall[res.overall["metric"] == "tv"].set_index("method")["value"]
    # questions are unseen by construction: the marginals can only fall back to uniform
    assert tv["gm"] == pytest.approx(tv["uniform"]) == pytest.approx(0.1)
    assert tv[REFERENCE_NOISE_FLOOR] < tv["uniform"]  # the file's n gives the floor
    assert UNSEEN_SURVEY in {c[0] for c in res.table().columns}
    assert (tmp_path / "run" / "table.csv").is_file()


@pytest.mark.parametrize(
    ("unseen", "text"),
    [
        ({"group_map": {}}, r"Chile \(urban\).*no training group has"),
        ({"group_map": {"country": "nation"}}, r"attribute 'nation'.*do not have"),
        ({"context": {"country": "Mars"}}, r"context 'country'.*'Mars'"),
    ],
)
def test_unseen_survey_mapping_errors_name_the_group(tmp_path, unseen, text):
    with pytest.raises(ConfigError, match=text):
        prepare_split(_config(tmp_path, **unseen))


def test_unseen_survey_refuses_a_question_that_is_also_trained_on(tmp_path):
    config = _config(tmp_path)
    same = config.with_overrides(unseen_survey={**config.unseen_survey.model_dump(),
                                                "dataset": config.dataset})  # fmt: skip
    with pytest.raises(ConfigError, match=r"q1.*also training questions"):
        prepare_split(same)


def test_distribution_file_as_dataset_is_split_by_question_and_group(tmp_path):
    config = SimulationConfig(dataset=str(_train_file(tmp_path)), group_by=["country"],
                              test_questions=["q4"], test_groups=["country = Peru"],
                              methods=METHODS, robustness=None, n_boot=10)  # fmt: skip
    res = run_simulation_benchmark(config, progress=False)
    assert set(res.overall["split"]) == {"seen_q/unseen_g", "unseen_q/seen_g",
                                         "unseen_q/unseen_g"}  # fmt: skip
    assert res.settings["noise_floor"] == "from each group's n"
    bad = config.with_overrides(methods=[{"name": "td", "model": "training-data"}])
    with pytest.raises(ConfigError, match="training-data needs respondents"):
        run_simulation_benchmark(bad, progress=False)


def _shared_data() -> None:
    from surveylm.datasets.fivethirtyeight import shared_data_dir

    try:
        shared_data_dir()
    except FileFormatError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the FiveThirtyEight data is missing: {exc}")
        pytest.skip(f"FiveThirtyEight data not available (real-data test): {exc}")


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("name", "n_train", "n_test", "mapped"),
    [
        ("simulation_unseen_survey_nonvoters_to_masculinity.yaml", 476, 126,
         ("q0001|age3 = 35 - 64", {"age_group": ["35 - 49", "50 - 64"], "gender": ["Male"]})),
        ("simulation_unseen_survey_masculinity_to_nonvoters.yaml", 126, 224,
         ("Q2_1|race = Other/Mixed", {"racethn4": ["Other"]})),
    ],
)  # fmt: skip
def test_fivethirtyeight_cross_survey_configs(name, n_train, n_test, mapped):
    _shared_data()
    config = load_simulation_config(CONFIGS / name)
    train, tests, _, facts = prepare_split(config)
    test = tests[UNSEEN_SURVEY]
    assert (len(train), len(test)) == (n_train, n_test) and facts["groups_not_mapped"] == []
    item, context = mapped
    assert test.contexts[list(test.item_ids).index(item)] == context
    assert (test.frame["n"] >= config.min_n).all()  # the test survey's weighted groups
    res = run_simulation_benchmark(config.with_overrides(methods=METHODS[:2], n_boot=0),
                                   progress=False)  # fmt: skip
    assert {REFERENCE_UNIFORM, REFERENCE_NOISE_FLOOR} <= set(res.overall["method"])
