import warnings

import numpy as np
import pytest

from surveylm.errors import ConfigError, DataError, LeakageWarning
from surveylm.items import ItemSet, build_group_items
from surveylm.splits import (
    crossed_split,
    kfold_respondents,
    split_items_by_group,
    split_items_by_question,
    split_respondents,
    text_similarity,
)
from surveylm.survey import Question


def test_split_respondents_is_seeded_and_stratified(anes):
    a_train, a_test = split_respondents(anes, 0.5, seed=3, stratify="vote")
    _, b_test = split_respondents(anes, 0.5, seed=3, stratify="vote")
    assert a_test.data.index.equals(b_test.data.index)
    assert len(set(a_train.data.index) & set(a_test.data.index)) == 0
    share = lambda s: s.weighted_distribution("vote")[0][0]  # noqa: E731
    assert abs(share(a_train) - share(a_test)) < 0.01


def test_kfold_covers_everyone_once(anes):
    seen = np.zeros(anes.n_respondents, dtype=int)
    for train, test in kfold_respondents(anes, 5, seed=0, stratify="vote"):
        assert not (train & test).any()
        seen += test
    assert (seen == 1).all()


def test_unseen_question_split_has_no_leak(anes):
    items = build_group_items(anes, ["vote", "selfLR", "TVnews"], by="party")
    train, test = split_items_by_question(items, ["selfLR"])
    assert "selfLR" not in train.question_ids and test.question_ids == ["selfLR"]


def _with_copy(items, qid, copy_id, text):
    """``items`` plus a copy of question ``qid``'s items under ``copy_id`` with ``text``."""
    q = items.questions[qid]
    twin = Question(copy_id, text, q.options, q.ordinal, q.source)
    frame = items.frame[items.frame["question_id"] == qid].copy()
    frame["question_id"] = copy_id
    frame["item_id"] = frame["item_id"].str.replace(qid, copy_id)
    return ItemSet.concat([items, ItemSet(frame, {**items.questions, copy_id: twin})])


def test_same_text_under_another_id_is_refused(anes):
    items = build_group_items(anes, ["vote", "selfLR"], by="party")
    leaky = _with_copy(items, "selfLR", "selfLR_copy", items.questions["selfLR"].text)
    with pytest.raises(DataError, match="leak"):
        split_items_by_question(leaky, ["selfLR_copy"])


REWORDED = "Where would you place yourself on a scale from very liberal to very conservative?"


def test_near_duplicate_wording_warns_naming_both_questions(anes):
    items = build_group_items(anes, ["vote", "selfLR"], by="party")
    # selfLR reads "... from extremely liberal to extremely conservative?": 12 of 14 words shared
    reworded = _with_copy(items, "selfLR", "selfLR_v2", REWORDED)
    with pytest.warns(LeakageWarning) as caught:
        _, test = split_items_by_question(reworded, ["selfLR_v2"])
    assert test.question_ids == ["selfLR_v2"]  # a warning, not a refusal
    (message,) = [str(w.message) for w in caught if issubclass(w.category, LeakageWarning)]
    assert "'selfLR_v2'" in message and "'selfLR'" in message
    assert message.count("'Where would you place yourself on a scale") == 2  # both texts
    assert f"{text_similarity(REWORDED, items.questions['selfLR'].text):.2f}" in message
    # crossed splits (the simulation runner's) check the same way
    with pytest.warns(LeakageWarning, match="selfLR_v2"):
        crossed_split(reworded, ["selfLR_v2"], [])


def test_distinct_questions_and_battery_items_do_not_warn(anes):
    items = build_group_items(anes, ["vote", "selfLR", "ClinLR", "DoleLR", "TVnews"], by="party")
    stem = "How much would you say you trust each of the following? "
    battery = _with_copy(items, "TVnews", "trust_congress", stem + "Congress")
    battery = _with_copy(battery, "vote", "trust_president", stem + "The presidency")
    with warnings.catch_warnings():
        warnings.simplefilter("error", LeakageWarning)
        split_items_by_question(items, ["TVnews", "DoleLR"])
        split_items_by_question(battery, ["trust_congress"])
    # the battery's full texts share 10 of 12 words; its item texts share none
    assert text_similarity(stem + "Congress", stem + "The presidency") == 0.0


def test_near_duplicate_threshold_is_respected(anes):
    items = build_group_items(anes, ["vote", "selfLR"], by="party")
    reworded = _with_copy(items, "selfLR", "selfLR_v2", REWORDED)
    similarity = text_similarity(REWORDED, items.questions["selfLR"].text)
    assert 0.5 < similarity < 1.0
    for quiet in (similarity, 1.0, None):
        with warnings.catch_warnings():
            warnings.simplefilter("error", LeakageWarning)
            split_items_by_question(reworded, ["selfLR_v2"], near_duplicate_threshold=quiet)
    with pytest.warns(LeakageWarning):
        split_items_by_question(reworded, ["selfLR_v2"], near_duplicate_threshold=similarity - 0.01)
    with pytest.raises(ConfigError, match="near_duplicate_threshold"):
        split_items_by_question(reworded, ["selfLR_v2"], near_duplicate_threshold=1.5)


def test_group_and_crossed_splits(anes):
    items = build_group_items(anes, ["vote", "selfLR", "TVnews"], by="party")
    train, test = split_items_by_group(items, ["party = Independent"])
    assert set(test.frame["group"]) == {"party = Independent"}
    assert "party = Independent" not in set(train.frame["group"])
    parts = crossed_split(items, ["TVnews"], ["party = Independent"])
    assert len(parts["unseen_q/unseen_g"]) == 1
    assert sum(len(p) for p in parts.values()) == len(items)
    with pytest.raises(DataError, match="not in the item set"):
        split_items_by_group(items, ["party = Whig"])
