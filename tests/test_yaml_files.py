"""The one YAML reader and pydantic-error formatter (surveylm.io.yaml_files): one
dialect (only true/false are booleans), one error type for a missing or broken file, and
every validation problem listed with its location — in every loader that reads YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from surveylm.errors import ConfigError, ConfigFileError, FileFormatError
from surveylm.experiments.imputation_config import load_imputation_config
from surveylm.experiments.simulation_config import load_simulation_config
from surveylm.io.labels import load_labels
from surveylm.io.yaml_files import parse_yaml
from surveylm.missingness_config import MNARConfig, load_scenarios
from surveylm.training.config import FineTuneConfig


def test_yes_and_no_stay_strings_as_keys_and_values() -> None:
    assert parse_yaml("{Yes: 1.0, No: 0.0, on: off, a: [Yes, No], t: true, f: False}") == {
        "Yes": 1.0, "No": 0.0, "on": "off", "a": ["Yes", "No"], "t": True, "f": False,
    }  # fmt: skip


def test_a_scenario_file_with_yes_no_option_effects_loads(tmp_path: Path) -> None:
    path = tmp_path / "scenarios.yaml"
    path.write_text(
        "scenarios:\n  - {kind: mnar, rate: 0.3, option_effects: {Yes: 1.0, No: 0.0}}\n",
        encoding="utf-8",
    )
    (scenario,) = load_scenarios(path)
    assert isinstance(scenario, MNARConfig)
    assert scenario.option_effects == {"Yes": 1.0, "No": 0.0}


def test_a_label_table_keeps_yes_no_values(tmp_path: Path) -> None:
    path = tmp_path / "labels.yaml"
    path.write_text("voted:\n  label: Voted\n  values: {Yes: voted, No: did not}\n", "utf-8")
    assert load_labels(path)["voted"]["values"] == {"Yes": "voted", "No": "did not"}


LOADERS = {
    "imputation config": load_imputation_config,
    "simulation config": load_simulation_config,
    "fine-tuning config": FineTuneConfig.from_yaml,
    "scenarios": load_scenarios,
    "label table": load_labels,
}


@pytest.mark.parametrize("loader", list(LOADERS.values()), ids=list(LOADERS))
def test_a_missing_or_broken_file_is_the_same_error_everywhere(loader, tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigFileError, match=r"absent\.yaml': no such file") as info:
        loader(missing)
    assert isinstance(info.value, ConfigError) and isinstance(info.value, FileFormatError)
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigFileError, match=r"broken\.yaml': invalid YAML: "):
        loader(broken)
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    with pytest.raises(ConfigFileError, match=r"folder\.yaml': is a folder"):
        loader(folder)


def test_every_validation_problem_is_listed_with_its_location(tmp_path: Path) -> None:
    path = tmp_path / "imp.yaml"
    path.write_text(
        "dataset: anes1996\ntarget: vote\nfeatures: [PID]\nrepetitons: 2\nm: many\n"
        "scenarios: [{kind: mcar, rate: 2}]\nmethods: [{name: u, model: uniform, fit: maybe}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_imputation_config(path)
    text = str(info.value)
    assert text.startswith(f"file '{path}': ")
    for where in ("repetitons:", "m:", "scenarios.0.mcar.rate:", "methods.0.fit:"):
        assert where in text, (where, text)
    scen = tmp_path / "scen.yaml"
    scen.write_text(
        "- {kind: mcar, rate: 0, sed: 1}\n- {kind: mar, rate: 2, by: 3, x: 1}\n", "utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_scenarios(scen)
    assert str(info.value).count(": ") >= 5  # more than the three the old formatter kept
    ft = tmp_path / "ft.yaml"
    ft.write_text("epoch: 1\nlearning_rate: fast\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"invalid fine-tuning config: learning_rate: .*; epoch"):
        FineTuneConfig.from_yaml(ft)


def test_the_report_notes_a_missing_or_broken_run_file(tmp_path: Path) -> None:
    from surveylm.report.data import load_run

    run = tmp_path / "run"
    (run / "imputation").mkdir(parents=True)
    (run / "imputation" / "summary.csv").write_text("scenario,method\nA,b\n", "utf-8")
    (run / "imputation" / "config.yaml").write_text("target: [unclosed\n", "utf-8")
    (run / "run.json").write_text(json.dumps([1, 2]), "utf-8")
    data = load_run(run)
    assert data.imputation is not None and data.imputation["config"] == {}
    assert "invalid YAML" in data.notes["imputation/config"]
    assert "no such file" in data.notes["config"] and "no such file" in data.notes["versions"]
    assert "expected a mapping, got list" in data.notes["run"]
    assert "imputation/settings" in data.notes
