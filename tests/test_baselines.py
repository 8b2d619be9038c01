import numpy as np
import pytest

from surveylm.errors import NotFittedError
from surveylm.items import build_group_items, build_respondent_items
from surveylm.models import BASELINES, make_model
from surveylm.models.base import AnswerModel
from surveylm.splits import split_respondents


def test_uniform_and_question_marginal(toy_survey):
    items = build_respondent_items(toy_survey, "vote", ["party"])
    uni = make_model("uniform").fit(items).predict(items)
    assert all(np.allclose(d, [0.5, 0.5]) for d in uni.distributions)
    qm = make_model("question-marginal", smoothing=0.0).fit(items).predict(items)
    shares, _, _ = toy_survey.weighted_distribution("vote")
    np.testing.assert_allclose(qm.distributions[0], shares)
    assert len({tuple(d) for d in qm.distributions}) == 1  # the same for every context


def test_group_marginal_uses_cells_and_falls_back(toy_survey):
    train_s, test_s = split_respondents(toy_survey, 0.5, seed=1)
    train = build_group_items(train_s, ["vote"], by="party", min_n=1)
    test = build_group_items(test_s, ["vote"], by="party", min_n=1)
    gm = make_model("group-marginal", smoothing=0.0).fit(train)
    pred = gm.predict(test)
    lookup = dict(zip(train.frame["group"], train.targets, strict=True))
    for gid, d in zip(test.frame["group"], pred.distributions, strict=True):
        np.testing.assert_allclose(d, lookup[gid])
    # An unseen group falls back to the question marginal, and says so.
    unseen = build_group_items(test_s, ["vote"], by=[["party", "vote"]], min_n=1)
    assert gm.predict(unseen).extra["fallbacks"] == len(unseen)
    # Smoothing keeps every option possible (finite KL) and shrinks towards the marginal.
    smooth = make_model("group-marginal", smoothing=5.0).fit(train).predict(test)
    assert all((d > 0).all() for d in smooth.distributions)


def test_group_marginal_respondent_cells_differ_by_party(toy_survey):
    items = build_respondent_items(toy_survey, "vote", ["party"])
    pred = make_model("group-marginal").fit(items).predict(items)
    by_party = {}
    for ctx, d in zip(items.contexts, pred.distributions, strict=True):
        by_party.setdefault(ctx["party"], d)
    assert by_party["Rep"][1] > by_party["Dem"][1] + 0.3  # Rep voters lean to B in the toy


@pytest.mark.parametrize("name", BASELINES)
def test_save_load_predict_identical(tmp_path, toy_survey, name):
    items = build_respondent_items(toy_survey, "vote", ["party"])
    model = make_model(name).fit(items)
    before = model.predict(items)
    model.save(tmp_path / name)
    after = AnswerModel.load(tmp_path / name).predict(items)
    for a, b in zip(before.distributions, after.distributions, strict=True):
        np.testing.assert_array_equal(a, b)


def test_predict_before_fit_is_a_clear_error(toy_survey):
    items = build_respondent_items(toy_survey, "vote", ["party"])
    with pytest.raises(NotFittedError, match="call fit"):
        make_model("question-marginal").predict(items)


def test_a_folder_saved_before_the_rename_to_marginals_still_loads(tmp_path, toy_survey):
    """model.json written when the class lived in surveylm.models.baselines (fails if the
    moved-module mapping in AnswerModel.load is dropped)."""
    import json

    items = build_respondent_items(toy_survey, "vote", ["party"])
    model = make_model("question-marginal").fit(items)
    model.save(tmp_path / "old")
    path = tmp_path / "old" / "model.json"
    payload = json.loads(path.read_text())
    assert payload["class"] == "surveylm.models.marginals:QuestionMarginalModel"
    payload["class"] = "surveylm.models.baselines:QuestionMarginalModel"
    path.write_text(json.dumps(payload))
    after = AnswerModel.load(tmp_path / "old").predict(items)
    for a, b in zip(model.predict(items).distributions, after.distributions, strict=True):
        np.testing.assert_array_equal(a, b)
