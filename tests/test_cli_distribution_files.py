"""Every CLI command that takes items takes a distribution file directly (issue 19):
describe, fit, predict, evaluate and benchmark simulation, on files built here in SubPOP's
and Cao et al.'s published layouts; a label table; a mis-shaped file is one error line."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from surveylm.cli import app
from surveylm.io.distributions import read_items

runner = CliRunner(env={"COLUMNS": "200"})


def _subpop(tmp_path: Path, *, zeros: bool = False) -> Path:
    lines = []
    for q, ordinal in (("natspac", [1.0, 2.0, 3.0]), ("natroad", [2.0, 1.5, 1.0])):
        for g, p in (("Northeast", [0.3, 0.4, 0.3]), ("South", [0.2, 0.5, 0.3]),
                     ("West", [0.1, 0.6, 0.3])):  # fmt: skip
            lines.append({"qkey": q, "attribute": "CREGION", "group": g,
                          "question": f"Spending on {q}?",
                          "options": ["Too little", "About right", "Too much", "Refused"],
                          "ordinal": ordinal, "responses": p, "refusal_rate": 0.02})  # fmt: skip
    if zeros:
        lines[-1]["responses"] = [0.0, 0.0, 0.0]
    path = tmp_path / "subpop_eval.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def _cao(tmp_path: Path) -> Path:
    records = [{"id": 3, "instruction": f"How would someone from {c} answer the following "
                "question:\n\n", "input": "Is the UN good? \nHere are the options: \n",
                "options": ["(A)Yes", "(B)No"], "options_dist": {"A": a, "B": 100 - a},
                "data_type": "test"} for c, a in (("Kenya", 60.0), ("Chile", 30.0))]  # fmt: skip
    path = tmp_path / "global_pew_test.json"
    path.write_text(json.dumps(records, indent=4))
    return path


def test_describe_a_subpop_file_reports_refusal_and_missing_floor(tmp_path):
    res = runner.invoke(app, ["describe", str(_subpop(tmp_path, zeros=True))])
    assert res.exit_code == 0, res.output
    assert "subpop layout, 5 items, 2 questions, 3 groups (CREGION), 1 records skipped" in (
        res.output
    )
    assert "warning: file" in res.output and "skipped 1 of 6 records" in res.output
    assert "natroad" in res.output and "ordinal" in res.output
    assert "no noise floor: subpop_eval.jsonl gives no group sizes (n)" in res.output
    assert "refusal rate (kept apart from the substantive shares): mean 0.020" in res.output
    strict = runner.invoke(app, ["describe", str(tmp_path / "subpop_eval.jsonl"), "--strict"])
    assert strict.exit_code == 1 and "Traceback" not in strict.output
    assert "error: file" in strict.output and "line 6" in strict.output


def test_fit_predict_evaluate_on_distribution_files(tmp_path):
    for path in (_subpop(tmp_path), _cao(tmp_path)):
        model_dir, preds = tmp_path / f"m_{path.stem}", tmp_path / f"p_{path.stem}.parquet"
        res = runner.invoke(app, ["fit", str(path), "-o", str(model_dir),
                                  "--model", "group-marginal"])  # fmt: skip
        assert res.exit_code == 0, res.output
        assert "fitted group-marginal on" in res.output
        res = runner.invoke(app, ["predict", str(path), "--model-dir", str(model_dir),
                                  "-o", str(preds)])  # fmt: skip
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["evaluate", str(path), str(preds), "--n-boot", "10"])
        assert res.exit_code == 0, res.output
        assert "uniform (ref)" in res.output and "no noise floor" in res.output


def test_label_table_names_attributes_in_prompts(tmp_path):
    from surveylm.prompts import render_prompt

    labels = tmp_path / "labels.yaml"
    labels.write_text(yaml.safe_dump({"CREGION": {
        "label": "region", "question": "In which region do you live?",
        "values": {"Northeast": "the Northeast"}}}))  # fmt: skip
    items = read_items(_subpop(tmp_path), labels=labels)
    assert items.questions["CREGION"].options == ("the Northeast", "South", "West")
    assert "natspac|CREGION = the Northeast" in set(items.item_ids)
    assert items.summary["refusal_rate"]["natspac|CREGION = the Northeast"] == 0.02
    text = render_prompt(items.item_question(0), items.contexts[0], "qa",
                         questions=items.questions)  # fmt: skip
    assert "In which region do you live?" in text and "CREGION" not in text
    res = runner.invoke(app, ["describe", str(tmp_path / "subpop_eval.jsonl"),
                              "--labels", str(labels)])  # fmt: skip
    assert res.exit_code == 0 and "the Northeast" not in res.output  # table is per question


def test_benchmark_simulation_with_a_jsonl_dataset(tmp_path):
    config = {"dataset": str(_subpop(tmp_path)), "group_by": ["CREGION"],
              "test_questions": ["natroad"], "test_groups": ["CREGION = West"],
              "methods": [{"name": "uniform", "model": "uniform"},
                          {"name": "gm", "model": "group-marginal"}],
              "robustness": None, "n_boot": 0}  # fmt: skip
    path = tmp_path / "sim.yaml"
    path.write_text(yaml.safe_dump(config))
    res = runner.invoke(app, ["benchmark", "simulation", str(path), "-o", str(tmp_path / "run"),
                              "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "unseen_q/unseen_g" in res.output and "uniform (ref)" in res.output


def test_mis_shaped_distribution_file_is_one_error_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"id": 1, "instruction": "x", "input": "Q",
                                 "options": ["(A)Yes", "(B)No"],
                                 "options_dist": {"A": 50, "C": 50}}]))  # fmt: skip
    res = runner.invoke(app, ["describe", str(path)])
    assert res.exit_code == 1
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "bad.json" in lines[0] and "record 1" in lines[0]
    assert "options_dist" in lines[0] and "'C'" in lines[0]
