"""Reading surveys: CSV, Parquet, SPSS and Stata round trips, codebooks, missing values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from surveylm.codebook import DEFAULT_MISSING_VALUES, Codebook, QuestionSpec
from surveylm.errors import CodebookError, FileFormatError
from surveylm.io.surveys import FileMeta, read_survey, survey_from_dataframe
from surveylm.items import build_group_items

CODEBOOK = """\
name: demo
id_column: respid
weight: wt
covariates: [age]
missing: ["Don't know", Refused, -1]
questions:
  pid:
    text: Party identification
    codes: {1: Democrat, 2: Independent, 3: Republican}
    ordinal: true
  vote:
    text: Vote choice
    options: [Clinton, Dole, Perot]
    label: Vote
"""


def _raw_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "respid": [101, 102, 103, 104, 105, 106],
            "pid": [1, 2, 3, -1, 3, 1],
            "vote": ["Clinton", "Dole", "Don't know", "Perot", "Refused", "Clinton"],
            "age": [25, 40, 61, 33, 50, -1],
            "wt": [1.0, 2.0, 0.5, 1.5, 1.0, 1.0],
            "extra": ["x", "y", "x", "y", "x", "y"],
        }
    )


def _check_codebook_survey(s):
    assert s.name == "demo"
    assert list(s.data.index) == [101, 102, 103, 104, 105, 106]
    pid = s.question("pid")
    assert pid.options == ("Democrat", "Independent", "Republican")
    assert pid.ordinal == (1.0, 2.0, 3.0)
    assert pid.text == "Party identification" and pid.source == "demo"
    vote = s.question("vote")
    assert vote.options == ("Clinton", "Dole", "Perot") and vote.ordinal is None
    assert vote.label == "Vote"
    assert s.answers("pid").astype(object).tolist()[:4] == [
        "Democrat", "Independent", "Republican", np.nan,
    ]  # fmt: skip
    assert s.codes("vote").tolist() == [0, 1, -1, 2, -1, 0]
    assert s.covariates == ["age"] and "extra" not in s.data.columns
    assert np.isnan(s.data["age"].iloc[5])  # -1 is a configured missing code
    assert s.weights.tolist() == [1.0, 2.0, 0.5, 1.5, 1.0, 1.0]


def test_csv_with_codebook(tmp_path):
    (tmp_path / "cb.yaml").write_text(CODEBOOK)
    _raw_frame().to_csv(tmp_path / "s.csv", index=False)
    _check_codebook_survey(read_survey(tmp_path / "s.csv", tmp_path / "cb.yaml"))


def test_dataframe_with_codebook_object(tmp_path):
    (tmp_path / "cb.yaml").write_text(CODEBOOK)
    _check_codebook_survey(survey_from_dataframe(_raw_frame(), str(tmp_path / "cb.yaml")))


def test_csv_without_codebook_infers_questions(tmp_path):
    df = pd.DataFrame(
        {
            "q_text": ["b", "a", "Refused", "c", "a", " don't know "],
            "q_num_text": ["10", "9", "10", "2", "9", "2"],
            "free": [f"comment {i}" for i in range(6)],
            "age": [20, 30, 40, 50, 60, 70],
        }
    )
    df.to_csv(tmp_path / "plain.csv", index=False)
    s = read_survey(tmp_path / "plain.csv", max_options=5)
    assert s.name == "plain"
    assert set(s.questions) == {"q_text"}
    assert s.question("q_text").options == ("a", "b", "c")
    assert s.codes("q_text").tolist() == [1, 0, -1, 2, 0, -1]
    assert s.covariates == ["q_num_text", "free", "age"]  # numbers read as numbers → covariate
    s2 = read_survey(tmp_path / "plain.csv", missing=[])  # no missing values at all
    assert "Refused" in s2.question("q_text").options
    assert s2.question("free").n_options == 6


def test_numeric_like_text_sorted_numerically():
    df = pd.DataFrame({"q": pd.Series(["10", "9", "2", "9"], dtype=object)})
    assert survey_from_dataframe(df).question("q").options == ("2", "9", "10")


def test_missing_argument_adds_numeric_codes():
    df = pd.DataFrame({"q": ["yes", "no", "-9", "DK"]})
    s = survey_from_dataframe(df, missing=[*DEFAULT_MISSING_VALUES, -9])
    assert s.question("q").options == ("no", "yes")
    assert s.answered("q").tolist() == [True, True, False, False]


def test_per_question_missing_and_protected_options():
    cb = Codebook(
        questions={
            "q": QuestionSpec(options=["Yes", "No", "Don't know"], ordinal=[1, 2, -1]),
            "r": QuestionSpec(missing=["skip"]),
        }
    )
    df = pd.DataFrame({"q": ["Yes", "Don't know", "No"], "r": ["a", "skip", "b"]})
    s = survey_from_dataframe(df, cb)
    assert s.codes("q").tolist() == [0, 2, 1]  # listed option: kept, not missing
    assert s.question("q").ordinal == (1.0, 2.0, -1.0)
    assert s.codes("r").tolist() == [0, -1, 1]


def test_parquet_round_trip_keeps_category_order(tmp_path):
    df = pd.DataFrame(
        {
            "agree": pd.Categorical(
                ["Agree", "Disagree", None, "Neutral"],
                categories=["Disagree", "Neutral", "Agree", "Refused"],
            ),
            "w": [1.0, 2.0, 3.0, 4.0],
        }
    )
    df.to_parquet(tmp_path / "s.parquet")
    s = read_survey(tmp_path / "s.parquet", weight="w")
    assert s.question("agree").options == ("Disagree", "Neutral", "Agree")  # 'Refused' missing
    assert s.codes("agree").tolist() == [2, 0, -1, 1]
    assert s.weights.tolist() == [1.0, 2.0, 3.0, 4.0]


def _spss_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1.0, 2, 3, 4, 5, 6],
            "pid": [1.0, 2, 3, 9, 2, 8],  # 8, 9: user-missing (SPSS missing range)
            "sex": [1.0, 2, 1, 2, -1, 1],  # -1 labelled "Don't know"
            "lr": [-2.0, -1, 0, 1, 2, 0],  # left-right scale, negative codes
            "age": [20.0, 31, 45, 52, 67, 38],
            "name": ["a", "b", "a", "b", "a", "b"],
            "wt": [1.0, 1, 2, 2, 1, 1],
        }
    )


def test_spss_round_trip(tmp_path):
    path = tmp_path / "s.sav"
    pyreadstat.write_sav(
        _spss_frame(),
        str(path),
        column_labels={"pid": "Party identification", "sex": "Sex of respondent"},
        variable_value_labels={
            "pid": {1: "Democrat", 2: "Independent", 3: "Republican", 8: "Refused", 9: "NAP"},
            "sex": {1: "Male", 2: "Female", -1: "Don't know"},
            "lr": {-2: "Far left", 2: "Far right"},
        },
        missing_ranges={"pid": [{"lo": 8, "hi": 9}]},
        variable_measure={"pid": "ordinal", "sex": "nominal", "lr": "scale", "age": "scale"},
    )
    s = read_survey(path, weight="wt", id_column="id")
    assert set(s.questions) == {"pid", "sex", "lr", "name"}
    pid = s.question("pid")
    assert pid.text == "Party identification"
    assert pid.options == ("Democrat", "Independent", "Republican")  # user-missing dropped
    assert pid.ordinal == (1.0, 2.0, 3.0)
    assert s.codes("pid").tolist() == [0, 1, 2, -1, 1, -1]
    sex = s.question("sex")
    assert sex.options == ("Male", "Female") and sex.ordinal is None
    assert s.codes("sex").tolist() == [0, 1, 0, 1, -1, 0]
    lr = s.question("lr")  # unlabelled codes keep the code; scale shifted to start at 0
    assert lr.options == ("Far left", "-1", "0", "1", "Far right")
    assert lr.ordinal == (0.0, 1.0, 2.0, 3.0, 4.0)
    assert s.covariates == ["age"]
    assert list(s.data.index) == [1, 2, 3, 4, 5, 6]
    assert s.weights.sum() == 8.0


def test_spss_with_codebook_overrides_labels(tmp_path):
    path = tmp_path / "s.sav"
    pyreadstat.write_sav(
        _spss_frame(), str(path),
        variable_value_labels={"pid": {1: "D", 2: "I", 3: "R", 8: "Refused", 9: "NAP"}},
        missing_ranges={"pid": [8, 9]},
    )  # fmt: skip
    cb = Codebook(questions={"pid": QuestionSpec(codes={1: "Dem", 2: "Ind", 3: "Rep"})})
    s = read_survey(path, cb)
    assert s.question("pid").options == ("Dem", "Ind", "Rep")
    assert s.codes("pid").tolist() == [0, 1, 2, -1, 1, -1]
    s2 = read_survey(path, Codebook(questions={"pid": QuestionSpec(text="Party")}))
    assert s2.question("pid").options == ("D", "I", "R")  # labels from the file
    assert s2.question("pid").ordinal is None  # codebook without ordinal = nominal


def test_stata_round_trip(tmp_path):
    path = tmp_path / "s.dta"
    df = _spss_frame().drop(columns=["lr"])
    df.loc[5, "pid"] = np.nan
    pyreadstat.write_dta(
        df, str(path),
        column_labels={"pid": "Party identification"},
        variable_value_labels={
            "pid": {1: "Democrat", 2: "Independent", 3: "Republican", 9: "Refused"},
            "sex": {1: "Male", 2: "Female", -1: "DK"},
        },
    )  # fmt: skip
    s = read_survey(path, weight="wt", id_column="id", name="stata")
    pid = s.question("pid")
    assert pid.options == ("Democrat", "Independent", "Republican") and pid.ordinal is None
    assert pid.text == "Party identification" and pid.source == "stata"
    assert s.codes("pid").tolist() == [0, 1, 2, -1, 1, -1]
    assert s.codes("sex").tolist() == [0, 1, 0, 1, -1, 0]


def test_non_utf8_csv_with_encoding(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("q\nCaf\xe9\nTh\xe9\n".encode("latin-1"))
    s = read_survey(path, encoding="latin-1")
    assert s.question("q").options == ("Café", "Thé")


def test_utf8_bom_is_ignored(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffq\nyes\nno\n".encode())
    assert "q" in read_survey(path).questions


def test_question_without_answers_loads(tmp_path):
    cb = Codebook(questions={"q": QuestionSpec(options=["a", "b"]), "r": QuestionSpec()})
    df = pd.DataFrame({"q": [np.nan, "Refused", np.nan], "r": ["x", "y", "x"]})
    s = survey_from_dataframe(df, cb)
    assert not s.answered("q").any()


def test_survey_feeds_group_items(tmp_path):
    (tmp_path / "cb.yaml").write_text(CODEBOOK)
    s = survey_from_dataframe(_raw_frame(), tmp_path / "cb.yaml")
    items = build_group_items(s, ["vote"], by="pid", min_n=1)
    dem = items.frame.set_index("group").loc["pid = Democrat", "target"]
    np.testing.assert_allclose(dem, [1.0, 0.0, 0.0])
    assert "pid = Republican" not in set(items.frame["group"])  # nobody answered: suppressed
    assert items.summary["suppressed"] == 1


def test_meta_for_dataframe():
    df = pd.DataFrame({"q": [1.0, 2.0, 3.0, 1.0]})
    meta = FileMeta(value_labels={"q": {1.0: "low", 2.0: "mid", 3.0: "high"}},
                    measures={"q": "ordinal"})  # fmt: skip
    q = survey_from_dataframe(df, meta=meta).question("q")
    assert q.options == ("low", "mid", "high") and q.ordinal == (1.0, 2.0, 3.0)


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "s.xlsx"
    path.write_bytes(b"nothing")
    with pytest.raises(FileFormatError, match=r"s\.xlsx.*unsupported file type"):
        read_survey(path)


def test_codebook_covariate_absent(tmp_path):
    _raw_frame().to_csv(tmp_path / "s.csv", index=False)
    cb = Codebook(questions={"vote": QuestionSpec()}, covariates=["income"])
    with pytest.raises(CodebookError, match=r"s\.csv.*covariate 'income' has no column"):
        read_survey(tmp_path / "s.csv", cb)


def test_spss_labelled_string_variable(tmp_path):
    path = tmp_path / "str.sav"
    df = pd.DataFrame({"s": ["a", "b", "c", "a", "d"]})
    pyreadstat.write_sav(
        df, str(path),
        variable_value_labels={"s": {"b": "Banana", "a": "Apple"}},
        missing_ranges={"s": ["c"]},
    )  # fmt: skip
    s = read_survey(path)
    assert s.question("s").options == ("Banana", "Apple", "d")  # label order, then the rest
    assert s.codes("s").tolist() == [1, 0, -1, 1, 2]


def test_csv_quoting_and_crlf(tmp_path):
    path = tmp_path / "q.csv"
    path.write_bytes(b'q,comment\r\n"yes, really","multi\r\nline"\r\nno,plain\r\n\r\n')
    s = read_survey(path)
    assert s.question("q").options == ("no", "yes, really")
    assert s.n_respondents == 2


def test_dataframe_index_is_kept_as_respondent_id():
    df = pd.DataFrame({"q": ["a", "b", "a"]}, index=pd.Index(["r1", "r2", "r3"], name="rid"))
    s = survey_from_dataframe(df)
    assert list(s.data.index) == ["r1", "r2", "r3"]


def test_covariate_labels_from_codebook_reach_prompts_and_profiles(tmp_path):
    from surveylm.items import build_respondent_items, feature_labels
    from surveylm.models.item_texts import context_lines
    from surveylm.prompts import render_item

    path = tmp_path / "s.csv"
    _raw_frame().to_csv(path, index=False)
    import yaml

    spec = {**yaml.safe_load(CODEBOOK), "covariates": {"age": {"label": "Age in years"}}}
    cb = Codebook.model_validate(spec)
    s = read_survey(path, codebook=cb)
    assert s.covariate_labels == {"age": "Age in years"}
    items = build_respondent_items(s, "vote", ["pid", "age"])
    assert feature_labels(items) == {"age": "Age in years"}
    assert "Age in years: 25" in render_item(items, 0)
    assert context_lines(items.contexts[0], items.questions, feature_labels(items))[1] == (
        "Age in years: 25")  # fmt: skip
    back = type(items).read_parquet(items.to_parquet(tmp_path / "i.parquet"))
    assert feature_labels(back.subset([0])) == {"age": "Age in years"}


def test_covariate_label_defaults_to_the_files_column_label(tmp_path):
    path = tmp_path / "s.sav"
    df = pd.DataFrame({"vote": [1.0, 2.0, 1.0], "age": [25.0, 40.5, 61.0]})
    pyreadstat.write_sav(df, str(path), column_labels={"vote": "Vote", "age": "Age of respondent"},
                         variable_value_labels={"vote": {1.0: "Yes", 2.0: "No"}})  # fmt: skip
    s = read_survey(path)
    assert s.covariates == ["age"] and s.covariate_labels == {"age": "Age of respondent"}


# -- one loader for "a dataset name or a file" (CLI and both runners) ----------------------
def test_survey_source_name_file_and_neither(tmp_path):
    from surveylm.errors import DataError
    from surveylm.io.sources import load_survey_source

    assert load_survey_source("anes1996").name == "ANES 1996"
    _raw_frame().assign(w2=[3.0, 1, 1, 1, 1, 1]).to_csv(tmp_path / "poll.csv", index=False)
    (tmp_path / "cb.yaml").write_text(CODEBOOK)
    assert load_survey_source(tmp_path / "poll.csv", tmp_path / "cb.yaml").name == "demo"
    weighted = load_survey_source(str(tmp_path / "poll.csv"), tmp_path / "cb.yaml", weight="w2")
    assert weighted.weights.iloc[0] == 3.0
    with pytest.raises(DataError, match=r"no such file or built-in dataset 'gone\.csv'.*anes1996"):
        load_survey_source("gone.csv")
