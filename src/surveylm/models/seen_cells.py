"""A group item whose cell (question x group) a model was fitted on: the cell's own
training distribution, pooled with the model's prediction by empirical Bayes.

A fitted model's prediction ``m`` is a prior for a cell's answer distribution ``p``; the
cell's training distribution ``t`` estimates ``p`` from ``n`` (effective) respondents.
With ``p ~ Dirichlet(κ m)`` and ``n t ~ Multinomial(n, p)`` the posterior mean is

    (n · t + κ · m) / (n + κ),

the Dirichlet-multinomial form of small-area estimation (Fay & Herriot 1979 for the
Gaussian case): a large cell keeps its own data, a small one borrows from the model. A
model early-stopped so that it carries to new groups and questions does not reproduce
the cells it saw (on the non-voters survey the encoder head scored TV .055 on seen
questions x seen groups, the groups' own training distributions .033), and this pooling
is how the fitted model answers for those cells with what the data already say.

``κ`` is estimated by moments from validation items, whose predictions are out of
sample: ``E[Σ_k (t_k − m_k)²] = Σ_k m_k (1 − m_k) · (κ + n) / (n (κ + 1))``. Those are
items of held-out groups (or held-out cells), whose deviations from the model are
larger than a fitted cell's, so ``κ`` errs towards the cell's own data. Measured with
the packaged simulation configs (encoder head, seen questions x seen groups, TV): .033
on non-voters (κ 60; the cell alone .033, the model alone .055) and .122 on ANES 1996
(κ 40; .126 and .142).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from surveylm.items import ItemSet

__all__ = ["SeenCells", "SeenCellsWarning", "estimate_kappa", "fitted_cells"]

#: κ when the validation deviations are within sampling noise (the model is trusted).
MAX_KAPPA = 1e6

_SEP = "\x1f"


def estimate_kappa(
    targets: Sequence[Any], predictions: Sequence[np.ndarray], n: Sequence[float]
) -> float | None:
    """The moment estimate of ``κ`` (module docstring) from items whose predictions are
    out of sample; ``None`` without items. 0 = trust the cells' data alone,
    :data:`MAX_KAPPA` = the model alone."""
    num = den = 0.0
    for t, m, ni in zip(targets, predictions, n, strict=True):
        t, m = np.asarray(t, dtype=float), np.asarray(m, dtype=float)
        spread = float(np.sum(m * (1 - m)))
        if spread <= 0 or not np.isfinite(ni) or ni <= 1:
            continue
        r = float(np.sum((t - m) ** 2)) / spread
        num += ni * (1 - r)
        den += r * ni - 1
    if num == 0 and den == 0:
        return None
    if den <= 0:
        return MAX_KAPPA
    return float(min(max(num / den, 0.0), MAX_KAPPA))


@dataclass
class SeenCells:
    """The training cells of a fitted model and the prior strength ``κ``.

    Attributes:
        kappa: Prior strength of the model's prediction (in respondents).
        cells: ``"question\\x1fgroup"`` -> ``(distribution in the training option order,
            n)``; several training items of one cell are pooled, weighted by ``n``.
    """

    kappa: float
    cells: dict[str, tuple[list[float], float]] = field(default_factory=dict)

    @classmethod
    def from_items(cls, items: ItemSet, kappa: float) -> SeenCells:
        """The group cells of training ``items`` (respondent items have none)."""
        from surveylm.models.shrinkage import group_keys

        sums: dict[str, tuple[np.ndarray, float]] = {}
        n_eff = _n_eff(items)
        for q, g, t, n in zip(items.frame["question_id"], group_keys(items), items.targets,
                              n_eff, strict=True):  # fmt: skip
            if g is None or t is None or not n > 0:
                continue
            key = f"{q}{_SEP}{g}"
            s, total = sums.get(key, (np.zeros(len(t)), 0.0))
            sums[key] = (s + n * np.asarray(t, dtype=float), total + n)
        return cls(kappa, {k: ((s / n).tolist(), n) for k, (s, n) in sums.items()})

    def pool(
        self, items: ItemSet, dists: Sequence[np.ndarray],
        labels: Mapping[str, Sequence[str]] | None,
        keys: Sequence[str | None] | None = None,
    ) -> list[np.ndarray]:  # fmt: skip
        """``dists`` with every item of a training cell replaced by the posterior mean
        (cells read by label, ``labels``: the training questions' option order; ``keys``:
        the items' :func:`~surveylm.models.shrinkage.group_keys`, when known)."""
        from surveylm.models.option_order import in_question_order
        from surveylm.models.shrinkage import group_keys

        out = list(dists)
        keys = group_keys(items) if keys is None else keys
        for i, (q, g) in enumerate(zip(items.frame["question_id"], keys, strict=True)):
            cell = None if g is None else self.cells.get(f"{q}{_SEP}{g}")
            if cell is None:
                continue
            t = np.asarray(in_question_order(cell[0], labels, q, items.questions[q].options))
            n, m = cell[1], np.asarray(out[i], dtype=float)
            if len(t) != len(m):
                continue  # another question under the same id
            p = (n * t + self.kappa * m) / (n + self.kappa)
            out[i] = p / p.sum()
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kappa": self.kappa, "cells": {k: [t, n] for k, (t, n) in self.cells.items()}}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any] | None) -> SeenCells | None:
        if not state:
            return None
        return cls(float(state["kappa"]),
                   {k: (list(t), float(n)) for k, (t, n) in state["cells"].items()})  # fmt: skip


def fitted_cells(
    train: ItemSet, kinds: Sequence[str], validation: Mapping[int, np.ndarray]
) -> SeenCells | None:
    """The cells of ``train`` with ``κ`` estimated from the out-of-sample predictions
    ``validation`` (position -> pooled prediction) of its group items of fitted
    questions; ``None`` (no pooling) without such items.

    Args:
        train: All training items.
        kinds: Each training item's kind (:func:`~surveylm.models.shrinkage.item_kinds`).
        validation: The model's predictions of the validation items.
    """
    from surveylm.models.shrinkage import group_keys

    keys, n_eff = group_keys(train), _n_eff(train)
    pos = [i for i in validation if keys[i] is not None and kinds[i] != "new_question"]
    kappa = estimate_kappa([train.targets[i] for i in pos], [validation[i] for i in pos],
                           [n_eff[i] for i in pos])  # fmt: skip
    if kappa is None and any(k is not None for k in keys):  # cells, but nothing to size κ
        import warnings

        warnings.warn(
            "training cells are not pooled with the model: no validation item is a group "
            "item of a fitted question, so nothing measures how far cells differ from it "
            "(seen cells are answered by the model alone)", SeenCellsWarning, stacklevel=2,
        )  # fmt: skip
    return None if kappa is None else SeenCells.from_items(train, kappa)


class SeenCellsWarning(UserWarning):
    """Training cells exist but cannot be pooled with the model (see :func:`fitted_cells`)."""


def _n_eff(items: ItemSet) -> np.ndarray:
    """Each item's effective number of respondents (``n_eff``, else ``n``; NaN when
    neither is known)."""
    frame = items.frame
    n_eff = frame["n_eff"].to_numpy(dtype=float) if "n_eff" in frame else None
    n = frame["n"].to_numpy(dtype=float) if "n" in frame else None
    if n_eff is None:
        return n if n is not None else np.full(len(frame), np.nan)
    return n_eff if n is None else np.where(np.isfinite(n_eff), n_eff, n)
