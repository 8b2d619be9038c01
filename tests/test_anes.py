import numpy as np
import pytest

from surveylm.datasets import DATASETS, load_dataset
from surveylm.errors import DataError
from surveylm.items import build_group_items


def test_anes_matches_statsmodels(anes):
    from statsmodels.datasets import anes96

    raw = anes96.load_pandas().data
    assert anes.n_respondents == len(raw) == 944
    # vote: 0 = Clinton, 1 = Dole in the statsmodels codebook
    assert (anes.codes("vote") == raw["vote"].to_numpy().astype(int)).all()
    assert (anes.codes("PID") == raw["PID"].to_numpy().astype(int)).all()
    assert (anes.codes("selfLR") == raw["selfLR"].to_numpy().astype(int) - 1).all()
    assert (anes.codes("income") == raw["income"].to_numpy().astype(int) - 1).all()
    np.testing.assert_array_equal(anes.data["age"].to_numpy(), raw["age"].to_numpy())
    assert anes.question("vote").options == ("Bill Clinton", "Bob Dole")
    assert anes.question("PID").options[0] == "Strong Democrat" and anes.question("PID").is_ordinal
    assert not anes.question("vote").is_ordinal
    assert all(q.source == "ANES 1996" for q in anes.questions.values())


def test_anes_derived_groups_are_consistent(anes):
    pid = anes.codes("PID")
    party = anes.answers("party").to_numpy()
    assert set(party[pid <= 1]) == {"Democrat"} and set(party[pid >= 5]) == {"Republican"}
    age = anes.data["age"].to_numpy()
    assert set(anes.answers("age_group").to_numpy()[age < 30]) == {"18-29"}


def test_anes_party_by_education_cells(anes):
    items = build_group_items(anes, ["vote"], by=[["party", "educ3"]])
    assert len(items) + items.summary["suppressed"] == 9
    dem = items.frame[items.frame["group"].str.startswith("party = Democrat")]
    assert all(t[0] > 0.8 for t in dem["target"])  # Democrats vote Clinton


def test_registry():
    assert {"anes1996", "masculinity", "nonvoters"} <= set(DATASETS)
    assert load_dataset("anes1996").n_respondents == 944
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        load_dataset("nope")
