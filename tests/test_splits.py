import numpy as np
import pytest

from surveylm.errors import DataError
from surveylm.items import ItemSet, build_group_items
from surveylm.splits import (
    crossed_split,
    kfold_respondents,
    split_items_by_group,
    split_items_by_question,
    split_respondents,
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


def test_same_text_under_another_id_is_refused(anes):
    items = build_group_items(anes, ["vote", "selfLR"], by="party")
    q = items.questions["selfLR"]
    twin = Question("selfLR_copy", q.text, q.options, q.ordinal, q.source)
    frame = items.frame[items.frame["question_id"] == "selfLR"].copy()
    frame["question_id"] = "selfLR_copy"
    frame["item_id"] = frame["item_id"].str.replace("selfLR", "selfLR_copy")
    leaky = ItemSet.concat([items, ItemSet(frame, {**items.questions, "selfLR_copy": twin})])
    with pytest.raises(DataError, match="leak"):
        split_items_by_question(leaky, ["selfLR_copy"])


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
