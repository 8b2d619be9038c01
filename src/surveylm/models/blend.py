"""A blend of two answer models, mixed with a weight chosen on validation.

``q = w · q_first + (1 − w) · q_second`` (a linear opinion pool, Stone 1961), with ``w``
on a grid chosen to minimise the cross-entropy to the targets of an inner validation
split (:func:`~surveylm.models.validation.inner_split`); both parts are then refitted on
all the training items. Blends of a tabular model and a language model are how a
methodologist would use an LM beside CatBoost for imputation (Holtdirk et al. 2025
compare the two), and blends lead SynthBench's leaderboard for simulation. Because
``w = 0`` and ``w = 1`` are on the grid, the blend is never worse on validation than
the better of its parts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from surveylm.errors import ConfigError, ModelError
from surveylm.items import ItemSet
from surveylm.models.base import AnswerModel, Predictions, write_model_json
from surveylm.models.validation import inner_split

__all__ = ["BlendModel", "choose_weight"]


def choose_weight(
    first: list[np.ndarray], second: list[np.ndarray], targets: list[np.ndarray],
    grid: np.ndarray,
) -> tuple[float, list[float]]:  # fmt: skip
    """The grid weight minimising the mean cross-entropy ``−Σ p log q`` of the pool (ties:
    the smallest weight), and the loss at every grid point."""
    losses = []
    for w in grid:
        ce = [-float(np.sum(t * np.log(np.clip(w * a + (1 - w) * b, 1e-12, None))))
              for a, b, t in zip(first, second, targets, strict=True)]  # fmt: skip
        losses.append(float(np.mean(ce)))
    return float(grid[int(np.argmin(losses))]), losses


class BlendModel(AnswerModel):
    """Linear pool of two registered answer models (see module docstring).

    Args:
        first: Registry name of the first model (e.g. ``"catboost"``).
        second: Registry name of the second model (e.g. ``"encoder"``).
        first_params: Constructor parameters of the first model.
        second_params: Constructor parameters of the second model.
        grid_size: Number of equally spaced weights in [0, 1] tried.
        validation_fraction: Share of the training items held out to choose the weight.
        random_state: Seed of the split and of both parts.
        verbose: Progress bars of the parts.
    """

    name: ClassVar[str] = "blend"

    def __init__(
        self,
        first: str = "catboost",
        second: str = "encoder",
        first_params: dict[str, Any] | None = None,
        second_params: dict[str, Any] | None = None,
        grid_size: int = 11,
        validation_fraction: float = 0.2,
        random_state: int | None = 0,
        verbose: bool = True,
    ) -> None:
        self.first = first
        self.second = second
        self.first_params = first_params
        self.second_params = second_params
        self.grid_size = grid_size
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.verbose = verbose

    def _part(self, which: str, seed: int) -> AnswerModel:
        from surveylm.models import make_model

        name = self.first if which == "first" else self.second
        params = dict((self.first_params if which == "first" else self.second_params) or {})
        if name == "blend":
            raise ConfigError("a blend cannot contain another blend")
        params.setdefault("random_state", seed)
        params.setdefault("verbose", self.verbose)
        return make_model(name, **params)

    def fit(self, items: ItemSet) -> BlendModel:
        """Choose the weight on an inner split, then refit both parts on all items."""
        if self.grid_size < 2:
            raise ConfigError(f"grid_size must be at least 2, got {self.grid_size}")
        train = items.subset(items.has_target)
        if len(train) == 0:
            raise ModelError("no items with a known target to fit the blend on")
        seed = self._seed()
        fit_pos, val_pos = inner_split(train, self.validation_fraction, seed)
        grid = np.linspace(0.0, 1.0, self.grid_size)
        if len(val_pos):
            fit_part, val_part = train.subset(fit_pos), train.subset(val_pos)
            a = self._part("first", seed).fit(fit_part).predict(val_part).distributions
            b = self._part("second", seed).fit(fit_part).predict(val_part).distributions
            targets = [np.asarray(t, dtype=float) for t in val_part.targets]
            self.weight_, losses = choose_weight(a, b, targets, grid)
        else:  # too few items to validate: an equal pool
            self.weight_, losses = 0.5, []
        self.validation_ = {"grid": grid.tolist(), "losses": losses, "n_validation": len(val_pos)}
        self.first_ = self._part("first", seed).fit(train)
        self.second_ = self._part("second", seed).fit(train)
        return self

    def predict(self, items: ItemSet) -> Predictions:
        """``w · q_first + (1 − w) · q_second`` per item."""
        self._check_fitted()
        a = self.first_.predict(items).for_items(items)
        b = self.second_.predict(items).for_items(items)
        w = self.weight_
        dists = [w * x + (1 - w) * y for x, y in zip(a.distributions, b.distributions,
                                                       strict=True)]  # fmt: skip
        return Predictions(items.item_ids, [d / d.sum() for d in dists], self.name,
                           extra={"weight": w, "parts": [self.first, self.second]})  # fmt: skip

    def save(self, directory: str | Path) -> Path:
        """Both parts in ``first/`` and ``second/``, then ``model.json`` (last, atomic)."""
        self._check_fitted()
        directory = Path(directory)
        self.first_.save(directory / "first")
        self.second_.save(directory / "second")
        state = {"weight": self.weight_, "validation": self.validation_}
        write_model_json(self, directory, self.get_params(), state)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> BlendModel:
        """Restore a blend written by :meth:`save`."""
        from surveylm.models import model_class

        directory = Path(directory)
        model, state = cls._from_saved(directory)
        model.first_ = model_class(model.first).load(directory / "first")
        model.second_ = model_class(model.second).load(directory / "second")
        model.weight_ = float(state["weight"])
        model.validation_ = state.get("validation", {})
        return model
