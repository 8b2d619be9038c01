"""Distribution files: SubPOP-style JSONL and long CSV, read/write round trips."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surveylm.codebook import Codebook, QuestionSpec
from surveylm.errors import DataError, DistributionError, FileFormatError
from surveylm.io.distributions import (
    read_distributions,
    read_long_csv,
    read_subpop_jsonl,
    write_long_csv,
    write_subpop_jsonl,
)
from surveylm.items import Group, ItemSet, build_group_items, build_respondent_items
from surveylm.survey import Question, Survey


@pytest.fixture
def group_items() -> ItemSet:
    rng = np.random.default_rng(7)
    n = 300
    questions = [
        Question("pid", "Party?", ("Dem", "Ind", "Rep")),
        Question("educ", "Education?", ("HS", "College")),
        Question("trust", "Trust government?", ("Never", "Sometimes", "Always", "DK"),
                 (1, 2, 3, -1)),
    ]  # fmt: skip
    data = pd.DataFrame({q.id: rng.choice(q.options, n) for q in questions})
    survey = Survey(data, questions, rng.uniform(0.5, 2.0, n), name="toy")
    return build_group_items(
        survey, ["trust"], by=["pid", ["pid", "educ"]],
        groups=[Group.of(pid=["Dem", "Ind"])], min_n=20,
    )  # fmt: skip


def _assert_same(a: ItemSet, b: ItemSet, *, sizes: bool = True) -> None:
    assert a.item_ids.tolist() == b.item_ids.tolist()
    assert a.frame["group_var"].tolist() == b.frame["group_var"].tolist()
    assert a.frame["context"].tolist() == b.frame["context"].tolist()
    for x, y in zip(a.targets, b.targets, strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-12)
    if sizes:
        assert a.frame["n"].tolist() == b.frame["n"].tolist()
        np.testing.assert_allclose(a.frame["n_eff"], b.frame["n_eff"])


def test_jsonl_round_trip(tmp_path, group_items):
    path = write_subpop_jsonl(group_items, tmp_path / "d.jsonl")
    back = read_subpop_jsonl(path)
    _assert_same(group_items, back)
    assert back.questions["trust"] == replace(group_items.questions["trust"], source="toy")
    assert set(back.frame["source"]) == {"toy"}
    first = json.loads(path.read_text().splitlines()[0])
    assert {"qkey", "attribute", "group", "question", "options", "ordinal", "responses",
            "refusal_rate"} <= set(first)  # fmt: skip
    assert first["ordinal"] == [1, 2, 3, -1]


def test_long_csv_round_trip(tmp_path, group_items):
    path = write_long_csv(group_items, tmp_path / "d.csv")
    head = path.read_text().splitlines()[0]
    assert head == "question,option,group_var,group,share,n,n_eff"
    cb = Codebook(
        name="toy",
        questions={"trust": QuestionSpec(text="Trust government?",
                                          options=["Never", "Sometimes", "Always", "DK"],
                                          ordinal=[1, 2, 3, -1])},
    )  # fmt: skip
    back = read_long_csv(path, cb)
    # one-value groups and intersections round-trip exactly; a group with several values
    # per attribute keeps its target but is read back under its label
    exact = np.arange(len(group_items) - 1)
    _assert_same(group_items.subset(exact), back.subset(exact))
    assert back.questions["trust"] == replace(group_items.questions["trust"], source="toy")
    np.testing.assert_allclose(back.targets[-1], group_items.targets[-1], atol=1e-12)
    assert back.frame["group"].iloc[-1] == "pid = pid ∈ {Dem, Ind}"


def test_jsonl_without_sizes(tmp_path):
    lines = [
        {"qkey": "q1", "attribute": "region", "group": "North", "question": "Happy?",
         "options": ["Yes", "No"], "ordinal": None, "responses": [0.25, 0.75],
         "refusal_rate": 0.1},
        {"qkey": "q1", "attribute": "region", "group": "South", "question": "Happy?",
         "options": "['Yes', 'No']", "responses": "[0.5, 0.5]"},
        {"qkey": "q2", "attribute": "region", "group": "South", "question": "Scale?",
         "options": ["Low", "Mid", "High"], "ordinal": [1, 2, 3],
         "responses": [0.2, 0.3, 0.5004]},
    ]  # fmt: skip
    path = tmp_path / "subpop.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    items = read_distributions(path)
    assert len(items) == 3 and items.kinds == {"group"}
    assert items.frame["n"].tolist() == [0, 0, 0]
    assert all(math.isnan(x) for x in items.frame["n_eff"])
    assert items.frame["weight"].tolist() == [1.0, 1.0, 1.0]
    assert items.frame["group"].tolist()[0] == "region = North"
    assert items.frame["context"].tolist()[0] == {"region": ["North"]}
    assert items.questions["q2"].ordinal == (1.0, 2.0, 3.0)
    assert items.questions["q1"].ordinal is None and items.questions["q1"].source == "subpop"
    np.testing.assert_allclose(items.targets[2].sum(), 1.0)  # renormalised within tolerance
    assert items.summary["refusal_rate"] == {"q1|region = North": 0.1}
    # refusal rates survive a round trip
    back = read_subpop_jsonl(write_subpop_jsonl(items, tmp_path / "again.jsonl"))
    assert back.summary["refusal_rate"] == {"q1|region = North": 0.1}
    assert "n" not in json.loads((tmp_path / "again.jsonl").read_text().splitlines()[0])
    # unknown sizes survive the item-set Parquet format too
    stored = ItemSet.read_parquet(items.to_parquet(tmp_path / "items.parquet"))
    assert stored.frame["n"].tolist() == [0, 0, 0] and stored.frame["n_eff"].isna().all()


def test_long_csv_order_of_appearance_and_zero_fill(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text(
        "question,option,group_var,group,share\nq,b,sex,F,0.6\nq,a,sex,F,0.4\nq,c,sex,M,1.0\n"
    )
    items = read_long_csv(path)
    assert items.questions["q"].options == ("b", "a", "c")
    np.testing.assert_allclose(items.targets[0], [0.6, 0.4, 0.0])
    np.testing.assert_allclose(items.targets[1], [0.0, 0.0, 1.0])
    assert items.questions["q"].text == "q" and items.questions["q"].source == "long"


def test_long_csv_codebook_order(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("question,option,group_var,group,share\nq,High,sex,F,0.7\nq,Low,sex,F,0.3\n")
    cb = Codebook(questions={"q": QuestionSpec(codes={1: "Low", 2: "High"}, ordinal=True)})
    items = read_long_csv(path, cb)
    assert items.questions["q"].options == ("Low", "High")
    assert items.questions["q"].ordinal == (1.0, 2.0)
    np.testing.assert_allclose(items.targets[0], [0.3, 0.7])


def test_long_csv_option_not_in_codebook(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("question,option,group_var,group,share\nq,Maybe,sex,F,1.0\n")
    cb = Codebook(questions={"q": QuestionSpec(options=["Yes", "No"])})
    with pytest.raises(DataError, match=r"long\.csv.*question 'q'.*sex = F.*'Maybe'"):
        read_long_csv(path, cb)
    with pytest.raises(DataError, match=r"long\.csv.*question 'q'.*not in the codebook"):
        read_long_csv(path, Codebook(questions={"other": QuestionSpec()}))


def test_long_csv_missing_column_and_duplicates(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("question,option,group,share\nq,a,F,1.0\n")
    with pytest.raises(FileFormatError, match=r"long\.csv.*missing column\(s\) group_var"):
        read_long_csv(path)
    path.write_text("question,option,group_var,group,share\nq,a,s,F,0.5\nq,a,s,F,0.5\n")
    with pytest.raises(DataError, match=r"long\.csv.*line 3.*'a' appears twice"):
        read_long_csv(path)


def test_jsonl_inconsistent_question(tmp_path):
    base = {"qkey": "q", "attribute": "a", "question": "Q?", "options": ["x", "y"],
            "responses": [0.5, 0.5]}  # fmt: skip
    lines = [{**base, "group": "1"}, {**base, "group": "2", "options": ["x", "z"]}]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    with pytest.raises(DataError, match=r"d\.jsonl.*line 2.*question 'q'.*line 1"):
        read_subpop_jsonl(path)
    path.write_text("\n".join(json.dumps({**base, "group": "1"}) for _ in range(2)))
    with pytest.raises(DataError, match=r"d\.jsonl.*'q\|a = 1' appears twice"):
        read_subpop_jsonl(path)


def test_jsonl_bad_refusal_rate_and_empty(tmp_path):
    rec = {"qkey": "q", "attribute": "a", "group": "g", "question": "Q?",
           "options": ["x", "y"], "responses": [0.5, 0.5], "refusal_rate": 1.5}  # fmt: skip
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(rec))
    with pytest.raises(DistributionError, match=r"d\.jsonl.*line 1.*refusal_rate"):
        read_subpop_jsonl(path)
    path.write_text("\n\n")
    with pytest.raises(DataError, match=r"d\.jsonl.*no distributions"):
        read_subpop_jsonl(path)


def test_writers_refuse_respondent_items(tmp_path):
    survey = Survey(pd.DataFrame({"q": ["a", "b"], "f": ["x", "y"]}),
                    [Question("q", "Q", ("a", "b")), Question("f", "F", ("x", "y"))])  # fmt: skip
    items = build_respondent_items(survey, "q", ["f"])
    with pytest.raises(DataError, match="group items only"):
        write_subpop_jsonl(items, tmp_path / "d.jsonl")
    with pytest.raises(DataError, match="group items only"):
        write_long_csv(items, tmp_path / "d.csv")
    assert not list(tmp_path.iterdir())


def test_read_distributions_unknown_suffix(tmp_path):
    with pytest.raises(FileFormatError, match=r"d\.txt.*\.jsonl or \.csv"):
        read_distributions(tmp_path / "d.txt")


def test_items_from_file_survive_parquet(tmp_path, group_items):
    items = read_long_csv(write_long_csv(group_items, tmp_path / "d.csv"))
    back = ItemSet.read_parquet(items.to_parquet(tmp_path / "items.parquet"))
    _assert_same(items, back)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=2, max_size=6).filter(
            lambda xs: sum(xs) > 1e-3
        ),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from(["jsonl", "csv"]),
)
def test_random_distributions_round_trip(tmp_path_factory, raw, fmt):
    rows, questions = [], {}
    for i, xs in enumerate(raw):
        p = np.asarray(xs) / sum(xs)
        q = Question(f"q{i}", f"Question {i}?", tuple(f"opt {j}" for j in range(len(xs))))
        questions[q.id] = q
        rows.append({
            "item_id": f"{q.id}|g = x", "kind": "group", "question_id": q.id, "source": "s",
            "respondent_id": None, "group_var": "g", "group": "g = x", "context": {"g": ["x"]},
            "target": p, "n": 10 + i, "n_eff": 5.5 + i, "weight": 1.0,
        })  # fmt: skip
    items = ItemSet(pd.DataFrame(rows), questions)
    folder = tmp_path_factory.mktemp("rt")
    if fmt == "jsonl":
        back = read_subpop_jsonl(write_subpop_jsonl(items, folder / "d.jsonl"))
    else:
        back = read_long_csv(write_long_csv(items, folder / "d.csv"))
    # the long CSV keeps only options that appear, in order: all of them here
    _assert_same(items, back)
    assert [q.options for q in back.questions.values()] == [q.options for q in questions.values()]
