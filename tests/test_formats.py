"""Cao et al. JSON (as published) and GlobalOpinionQA-style tables: readers, writers,
round trips, quirks, errors. Files are built here in the published layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surveylm.errors import DataError, DistributionError, FileFormatError
from surveylm.io.cao import QuestionIdWarning, read_cao_json, write_cao_json
from surveylm.io.distributions import read_subpop_jsonl
from surveylm.io.globalopinion import read_globalopinion_csv, write_globalopinion_csv
from surveylm.io.records import SkippedRecordsWarning

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
    # Cao et al.'s layout: lettered options, a letter → percent dict, country instruction
    assert data[0]["options"] == ["(A)Yes", "(B)No", "(C)Don't know"]
    assert data[0]["options_dist"] == pytest.approx({"A": 50.0, "B": 30.0, "C": 20.0})
    assert data[0]["instruction"] == (
        "How would someone from Germany answer the following question:\n\n"
    )
    assert data[0]["input"] == "Vote? \nHere are the options: \n"
    _same(items, read_cao_json(path))
    fractions = write_cao_json(items, tmp_path / "pew.json", percent=False)
    assert json.loads(fractions.read_text())[0]["options_dist"]["A"] == pytest.approx(0.5)
    _same(items, read_cao_json(fractions))


def _cao(qid, country, dist, options=("(A)Very favorable", "(B)Somewhat favorable",
                                       "(C)Very unfavorable"), **extra):  # fmt: skip
    return {"id": qid, "instruction": f"How would someone from {country} answer the following "
            "question:\n\n", "input": "What is your opinion of the UN? \nHere are the "
            "options: \n", "options": list(options), "options_dist": dist, "data_type": "test",
            **extra}  # fmt: skip


def test_cao_published_layout_percent_dict_any_key_order_and_country(tmp_path):
    records = [
        _cao(17, "Mexico", {"B": 64.7887323943662, "A": 15.492957746478872,
                            "C": 19.718309859154928}),
        _cao(17, "Bolivia (Non-national sample)", {"A": 50.0, "C": 50.0}),  # B missing: 0
        _cao(18, "Mexico", {"A": 30.0, "B": 70.0}, options=("(A)Yes", "(B)No")),
    ]  # fmt: skip
    path = tmp_path / "sft_wvs_train.json"
    path.write_text(json.dumps(records, indent=4))
    got = read_cao_json(path)
    assert got.question_ids == ["17", "18"]
    q = got.questions["17"]
    assert q.text == "What is your opinion of the UN?"
    assert q.options == ("Very favorable", "Somewhat favorable", "Very unfavorable")
    assert list(got.frame["group"]) == [
        "country = Mexico", "country = Bolivia (Non-national sample)", "country = Mexico"
    ]  # fmt: skip
    assert set(got.frame["group_var"]) == {"country"}
    np.testing.assert_allclose(got.targets[0], [0.15492957746478872, 0.647887323943662,
                                                0.19718309859154928])  # fmt: skip
    np.testing.assert_allclose(got.targets[1], [0.5, 0.0, 0.5])
    assert got.summary["scale"] == "percent" and got.summary["data_type"]["17|country = Mexico"]
    assert got.frame["n"].tolist() == [0, 0, 0]  # no group sizes: no noise floor
    # int and string ids are one question; the writer keeps the file's id
    again = write_cao_json(got, tmp_path / "again.json")
    assert [r["id"] for r in json.loads(again.read_text())] == [17, 17, 18]
    path.write_text(json.dumps([{**records[0], "id": "17"}, records[1]]))
    assert read_cao_json(path).question_ids == ["17"]


def test_cao_pew_fractions_with_all_zero_and_mis_summing_records(tmp_path):
    good = [_cao(f"pew_{i}", c, {"A": 0.2, "B": 0.5, "C": 0.3})
            for i in range(3) for c in ("Kenya", "Chile")]  # fmt: skip
    zeros = [_cao("pew_9", c, {"A": 0.0, "B": 0.0, "C": 0.0}) for c in ("Kenya", "Chile")]
    over = _cao("pew_7", "Chile", {"A": 0.37, "B": 0.5, "C": 0.2})  # sums to 1.07
    rounded = _cao("pew_8", "Chile", {"A": 0.333, "B": 0.333, "C": 0.333})  # within 1 %
    path = tmp_path / "global_pew_test.json"
    path.write_text(json.dumps([*good, *zeros, over, rounded]))
    with pytest.warns(SkippedRecordsWarning) as rec:
        got = read_cao_json(path)
    message = str(rec[0].message)
    assert "skipped 3 of 10 records (2 all shares zero, 1 not summing to 1)" in message
    assert "record 7, question 'pew_9', group 'country = Kenya'" in message
    assert "strict=True" in message
    assert len(got) == 7 and got.summary["scale"] == "fraction"
    assert got.summary["skipped_records"]["count"] == 3
    np.testing.assert_allclose(got.targets[-1], [1 / 3] * 3)
    with pytest.raises(DistributionError, match=r"global_pew_test\.json.*record 7.*all zero"):
        read_cao_json(path, strict=True)
    # a file where nothing survives is an error, not an empty item set
    path.write_text(json.dumps(zeros))
    with pytest.raises(DistributionError, match="all zero"):
        read_cao_json(path)


def test_cao_same_id_with_other_options_becomes_a_second_question(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            [_cao(5, "Peru", {"A": 1.0}), _cao(5, "Chile", {"A": 1.0}, options=("(A)Yes", "(B)No"))]
        )
    )
    with pytest.warns(QuestionIdWarning, match="5 → 5, 5#2"):
        got = read_cao_json(path)
    assert got.question_ids == ["5", "5#2"]


@pytest.mark.parametrize(
    ("change", "error", "text"),
    [
        ({"options_dist": {"A": 60, "D": 40}}, DistributionError, "letter.*'D'.*not options"),
        ({"options_dist": [100.0]}, DistributionError, "1 values but the question has 2"),
        ({"options_dist": [-10.0, 110.0]}, DistributionError, "negative"),
        ({"options": "Yes"}, FileFormatError, "must be a list"),
        ({"options": ["(A)Yes", "No"]}, FileFormatError, "mix"),
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


def test_cao_mis_summing_percent_record_is_skipped_or_refused(tmp_path):
    good = {"instruction": "x", "input": "Q?", "qkey": "g", "options": ["Yes", "No"],
            "options_dist": [60, 40], "country": "Chile"}  # fmt: skip
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([good, {**good, "country": "Peru", "options_dist": [70, 20]}]))
    with pytest.warns(SkippedRecordsWarning, match=r"sum to 90 \(percent\), not 100"):
        assert len(read_cao_json(path)) == 1
    with pytest.raises(DistributionError, match=r"record 2.*sum to 90"):
        read_cao_json(path, strict=True)


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
