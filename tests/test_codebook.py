"""Codebooks: loading YAML/JSON, strict validation, duplicate keys, writing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from surveylm.codebook import (
    DEFAULT_MISSING_VALUES,
    Codebook,
    QuestionSpec,
    load_codebook,
    value_key,
)
from surveylm.errors import CodebookError, FileFormatError
from surveylm.survey import Question

YAML = """\
name: demo
id_column: respid
weight: wt
covariates: [age]
questions:
  pid:
    text: Party identification
    codes: {1: Democrat, 2: Independent, 3: Republican}
    ordinal: true
    missing: [-1]
  agree:
    options: [Yes, No]
    label: Agrees
  scale:
    options: [Low, High, Don't know]
    ordinal: [1, 2, -1]
  bare:
"""


def test_load_yaml_codebook(tmp_path):
    path = tmp_path / "cb.yaml"
    path.write_text(YAML)
    cb = load_codebook(path)
    assert cb.name == "demo" and cb.id_column == "respid" and cb.weight == "wt"
    assert list(cb.covariates) == ["age"] and cb.covariate_labels == {}
    assert list(cb.questions) == ["pid", "agree", "scale", "bare"]
    pid = cb.questions["pid"]
    assert pid.code_map() == {"1": "Democrat", "2": "Independent", "3": "Republican"}
    assert pid.ordinal_values(["a", "b", "c"]) == (1.0, 2.0, 3.0)
    # YAML 1.1 would turn Yes/No into booleans; the codebook keeps them as labels.
    assert cb.questions["agree"].options == ["Yes", "No"]
    assert cb.questions["agree"].ordinal_values(["Yes", "No"]) is None  # omitted = nominal
    assert cb.questions["scale"].ordinal_values(["Low", "High", "Don't know"]) == (1, 2, -1)
    assert cb.questions["bare"] == QuestionSpec()
    assert cb.missing == list(DEFAULT_MISSING_VALUES)
    assert cb.missing_keys("pid") == {value_key(v) for v in [*DEFAULT_MISSING_VALUES, -1]}


def test_nominal_spellings():
    for spelling in ("nominal", False, None):
        assert QuestionSpec(ordinal=spelling).ordinal_values(["a", "b"]) is None


def test_load_json_codebook(tmp_path):
    path = tmp_path / "cb.json"
    path.write_text(json.dumps({"questions": {"q": {"codes": {"1": "A", "2": "B"}}}}))
    cb = load_codebook(path)
    assert cb.questions["q"].code_map() == {"1": "A", "2": "B"}


def test_duplicate_question_id_yaml(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("questions:\n  q1:\n    text: a\n  q2:\n  q1:\n    text: b\n")
    with pytest.raises(CodebookError, match=r"dup\.yaml.*question 'q1'.*duplicate question id"):
        load_codebook(path)


def test_duplicate_question_id_json(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"questions": {"q1": {"text": "a"}, "q1": {"text": "b"}}}')
    with pytest.raises(CodebookError, match=r"dup\.json.*question 'q1'.*duplicate question id"):
        load_codebook(path)


def test_duplicate_nested_key(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("questions:\n  q1:\n    text: a\n    text: b\n")
    with pytest.raises(CodebookError, match=r"duplicate key 'text' in 'questions\.q1'"):
        load_codebook(path)


def test_typo_is_an_error(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("questions:\n  q1:\n    txet: a\n")
    with pytest.raises(CodebookError) as info:
        load_codebook(path)
    msg = str(info.value)
    assert "typo.yaml" in msg and "questions.q1.txet" in msg and "\n" not in msg


def test_bad_ordinal_value(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("questions:\n  q1:\n    ordinal: ordered\n")
    with pytest.raises(CodebookError, match=r"bad\.yaml.*questions\.q1\.ordinal"):
        load_codebook(path)


def test_invalid_yaml_and_missing_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("questions: [unclosed\n")
    with pytest.raises(FileFormatError, match=r"broken\.yaml.*invalid YAML"):
        load_codebook(path)
    with pytest.raises(FileFormatError, match=r"nope\.yaml.*no such"):
        load_codebook(tmp_path / "nope.yaml")
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('{"questions": ')
    with pytest.raises(FileFormatError, match=r"broken\.json.*invalid JSON at line 1"):
        load_codebook(bad_json)


def test_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(CodebookError, match=r"list\.yaml.*mapping"):
        load_codebook(path)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_write_round_trip(tmp_path, suffix):
    questions = [
        Question("pid", "Party?", ("Dem", "Ind", "Rep"), (1, 2, 3), label="Party"),
        Question("vote", "Vote?", ("Yes", "No", "On")),
    ]
    cb = Codebook.from_questions(questions, name="s", weight="w", covariates=["age"])
    path = cb.write(tmp_path / f"cb{suffix}")
    back = load_codebook(path)
    assert back == cb
    assert back.questions["vote"].options == ["Yes", "No", "On"]
    assert back.questions["pid"].ordinal_values(["Dem", "Ind", "Rep"]) == (1, 2, 3)
    assert back.questions["vote"].ordinal_values(["Yes", "No", "On"]) is None


def test_write_refuses_unknown_suffix(tmp_path):
    with pytest.raises(CodebookError, match=r"cb\.txt"):
        Codebook().write(tmp_path / "cb.txt")
    assert not (tmp_path / "cb.txt").exists()


@given(st.integers(-10_000, 10_000))
def test_value_key_unifies_number_spellings(n):
    assert value_key(n) == value_key(float(n)) == value_key(str(n)) == value_key(f" {n}.0 ")


@given(st.sampled_from(DEFAULT_MISSING_VALUES))
def test_value_key_ignores_case_and_spaces(label):
    assert value_key(f"  {label.upper()} ") == value_key(label)


def test_covariate_labels_mapping_form_round_trips(tmp_path):
    path = tmp_path / "cb.yaml"
    path.write_text("covariates:\n  age: {label: Age in years}\n  income:\nquestions:\n  v:\n")
    cb = load_codebook(path)
    assert list(cb.covariates) == ["age", "income"]
    assert cb.covariate_labels == {"age": "Age in years"}
    back = load_codebook(cb.write(tmp_path / "back.yaml"))
    assert back == cb and back.covariate_labels == {"age": "Age in years"}
    plain = Codebook(covariates=["age"]).to_dict()
    assert plain["covariates"] == ["age"]  # no labels: written as the plain list


def test_covariate_listed_twice_or_misspelt_spec_is_an_error(tmp_path):
    path = tmp_path / "cb.yaml"
    path.write_text("covariates: [age, age]\n")
    with pytest.raises(CodebookError, match="covariates listed twice"):
        load_codebook(path)
    path.write_text("covariates:\n  age: {lable: Age}\n")
    with pytest.raises(CodebookError, match="lable"):
        load_codebook(path)
