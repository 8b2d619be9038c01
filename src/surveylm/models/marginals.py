"""Marginal baseline models: the yardsticks every language model must beat.

* :class:`UniformModel` — every option equally likely (no information at all).
* :class:`QuestionMarginalModel` — the question's overall (weighted) training distribution,
  the same for every context. For respondent items this is "impute the majority mix"; for
  group items it is the population answer, ignoring who the group is.
* :class:`GroupMarginalModel` — the distribution of the item's own cell in training: for a
  group item the same question × group seen in training (DSA's "the training data itself",
  Huang, Li, Shao 2025); for a respondent item the respondents in training who share the
  chosen context features (cell-mean imputation), shrunk towards the question marginal.

Questions (or cells) never seen in training fall back — cell → question marginal →
uniform — and the number of fallbacks is recorded in ``Predictions.extra``, so a table
never hides that a baseline was guessing. Evaluating these (and any other model) on a
survey split in one call is :mod:`surveylm.experiments.baselines`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, cast

import numpy as np

from surveylm.distribution_checks import uniform
from surveylm.errors import DataError
from surveylm.items import ItemSet
from surveylm.models.base import AnswerModel, Predictions
from surveylm.models.option_order import in_question_order, option_labels
from surveylm.models.param_checks import Rule, check_params


def _require_targets(items: ItemSet, model: str) -> ItemSet:
    train = items.filter(known_target=True)
    if len(train) == 0:
        raise DataError(f"{model}: no training items with a known target")
    return train


def _weighted_mean(targets: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.sum() <= 0:
        w = np.ones_like(w)
    return np.average(np.vstack(targets), axis=0, weights=w)


def smoothed_marginal(
    targets: Sequence[np.ndarray], weights: np.ndarray, smoothing: float
) -> np.ndarray:
    """``(n · mean + s · uniform) / (n + s)``: the weighted mean of ``n`` items' targets
    with ``s`` items' worth of the uniform, the question-marginal baseline's distribution
    (and the start of every fitted LM answer model)."""
    mean = _weighted_mean(targets, weights)
    n = float(len(targets))
    return (n * mean + smoothing * uniform(len(mean))) / (n + smoothing)


class UniformModel(AnswerModel):
    """Every option equally likely. Needs no training; ``fit`` only records that it ran.

    Args:
        random_state: Unused (the model is deterministic); part of the common contract.
        verbose: Unused (nothing here is slow); part of the common contract.
    """

    name = "uniform"

    def __init__(self, random_state: int | None = 0, verbose: bool = True) -> None:
        super().__init__(random_state=random_state, verbose=verbose)

    def fit(self, items: ItemSet) -> UniformModel:
        self.fitted_ = True
        return self

    def predict(self, items: ItemSet) -> Predictions:
        dists = [uniform(q.n_options) for q in items.item_questions()]
        return Predictions(items.item_ids, dists, self.name)

    def _get_state(self) -> dict[str, Any]:
        return {}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.fitted_ = True


class QuestionMarginalModel(AnswerModel):
    """The question's weighted training distribution, whatever the context.

    Args:
        smoothing: Pseudo-count of a uniform prior added to the marginal, in units of
            items (0 = the plain weighted mean). Keeps log loss finite when an option
            never occurs in training.
        random_state: Unused (the model is deterministic); part of the common contract.
        verbose: Unused (nothing here is slow); part of the common contract.
    """

    name = "question-marginal"
    param_rules: ClassVar[dict[str, Rule]] = {"smoothing": Rule(0.0)}

    def __init__(
        self, smoothing: float = 0.5, random_state: int | None = 0, verbose: bool = True
    ) -> None:
        super().__init__(random_state=random_state, verbose=verbose)
        self.smoothing = smoothing
        check_params(self)

    def fit(self, items: ItemSet) -> QuestionMarginalModel:
        check_params(self)
        train = _require_targets(items, self.name)
        self.marginals_: dict[str, np.ndarray] = {}
        self.option_labels_ = option_labels(train)  # the order of every per-question array
        frame = train.frame
        for qid, part in frame.groupby("question_id", sort=False):
            self.marginals_[str(qid)] = smoothed_marginal(
                list(part["target"]), part["weight"].to_numpy(), self.smoothing
            )
        return self

    def predict(self, items: ItemSet) -> Predictions:
        self._check_fitted()
        dists, fallbacks = [], 0
        labels = getattr(self, "option_labels_", None)
        for q in items.item_questions():
            m = self.marginals_.get(q.id)
            if m is None or len(m) != q.n_options:
                fallbacks += 1
                m = uniform(q.n_options)
            else:  # the options may be asked in another order than in training
                m = in_question_order(m, labels, q.id, q.options)
            dists.append(m)
        return Predictions(items.item_ids, dists, self.name, extra={"fallbacks": fallbacks})

    def _get_state(self) -> dict[str, Any]:
        return {"marginals": {k: v.tolist() for k, v in self.marginals_.items()},
                "option_labels": getattr(self, "option_labels_", {})}  # fmt: skip

    def _set_state(self, state: dict[str, Any]) -> None:
        self.marginals_ = {k: np.asarray(v) for k, v in state["marginals"].items()}
        self.option_labels_ = state.get("option_labels", {})


class GroupMarginalModel(AnswerModel):
    """The training distribution of the item's own cell, shrunk towards the marginal.

    Group items: the cell is (question, group); an unseen group (or question) falls back
    to the question marginal. Respondent items: the cell is (question, values of the
    context features ``by``) — a cell-mean (hot-deck style) imputation. Either way the
    prediction is ``(n·cell + smoothing·marginal) / (n + smoothing)`` with ``n`` the
    number of training respondents behind the cell, so that an option nobody in a small
    cell chose keeps a little mass and log loss / KL stay finite.

    Args:
        by: Context features defining respondent cells (default: every categorical
            feature in the context). Ignored for group items.
        smoothing: Pseudo-count of the question marginal added to each cell.
        random_state: Unused (the model is deterministic); part of the common contract.
        verbose: Unused (nothing here is slow); part of the common contract.
    """

    name = "group-marginal"
    param_rules: ClassVar[dict[str, Rule]] = {"smoothing": Rule(0.0)}

    def __init__(
        self,
        by: Sequence[str] | None = None,
        smoothing: float = 1.0,
        random_state: int | None = 0,
        verbose: bool = True,
    ) -> None:
        super().__init__(random_state=random_state, verbose=verbose)
        self.by = by
        self.smoothing = smoothing
        check_params(self)

    def _cell_key(self, kind: str, qid: str, group: Any, context: dict[str, Any]) -> str:
        if kind == "group":
            return f"{qid}\x1f{group}"
        keys = (
            self.by
            if self.by is not None
            else sorted(k for k, v in context.items() if isinstance(v, str))
        )
        return qid + "\x1f" + "\x1f".join(f"{k}={context.get(k)}" for k in keys)

    def fit(self, items: ItemSet) -> GroupMarginalModel:
        check_params(self)
        train = _require_targets(items, self.name)
        self.marginal_ = QuestionMarginalModel(smoothing=0.5).fit(train)
        cells: dict[str, list[int]] = {}
        frame = train.frame
        for i, (kind, qid, group, ctx) in enumerate(
            zip(frame["kind"], frame["question_id"], frame["group"], frame["context"], strict=True)
        ):
            cells.setdefault(self._cell_key(kind, qid, group, ctx), []).append(i)
        targets = cast("list[np.ndarray]", train.targets)  # _require_targets: all known
        weights = frame["weight"].to_numpy()
        sizes = frame["n"].to_numpy(dtype=np.float64)  # respondents behind each item
        self.cells_: dict[str, tuple[np.ndarray, float]] = {
            key: (_weighted_mean([targets[i] for i in rows], weights[rows]), sizes[rows].sum())
            for key, rows in cells.items()
        }
        return self

    def predict(self, items: ItemSet) -> Predictions:
        self._check_fitted()
        base = self.marginal_.predict(items)
        dists, fallbacks = [], 0
        frame = items.frame
        for i, (kind, qid, group, ctx) in enumerate(
            zip(frame["kind"], frame["question_id"], frame["group"], frame["context"], strict=True)
        ):
            cell = self.cells_.get(self._cell_key(kind, qid, group, ctx))
            if cell is None or len(cell[0]) != len(base.distributions[i]):
                fallbacks += 1
                dists.append(base.distributions[i])
                continue
            mean, n = cell
            mean = in_question_order(mean, getattr(self.marginal_, "option_labels_", None),
                                     qid, items.questions[qid].options)  # fmt: skip
            dists.append((n * mean + self.smoothing * base.distributions[i]) / (n + self.smoothing))
        return Predictions(items.item_ids, dists, self.name, extra={"fallbacks": fallbacks})

    def _get_state(self) -> dict[str, Any]:
        return {
            "marginal": self.marginal_._get_state(),
            "cells": {k: [v.tolist(), n] for k, (v, n) in self.cells_.items()},
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.marginal_ = QuestionMarginalModel(smoothing=0.5)
        self.marginal_._set_state(state["marginal"])
        self.cells_ = {k: (np.asarray(v), float(n)) for k, (v, n) in state["cells"].items()}
