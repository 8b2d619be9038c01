"""Distribution files: SubPOP-style JSONL and long CSV, read/write round trips."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from surveylm import metrics as M
from surveylm.codebook import Codebook, QuestionSpec
from surveylm.errors import CodebookError, DataError, DistributionError, FileFormatError
from surveylm.io.cao import write_cao_json
from surveylm.io.distributions import (
    read_distributions,
    read_items,
    read_long_csv,
    read_subpop_jsonl,
    refusal_rates,
    sniff_layout,
    write_long_csv,
    write_subpop_jsonl,
)
from surveylm.io.records import SkippedRecordsWarning
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


def test_read_distributions_by_content_not_suffix(tmp_path, group_items):
    with pytest.raises(FileFormatError, match=r"d\.txt.*no such file"):
        read_distributions(tmp_path / "d.txt")
    other = tmp_path / "notes.txt"
    other.write_text("hello,world\n1,2\n")
    with pytest.raises(FileFormatError, match=r"notes\.txt.*not a distribution file.*SubPOP"):
        read_distributions(other)
    odd = tmp_path / "odd.json"
    odd.write_text('[{"a": 1}]')
    with pytest.raises(FileFormatError, match=r"odd\.json.*neither known layout.*\['a'\]"):
        read_distributions(odd)
    # SubPOP lines in a .json (or any) file, Cao records in a .jsonl, a long CSV as .txt
    subpop = write_subpop_jsonl(group_items, tmp_path / "subpop.json")
    assert sniff_layout(subpop) == "subpop"
    _assert_same(group_items, read_distributions(subpop))
    cao = write_cao_json(group_items, tmp_path / "cao.jsonl")
    assert sniff_layout(cao) == "cao"
    _assert_same(group_items, read_distributions(cao))
    long = write_long_csv(group_items, tmp_path / "long.txt")
    assert sniff_layout(long) == "long-csv"
    parquet = group_items.to_parquet(tmp_path / "items.bin")
    assert sniff_layout(parquet) == "parquet"
    _assert_same(group_items, read_items(parquet))
    with pytest.raises(FileFormatError, match="Parquet item set"):
        read_distributions(parquet)


# -- SubPOP's published layout ------------------------------------------------------------
TEXT = "Are we spending too much, too little or about the right amount on space exploration?"


def _subpop(group, responses, *, options=("Too little", "About right", "Too much", "Refused"),
            ordinal=(1.0, 2.0, 3.0), qkey="natspac", attribute="CREGION", refusal=0.0):  # fmt: skip
    return {"qkey": qkey, "attribute": attribute, "group": group, "question": TEXT,
            "options": list(options), "ordinal": list(ordinal), "responses": list(responses),
            "refusal_rate": refusal}  # fmt: skip


def _write_lines(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_subpop_published_layout_refused_option_descending_and_minus_one_ordinals(tmp_path):
    inst = ("Below average", "Average", "Above average", "Far above average",
            "Lived in institution", "Refused")  # fmt: skip
    records = [
        _subpop("Northeast", [0.3075625981071651, 0.41150426949738, 0.28093313239545503]),
        _subpop("South", [0.21, 0.51, 0.28], refusal=0.02),
        _subpop("South", [0.5, 0.3, 0.2], qkey="natroad", ordinal=(2.0, 1.5, 1.0)),
        _subpop("South", [0.1, 0.2, 0.3, 0.3, 0.1], qkey="famincome", options=inst,
                ordinal=(1, 2, 3, 4, -1)),
        _subpop("South", [0.6, 0.3, 0.1], qkey="tworef", options=("Yes", "No", "DK", "Refused"),
                ordinal=(1, 2, -1)),
    ]  # fmt: skip
    path = _write_lines(tmp_path / "subpop_eval.jsonl", records)
    items = read_distributions(path)
    q = items.questions["natspac"]
    assert q.options == ("Too little", "About right", "Too much") and q.ordinal == (1, 2, 3)
    assert items.summary["refusal_option"]["natspac"] == "Refused"
    assert items.summary["refusal_rate"] == {
        "natspac|CREGION = Northeast": 0.0, "natspac|CREGION = South": 0.02,
        "natroad|CREGION = South": 0.0, "famincome|CREGION = South": 0.0,
        "tworef|CREGION = South": 0.0,
    }  # fmt: skip
    assert refusal_rates(items)["natspac|CREGION = South"] == 0.02
    assert items.questions["natroad"].ordinal == (2.0, 1.5, 1.0)
    assert items.questions["famincome"].ordinal == (1, 2, 3, 4, -1)
    assert items.questions["famincome"].options[-1] == "Lived in institution"
    # the Wasserstein distance orders by value and drops the -1 option; TV keeps it
    p, uniform = items.targets[2], np.full(3, 1 / 3)
    assert M.wasserstein(p, uniform, [2.0, 1.5, 1.0]) == pytest.approx(
        scipy.stats.wasserstein_distance([2, 1.5, 1], [2, 1.5, 1], p, uniform))  # fmt: skip
    t = items.targets[3]
    expected = scipy.stats.wasserstein_distance([1, 2, 3, 4], [1, 2, 3, 4], t[:4] / t[:4].sum(),
                                                np.full(4, 0.25)) / 3  # fmt: skip
    assert M.wasserstein(t, np.full(5, 0.2), [1, 2, 3, 4, -1]) == pytest.approx(expected)
    # written back in the same layout: the refusal option, K - 1 ordinals and responses
    out = write_subpop_jsonl(items, tmp_path / "again.jsonl")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    for rec, orig in zip(lines, records, strict=True):
        assert rec["options"] == orig["options"] and rec["ordinal"] == orig["ordinal"]
        assert rec["refusal_rate"] == orig["refusal_rate"]
        np.testing.assert_allclose(rec["responses"], orig["responses"], atol=1e-12)
        # what SubPOP's own data preparation does with a line: responses + [refusal_rate]
        assert len(rec["responses"] + [rec["refusal_rate"]]) == len(rec["options"])
    _assert_same(items, read_subpop_jsonl(out), sizes=False)


def test_subpop_writer_marks_unknown_refusal_and_plain_layout(tmp_path, group_items):
    path = write_subpop_jsonl(group_items, tmp_path / "d.jsonl")
    rec = json.loads(path.read_text().splitlines()[0])
    assert rec["options"][-1] == "Refused" and len(rec["responses"]) == len(rec["options"]) - 1
    assert rec["refusal_rate"] == 0.0 and rec["refusal_rate_known"] is False
    assert "refusal_rate" not in read_subpop_jsonl(path).summary  # unknown stays unknown
    plain = write_subpop_jsonl(group_items, tmp_path / "p.jsonl", refusal_option=None)
    rec = json.loads(plain.read_text().splitlines()[0])
    assert rec["options"] == ["Never", "Sometimes", "Always", "DK"] and rec["refusal_rate"] is None
    _assert_same(group_items, read_subpop_jsonl(plain))


def test_subpop_mis_summing_and_empty_lines_skipped_with_one_warning_or_refused(tmp_path):
    records = [_subpop("Northeast", [0.3, 0.4, 0.3]), _subpop("South", [0.0, 0.0, 0.0]),
               _subpop("West", [0.3, 0.4, 0.4]), _subpop("Midwest", [0.2, 0.2, 0.6])]  # fmt: skip
    path = _write_lines(tmp_path / "s.jsonl", records)
    with pytest.warns(SkippedRecordsWarning) as caught:
        items = read_subpop_jsonl(path)
    assert len(caught) == 1
    msg = str(caught[0].message)
    assert "skipped 2 of 4 records (1 all shares zero, 1 not summing to 1)" in msg
    assert "line 2, question 'natspac', group 'CREGION = South'" in msg
    assert "line 3" in msg and "sum to 1.1, not 1" in msg
    assert items.frame["group"].tolist() == ["CREGION = Northeast", "CREGION = Midwest"]
    with pytest.raises(DistributionError, match=r"s\.jsonl', line 2, question 'natspac'.*zero"):
        read_subpop_jsonl(path, strict=True)


def test_subpop_mis_shaped_lines_are_one_clear_error(tmp_path):
    bad = _subpop("South", [0.5, 0.5], options=("Yes", "No", "Maybe"), ordinal=(1, 2))
    path = _write_lines(tmp_path / "s.jsonl", [_subpop("North", [0.3, 0.4, 0.3]), bad])
    with pytest.raises(DistributionError, match=r"s\.jsonl', line 2, question 'natspac'.*"
                       r"only a trailing refusal option.*'Maybe'"):  # fmt: skip
        read_subpop_jsonl(path)
    path = _write_lines(
        tmp_path / "s.jsonl",
        [_subpop("North", [0.3, 0.4, 0.3]), _subpop("South", [0.3, 0.4, 0.3], ordinal=(1, 2))],
    )
    with pytest.raises(CodebookError, match=r"s\.jsonl', line 2: .*2 ordinal values for 3"):
        read_subpop_jsonl(path)


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
