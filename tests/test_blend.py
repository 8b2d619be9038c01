"""Tests of the blend answer model (two models pooled with a validated weight)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from surveylm.datasets.anes import load_anes1996
from surveylm.errors import ConfigError
from surveylm.items import build_respondent_items
from surveylm.models import make_model
from surveylm.models.blend import BlendModel, choose_weight


def test_choose_weight_finds_the_better_part_and_interior_optima() -> None:
    grid = np.linspace(0, 1, 11)
    t = [np.array([1.0, 0.0])] * 4
    good, bad = [np.array([0.9, 0.1])] * 4, [np.array([0.2, 0.8])] * 4
    assert choose_weight(good, bad, t, grid)[0] == 1.0
    assert choose_weight(bad, good, t, grid)[0] == 0.0
    # two complementary models: the pool beats both
    t2 = [np.array([1.0, 0.0]), np.array([0.0, 1.0])]
    a, b = [np.array([0.99, 0.01]), np.array([0.6, 0.4])], [np.array([0.4, 0.6]),
                                                            np.array([0.01, 0.99])]
    w, losses = choose_weight(a, b, t2, grid)
    assert 0.0 < w < 1.0 and min(losses) < min(losses[0], losses[-1])


def test_blend_is_no_worse_than_its_parts_on_anes_and_round_trips(tmp_path: Path) -> None:
    survey = load_anes1996()
    items = build_respondent_items(survey, "vote", ["PID", "selfLR", "educ", "income"])
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(items))
    train, test = items.subset(perm[: len(items) // 2]), items.subset(perm[len(items) // 2 :])
    y = np.array([int(np.argmax(t)) for t in test.targets])

    def loss(pred) -> float:
        q = np.vstack(pred.distributions)
        return float(-np.log(q[np.arange(len(y)), y]).mean())

    blend = BlendModel("logistic", "question-marginal", verbose=False).fit(train)
    parts = [make_model("logistic").fit(train), make_model("question-marginal").fit(train)]
    assert loss(blend.predict(test)) <= min(loss(p.predict(test)) for p in parts) + 0.01
    assert blend.weight_ > 0.5  # logistic is far better than the marginal here
    blend.save(tmp_path / "b")
    again = BlendModel.load(tmp_path / "b")
    for a, b in zip(blend.predict(test).distributions, again.predict(test).distributions,
                    strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b)
    with pytest.raises(ConfigError, match="grid_size"):
        BlendModel(grid_size=1).fit(train)
