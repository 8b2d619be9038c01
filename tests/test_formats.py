"""Cao et al. JSON and GlobalOpinionQA-style tables: readers, writers, round trips, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surveylm.errors import DataError, DistributionError, FileFormatError
from surveylm.io.distributions import read_subpop_jsonl
from surveylm.io.formats import (
    read_cao_json,
    read_globalopinion_csv,
    write_cao_json,
    write_globalopinion_csv,
)

RECORDS = [
    {"qkey": "vote", "attribute": "country", "group": "Germany", "question": "Vote?",
     "options": ["Yes", "No", "Don't know"], "ordinal": [1, 2, -1],
     "responses": [0.5, 0.3, 0.2], "n": 120, "n_eff": 98.5},
    {"qkey": "vote", "attribute": "country", "group": "Japan", "question": "Vote?",
     "options": ["Yes", "No", "Don't know"], "ordinal": [1, 2, -1],
     "responses": [0.1, 0.6, 0.3]},
    {"qkey": "trust", "attribute": "country", "group": "Japan", "question": "Trust people?",
     "options": ["Most", "Careful"], "responses": [0.25, 0.75]},
]  # fmt: skip


@pytest.fixture
def items(tmp_path):
    path = tmp_path / "src.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    return read_subpop_jsonl(path, source="wvs")


def _same(a, b, *, sizes=True):
    fa = a.frame.sort_values("item_id").reset_index(drop=True)
    fb = b.frame.sort_values("item_id").reset_index(drop=True)
    assert list(fa["item_id"]) == list(fb["item_id"])
    assert list(fa["context"]) == list(fb["context"])
    for x, y in zip(fa["target"], fb["target"], strict=True):
        np.testing.assert_allclose(x, y, atol=1e-12)
    assert a.questions == b.questions
    if sizes:
        assert list(fa["n"]) == list(fb["n"])
        np.testing.assert_array_equal(fa["n_eff"].to_numpy(), fb["n_eff"].to_numpy())


def test_cao_json_round_trip_keeps_questions_groups_targets_and_sizes(items, tmp_path):
    path = write_cao_json(items, tmp_path / "cao.json")
    data = json.loads(path.read_text())
    assert data[0]["options_dist"] == pytest.approx([50.0, 30.0, 20.0])
    assert "A. Yes" in data[0]["input"] and "Germany" in data[0]["instruction"]
    _same(items, read_cao_json(path))


def test_cao_json_minimal_records_in_percent_with_country_or_instruction(tmp_path):
    lines = [
        {"instruction": "You are from Chile.", "input": "Is God important?", "country": "Chile",
         "options": ["Yes", "No"], "options_dist": [70.0, 30.0]},
        {"instruction": "You are from Peru.", "input": "Is God important?",
         "options": ["Yes", "No"], "options_dist": [55.5, 44.6]},
    ]  # fmt: skip
    path = tmp_path / "cao.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines))
    got = read_cao_json(path)
    assert len(got) == 2 and len(got.questions) == 1
    assert list(got.frame["group_var"]) == ["country", "instruction"]
    np.testing.assert_allclose(got.targets[0], [0.7, 0.3])
    assert got.targets[1].sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("change", "error", "text"),
    [
        ({"options_dist": [70.0, 20.0]}, DistributionError, "summing to 100"),
        ({"options_dist": [100.0]}, DistributionError, "1 values for 2 options"),
        ({"options_dist": [-10.0, 110.0]}, DistributionError, "non-negative"),
        ({"options": "Yes"}, FileFormatError, "must be a list"),
        ({"input": None, "question": "Other text", "qkey": "g"}, DataError, "differently"),
    ],
)
def test_cao_json_errors_name_file_record_and_question(tmp_path, change, error, text):
    good = {"instruction": "x", "input": "Q?", "qkey": "g", "options": ["Yes", "No"],
            "options_dist": [60, 40], "country": "Chile"}  # fmt: skip
    bad = {**good, "country": "Peru", **change}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([good, bad]))
    with pytest.raises(error, match=text) as info:
        read_cao_json(path)
    assert "bad.json" in str(info.value) and "record 2" in str(info.value)
    if error is DistributionError:
        assert "question 'g'" in str(info.value)


def test_cao_json_missing_key_and_bad_json(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"instruction": "x", "input": "Q"}\n')
    with pytest.raises(FileFormatError, match=r"line 1: missing key.*options"):
        read_cao_json(path)
    path.write_text("[{]")
    with pytest.raises(FileFormatError, match="invalid JSON"):
        read_cao_json(path)


def test_globalopinion_round_trip(items, tmp_path):
    path = write_globalopinion_csv(items, tmp_path / "goqa.csv")
    back = read_globalopinion_csv(path)
    _same(items, back, sizes=False)
    assert set(back.frame["group_var"]) == {"country"}
    assert np.isnan(back.frame["n_eff"]).all()  # sizes are not part of this format


def test_globalopinion_reads_the_released_defaultdict_repr_and_renormalises(tmp_path):
    path = tmp_path / "goqa.csv"
    sel = "defaultdict(<class 'list'>, {'Belgium': [0.6, 0.39], 'Brazil': [0.2, 0.8]})"
    path.write_text(f'question,options,selections,source\n"Q1?","[\'Yes\', \'No\']","{sel}",GAS\n')
    got = read_globalopinion_csv(path)
    assert list(got.frame["group"]) == ["country = Belgium", "country = Brazil"]
    np.testing.assert_allclose(got.targets[0], [0.6 / 0.99, 0.39 / 0.99])
    assert got.questions[got.question_ids[0]].source == "GAS"


@pytest.mark.parametrize(
    ("selections", "error", "text"),
    [
        ("{'Chile': [0.5, 0.2]}", DistributionError, "sum to 1"),
        ("{'Chile': [0.5, 0.3, 0.2]}", DistributionError, "3 shares for 2 options"),
        ("not a dict", FileFormatError, "mapping"),
    ],
)
def test_globalopinion_errors_name_file_line_question_and_country(
    tmp_path, selections, error, text
):
    path = tmp_path / "g.csv"
    path.write_text(f'question,options,selections,qkey\nQ?,"[""A"", ""B""]","{selections}",q7\n')
    with pytest.raises(error, match=text) as info:
        read_globalopinion_csv(path)
    assert "g.csv" in str(info.value) and "line 2" in str(info.value)
    assert "question 'q7'" in str(info.value)


def test_globalopinion_missing_column(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("question,options\nQ?,[]\n")
    with pytest.raises(FileFormatError, match=r"missing column.*selections"):
        read_globalopinion_csv(path)
