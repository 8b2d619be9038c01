"""Bad input never gives a traceback or a silent wrong number (issue 2).

Each test feeds one kind of bad input and checks both the error class (a
:class:`SurveyLMError` subclass) and that the message says *where* (file, line/row,
column, question or group) and *what* was expected.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from surveylm.codebook import Codebook, QuestionSpec, load_codebook
from surveylm.errors import (
    CodebookError,
    DataError,
    DistributionError,
    FileFormatError,
    SurveyLMError,
)
from surveylm.io import distributions as dist_io
from surveylm.io.distributions import read_long_csv, read_subpop_jsonl, write_subpop_jsonl
from surveylm.io.surveys import read_survey, survey_from_dataframe
from surveylm.items import Group, build_group_items, build_respondent_items
from surveylm.survey import Question, Survey


def _jsonl(tmp_path: Path, *records: dict | str) -> Path:
    path = tmp_path / "dist.jsonl"
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rec(**overrides) -> dict:
    rec = {"qkey": "q7", "attribute": "party", "group": "Dem", "question": "Q?",
           "options": ["a", "b", "c"], "responses": [0.2, 0.3, 0.5]}  # fmt: skip
    return {**rec, **overrides}


def _raise(exc_type: type[SurveyLMError], pattern: str):
    return pytest.raises(exc_type, match=pattern)


# -- probabilities ------------------------------------------------------------------------
def test_negative_probabilities(tmp_path):
    path = _jsonl(tmp_path, _rec(), _rec(group="Rep", responses=[-0.1, 0.6, 0.5]))
    with _raise(DistributionError, r"dist\.jsonl', line 2, question 'q7'.*Rep.*negative"):
        read_subpop_jsonl(path)


def test_nan_probabilities(tmp_path):
    path = _jsonl(tmp_path, '{"qkey": "q7", "attribute": "party", "group": "Dem", '
                  '"question": "Q?", "options": ["a", "b"], "responses": [NaN, 1.0]}')  # fmt: skip
    with _raise(DistributionError, r"dist\.jsonl', line 1, question 'q7'.*NaN"):
        read_subpop_jsonl(path)


def test_probabilities_not_summing_to_one(tmp_path):
    path = _jsonl(tmp_path, _rec(responses=[0.2, 0.3, 0.4]))
    with _raise(DistributionError, r"dist\.jsonl', line 1, question 'q7'.*sum to 0\.9, not 1"):
        read_subpop_jsonl(path)


def test_long_csv_group_not_summing_to_one(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("question,option,group_var,group,share\nq1,a,sex,F,0.5\nq1,b,sex,F,0.4\n")
    with _raise(DistributionError, r"long\.csv', question 'q1', group 'sex = F'.*sum to 0\.9"):
        read_long_csv(path)


def test_long_csv_negative_share(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("question,option,group_var,group,share\nq1,a,sex,F,-0.5\nq1,b,sex,F,1.5\n")
    with _raise(DistributionError, r"long\.csv', line 2, question 'q1', group 'sex = F'"):
        read_long_csv(path)


def test_option_count_differs_from_target_length(tmp_path):
    path = _jsonl(tmp_path, _rec(responses=[0.5, 0.5]))
    with _raise(DistributionError, r"line 1, question 'q7'.*2 values but the question has 3"):
        read_subpop_jsonl(path)


def test_invalid_json_line_and_missing_keys(tmp_path):
    path = _jsonl(tmp_path, _rec(), "{not json")
    with _raise(FileFormatError, r"dist\.jsonl', line 2: invalid JSON"):
        read_subpop_jsonl(path)
    rec = _rec()
    del rec["options"]
    with _raise(FileFormatError, r"dist\.jsonl', line 1: missing key\(s\) options"):
        read_subpop_jsonl(_jsonl(tmp_path, rec))


# -- survey contents ----------------------------------------------------------------------
def test_answer_label_not_in_codebook(tmp_path):
    path = tmp_path / "s.csv"
    pd.DataFrame({"vote": ["Clinton", "Dole", "Bush"]}).to_csv(path, index=False)
    cb = Codebook(questions={"vote": QuestionSpec(options=["Clinton", "Dole", "Perot"])})
    with _raise(DataError, r"s\.csv', row 3, column 'vote': answer 'Bush' is not in the codebook"):
        read_survey(path, cb)


def test_code_not_in_codebook_codes(tmp_path):
    path = tmp_path / "s.sav"
    pyreadstat.write_sav(pd.DataFrame({"pid": [1.0, 2.0, 7.0]}), str(path))
    cb = Codebook(questions={"pid": QuestionSpec(codes={1: "Dem", 2: "Rep"})})
    with _raise(DataError, r"s\.sav', row 3, column 'pid': answer '7'"):
        read_survey(path, cb)


def test_duplicate_question_ids_in_codebook(tmp_path):
    path = tmp_path / "cb.yaml"
    path.write_text("questions:\n  pid: {text: Party}\n  vote: {}\n  pid: {text: Again}\n")
    with _raise(CodebookError, r"cb\.yaml', question 'pid': duplicate question id \(line 4\)"):
        load_codebook(path)


def test_duplicate_question_ids_in_csv_header(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("pid,vote,pid\n1,a,2\n")
    with _raise(DataError, r"s\.csv', column 'pid': duplicate column name \(columns 1 and 3\)"):
        read_survey(path)


def test_duplicate_question_objects():
    qs = [Question("q", "Q", ("a", "b")), Question("q", "Q again", ("a", "b"))]
    with _raise(CodebookError, r"duplicate question ids 'q'"):
        Survey(pd.DataFrame({"q": ["a"]}), qs)


@pytest.mark.parametrize("bad", ["-1.5", "nan", "", "heavy"])
def test_negative_or_nan_weights(tmp_path, bad):
    path = tmp_path / "s.csv"
    path.write_text(f"q,wt\na,1.0\nb,{bad}\na,2.0\n")
    with _raise(DataError, r"s\.csv', row 2, column 'wt': weights must be finite, non-negative"):
        read_survey(path, weight="wt")


def test_codebook_question_absent_from_data(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("vote\nClinton\n")
    cb = Codebook(questions={"vote": QuestionSpec(), "pid": QuestionSpec(options=["D", "R"])})
    with _raise(CodebookError, r"s\.csv', question 'pid': codebook question 'pid' has no column"):
        read_survey(path, cb)


def _survey() -> Survey:
    cb = Codebook(
        questions={
            "pid": QuestionSpec(options=["Dem", "Ind", "Rep"]),
            "vote": QuestionSpec(options=["Clinton", "Dole"]),
            "never": QuestionSpec(options=["Yes", "No"]),
        }
    )
    df = pd.DataFrame({"pid": ["Dem", "Ind", "Dem", "Ind"], "vote": ["Clinton", "Dole"] * 2,
                       "never": ["Refused", None, "Don't know", None]})  # fmt: skip
    return survey_from_dataframe(df, cb, name="toy")


def test_empty_group():
    with _raise(DataError, r"group 'pid = Rep' is empty: no respondent matches it"):
        build_group_items(_survey(), ["vote"], groups=[Group.of(pid="Rep")], min_n=1)


def test_question_with_no_valid_answers():
    survey = _survey()  # loading is allowed ...
    assert not survey.answered("never").any()
    with _raise(DataError, r"question 'never': no valid answers in survey 'toy'"):
        build_group_items(survey, ["never"], by="pid", min_n=1)  # ... building items is not
    with _raise(DataError, r"question 'never': no valid answers"):
        build_respondent_items(survey, "never", ["pid"])


# -- files --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gone.csv", "gone.sav", "gone.parquet", "gone.dta"])
def test_missing_file(tmp_path, name):
    with _raise(FileFormatError, rf"{name}': no such file"):
        read_survey(tmp_path / name)


@pytest.mark.parametrize(
    ("name", "kind"), [("junk.sav", "SPSS"), ("junk.dta", "Stata"), ("junk.parquet", "Parquet")]
)
def test_unreadable_file(tmp_path, name, kind):
    path = tmp_path / name
    path.write_bytes(b"this is not a statistical file at all\n" * 20)
    with _raise(FileFormatError, rf"{name}': not a readable {kind} file"):
        read_survey(path)


def test_folder_instead_of_file(tmp_path):
    with _raise(FileFormatError, r"is a folder"):
        read_survey(tmp_path)


def _big_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"q": rng.integers(1, 4, 3000).astype(float), "w": rng.uniform(size=3000)})


@pytest.mark.parametrize(("suffix", "kind"), [(".sav", "SPSS"), (".dta", "Stata"),
                                              (".parquet", "Parquet")])  # fmt: skip
def test_truncated_file(tmp_path, suffix, kind):
    full = tmp_path / f"full{suffix}"
    df = _big_frame()
    if suffix == ".sav":
        pyreadstat.write_sav(df, str(full), variable_value_labels={"q": {1: "a", 2: "b", 3: "c"}})
    elif suffix == ".dta":
        pyreadstat.write_dta(df, str(full))
    else:
        df.to_parquet(full)
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    assert read_survey(full).n_respondents == 3000  # the intact file reads
    with _raise(FileFormatError, rf"cut\{suffix}': not a readable {kind} file"):
        read_survey(cut)


def test_truncated_csv(tmp_path):
    path = tmp_path / "cut.csv"
    path.write_text("id,q,w\n1,yes,1.0\n2,no,0.5\n3,ye")  # last row cut mid-way
    with _raise(FileFormatError, r"cut\.csv', row 3: line 4 has 2 fields, expected 3"):
        read_survey(path)


def test_ragged_csv_row(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("id,q\n1,yes\n2,no,extra\n3,yes\n")
    with _raise(FileFormatError, r"ragged\.csv', row 2: line 3 has 3 fields, expected 2"):
        read_survey(path)


def test_non_utf8_csv(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("q\nyes\nno\nCaf\xe9\n".encode("latin-1"))
    with _raise(FileFormatError, r"latin\.csv': not valid utf-8: byte 0xe9 at byte offset 12 "
                r"\(line 4\); pass the file's encoding, e.g. encoding="):  # fmt: skip
        read_survey(path)


def test_non_utf8_distribution_files(tmp_path):
    path = tmp_path / "long.csv"
    text = "question,option,group_var,group,share\nq,caf\xe9,g,x,0.5\nq,th\xe9,g,x,0.5\n"
    path.write_bytes(text.encode("cp1252"))
    with _raise(FileFormatError, r"long\.csv': not valid utf-8.*byte offset 43 \(line 2\)"):
        read_long_csv(path)
    assert read_long_csv(path, encoding="cp1252").questions["q"].options == ("café", "thé")
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_bytes(json.dumps(_rec(question="caf\xe9"), ensure_ascii=False).encode("latin-1"))
    with _raise(FileFormatError, r"d\.jsonl': not valid utf-8.*\(line 1\)"):
        read_subpop_jsonl(jsonl)


def test_empty_csv(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("\n")
    with _raise(FileFormatError, r"empty\.csv': the file is empty"):
        read_survey(path)


# -- atomic output ------------------------------------------------------------------------
def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    survey = _survey()
    items = build_group_items(survey, ["vote"], by="pid", min_n=1)
    path = tmp_path / "out.jsonl"
    write_subpop_jsonl(items, path)
    before = path.read_bytes()
    calls = {"n": 0}
    real_dumps = json.dumps

    def failing_dumps(obj, **kwargs):
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            raise KeyboardInterrupt("simulated crash while writing")
        return real_dumps(obj, **kwargs)

    monkeypatch.setattr(dist_io.json, "dumps", failing_dumps)
    with pytest.raises(KeyboardInterrupt):
        write_subpop_jsonl(items, path)
    with pytest.raises(KeyboardInterrupt):
        write_subpop_jsonl(items, tmp_path / "new.jsonl")
    assert calls["n"] >= 3  # the writer really was interrupted after its first line
    assert path.read_bytes() == before  # the finished file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]  # no temp, no partial
