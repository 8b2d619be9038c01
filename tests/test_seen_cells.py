"""A training cell's own distribution pooled with the model (surveylm.models.seen_cells)."""

from __future__ import annotations

import numpy as np
import pytest

from surveylm.items import build_group_items
from surveylm.models.seen_cells import MAX_KAPPA, SeenCells, estimate_kappa
from test_inner_split import _battery_survey


def _draws(kappa: float, n: int, cells: int, seed: int = 0):
    """Cells drawn from Dirichlet(κ m) and then n respondents each."""
    rng = np.random.default_rng(seed)
    m = np.array([0.5, 0.3, 0.2])
    targets = [rng.multinomial(n, rng.dirichlet(kappa * m)) / n for _ in range(cells)]
    return targets, [m] * cells, [float(n)] * cells


@pytest.mark.parametrize("kappa", [5.0, 50.0])
def test_the_moment_estimate_recovers_the_prior_strength(kappa):
    est = estimate_kappa(*_draws(kappa, n=400, cells=3000))
    assert est is not None and 0.8 * kappa < est < 1.25 * kappa


def test_no_spread_beyond_sampling_trusts_the_model_and_no_items_say_nothing():
    rng = np.random.default_rng(1)
    m = np.array([0.5, 0.3, 0.2])
    exact = [rng.multinomial(10_000, m) / 10_000 for _ in range(200)]
    assert estimate_kappa(exact, [m] * 200, [10_000.0] * 200) == MAX_KAPPA
    assert estimate_kappa([], [], []) is None


def test_a_cell_is_pooled_by_its_size_and_read_by_label():
    survey = _battery_survey(items=2)
    items = build_group_items(survey, ["b0", "b1"], by="age", min_n=10)
    cells = SeenCells.from_items(items, kappa=50.0)
    assert len(cells.cells) == len(items)
    model = [np.full(3, 1 / 3)] * len(items)
    pooled = cells.pool(items, model, None)
    for p, t, n in zip(pooled, items.targets, items.frame["n_eff"], strict=True):
        np.testing.assert_allclose(p, (n * np.asarray(t) + 50 * np.full(3, 1 / 3)) / (n + 50))
    # the same cells asked with their options permuted answer by label
    from surveylm.experiments.simulation import permute_options

    permuted, perms = permute_options(items, seed=0)
    labels = {q: list(items.questions[q].options) for q in items.question_ids}
    again = cells.pool(permuted, model, labels)
    for a, b, q in zip(again, pooled, items.frame["question_id"], strict=True):
        np.testing.assert_allclose(a, b[perms[q]])
    # a group the model never saw keeps the model's prediction; a state round-trips
    other = build_group_items(survey, ["b0"], by="region", min_n=10)
    assert all(np.array_equal(p, q) for p, q in
               zip(cells.pool(other, [np.full(3, 1 / 3)] * len(other), None),
                   [np.full(3, 1 / 3)] * len(other), strict=True))  # fmt: skip
    assert SeenCells.from_dict(cells.to_dict()) == cells


def _regional_survey(n: int = 900, seed: int = 0):
    """The battery survey, but each region answers the battery its own way."""
    from surveylm.survey import Survey

    survey = _battery_survey(n=n, items=10, seed=seed)
    rng = np.random.default_rng(seed + 1)
    data = survey.data.copy()
    scale = list(survey.questions["b0"].options)
    probs = {"North": [0.8, 0.15, 0.05], "South": [0.1, 0.3, 0.6],
             "East": [0.4, 0.5, 0.1], "West": [0.2, 0.2, 0.6]}  # fmt: skip
    for j in range(10):
        data[f"b{j}"] = [scale[rng.choice(3, p=probs[r])] for r in data["region"]]
    return Survey(data, list(survey.questions.values()), name="regional")


@pytest.mark.filterwarnings("ignore")
def test_fitted_encoder_trusts_cells_as_far_as_groups_differ_and_can_be_switched_off(tmp_path):
    """κ is estimated on the validation items: where groups answer alike (every cell is
    noise around one distribution) it exceeds the cells' size and the model dominates;
    where each region answers its own way (which held-out regions cannot show the model)
    it falls below it and a cell's own data dominates. ``pool_seen_cells=False`` leaves
    the head's prediction; a saved model predicts the same."""
    from surveylm.models.base import AnswerModel
    from surveylm.models.encoder import EncoderAnswerModel

    qids = [f"b{j}" for j in range(10)] + ["yes"]
    kappa, n = {}, {}
    for name, survey in (("alike", _battery_survey(items=10)), ("regional", _regional_survey())):
        items = build_group_items(survey, qids, by=["region", "age"], min_n=10)
        model = EncoderAnswerModel(fine_tune={"epochs": 5.0}, verbose=False).fit(items)
        kappa[name], n[name] = model.validation_["seen_cell_kappa"], np.median(items.frame["n_eff"])
    assert kappa["alike"] > n["alike"]
    assert kappa["regional"] < n["regional"]
    off = EncoderAnswerModel(fine_tune={"epochs": 5.0}, verbose=False,
                             pool_seen_cells=False).fit(items)  # fmt: skip
    assert off.seen_cells_ is None and model.seen_cells_ is not None
    assert any(not np.allclose(a, b) for a, b in zip(model.predict(items).distributions,
                                                     off.predict(items).distributions,
                                                     strict=True))  # fmt: skip
    loaded = AnswerModel.load(model.save(tmp_path / "m"))
    for a, b in zip(loaded.predict(items).distributions, model.predict(items).distributions,
                    strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b, atol=1e-9)


def test_cells_that_nothing_validates_are_not_pooled_and_it_says_so():
    """Without validation items (``validation_fraction: 0``) κ cannot be estimated: the
    model answers seen cells alone, with a SeenCellsWarning; respondent items have no
    cells and say nothing."""
    import warnings

    from surveylm.items import build_respondent_items
    from surveylm.models.encoder import EncoderAnswerModel
    from surveylm.models.seen_cells import SeenCellsWarning

    survey = _battery_survey(items=3)
    items = build_group_items(survey, ["b0", "b1", "b2"], by=["region", "age"], min_n=10)
    with pytest.warns(SeenCellsWarning, match="answered by the model alone"):
        model = EncoderAnswerModel(fine_tune={"epochs": 1.0, "validation_fraction": 0.0},
                                   verbose=False).fit(items)  # fmt: skip
    assert model.seen_cells_ is None
    respondents = build_respondent_items(survey, "b0", ["region", "age"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeenCellsWarning)
        EncoderAnswerModel(fine_tune={"epochs": 1.0}, verbose=False).fit(respondents)
