import numpy as np
import pytest

from surveylm.errors import DataError, DistributionError
from surveylm.items import DEFAULT_MIN_N, Group, ItemSet, build_group_items, build_respondent_items


def test_respondent_items_one_hot_and_context(toy_survey):
    items = build_respondent_items(toy_survey, "vote", ["party", "age"])
    assert len(items) == 115  # the five non-respondents are left out
    row = items.frame.iloc[0]
    assert row["kind"] == "respondent" and row["respondent_id"] == "r5"
    assert set(row["context"]) == {"party", "age"}
    assert row["target"].sum() == 1.0 and set(row["target"]) <= {0.0, 1.0}
    assert items.context_text(0).splitlines()[0].startswith("Party: ")
    assert row["weight"] == pytest.approx(toy_survey.weights["r5"])


def test_respondent_items_for_imputation_have_unknown_targets(toy_survey):
    items = build_respondent_items(toy_survey, "vote", ["party"], include_unanswered=True)
    assert len(items) == 120
    assert (~items.has_target).sum() == 5
    assert len(items.filter(known_target=True)) == 115


def test_respondent_items_refuse_target_as_feature(toy_survey):
    with pytest.raises(DataError, match="both a target and a feature"):
        build_respondent_items(toy_survey, "vote", ["vote"])
    with pytest.raises(DataError, match="feature 'nope'"):
        build_respondent_items(toy_survey, "vote", ["nope"])


def test_group_items_are_weighted_shares(toy_survey):
    items = build_group_items(toy_survey, ["vote"], by="party", min_n=10)
    assert items.kinds == {"group"}
    for _, row in items.frame.iterrows():
        value = row["context"]["party"][0]
        mask = (toy_survey.answers("party") == value).to_numpy()
        shares, n, n_eff = toy_survey.weighted_distribution("vote", mask)
        np.testing.assert_allclose(row["target"], shares)
        assert row["n"] == n and row["n_eff"] == pytest.approx(n_eff)


def test_small_cells_are_suppressed_and_counted(toy_survey):
    items = build_group_items(toy_survey, ["vote"], by="party")  # default min_n = 30
    n_by_party = {
        v: int(((toy_survey.answers("party") == v) & toy_survey.answered("vote")).sum())
        for v in ("Dem", "Ind", "Rep")
    }
    expected_small = sum(n < DEFAULT_MIN_N for n in n_by_party.values())
    assert items.summary["suppressed"] == expected_small
    assert len(items) == 3 - expected_small
    assert (items.frame["n"] >= DEFAULT_MIN_N).all()


def test_intersections_and_value_sets(toy_survey):
    g = Group.of(party=["Dem", "Ind"], name="Not Republican")
    items = build_group_items(toy_survey, ["vote"], groups=[g], min_n=1)
    assert items.frame["group"].tolist() == ["Not Republican"]
    inter = build_group_items(toy_survey, ["vote"], by=[["party", "vote"]], min_n=1)
    assert inter.frame["group_var"].unique().tolist() == ["party×vote"]


def test_empty_group_and_unanswered_question_refused(toy_survey):
    empty = Group.of(party="Dem", vote="A")
    mask_empty = toy_survey.subset(toy_survey.answers("party").ne("Dem").to_numpy())
    with pytest.raises(DataError, match="is empty"):
        build_group_items(mask_empty, ["vote"], groups=[empty], min_n=1)
    nobody = toy_survey.with_answers("vote", [None] * toy_survey.n_respondents)
    with pytest.raises(DataError, match="question 'vote': no valid answers"):
        build_group_items(nobody, ["vote"], by="party")


def test_parquet_round_trip(tmp_path, toy_survey):
    items = ItemSet.concat(
        [
            build_group_items(toy_survey, ["vote"], by="party", min_n=1),
            build_respondent_items(toy_survey, "vote", ["party", "age"], include_unanswered=True),
        ]
    )
    path = items.to_parquet(tmp_path / "items.parquet")
    back = ItemSet.read_parquet(path)
    assert back.item_ids.tolist() == items.item_ids.tolist()
    assert back.questions == items.questions
    for a, b in zip(items.targets, back.targets, strict=True):
        assert (a is None and b is None) or np.allclose(a, b)
    assert back.contexts == items.contexts


def test_invalid_targets_refused(toy_survey):
    items = build_group_items(toy_survey, ["vote"], by="party", min_n=1)
    frame = items.frame.copy()
    frame.at[0, "target"] = np.array([0.7, 0.7])
    with pytest.raises(DistributionError, match=r"sum to 1\.4"):
        ItemSet(frame, items.questions)
    frame.at[0, "target"] = np.array([0.5, 0.25, 0.25])
    with pytest.raises(DistributionError, match="3 values but the question has 2 options"):
        ItemSet(frame, items.questions)
