"""The inner validation split every learned answer model fits with.

DESIGN.md, "Fitting": a learned model sizes its budget to the data with an inner
validation split, early stopping and the best state restored, so no step count or
learning rate is chosen on one survey. This module only chooses the split.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np

from surveylm.items import ItemSet

__all__ = [
    "MarginalWarning",
    "NoValidationGainWarning",
    "inner_split",
    "warn_no_gain",
    "write_training_curves",
]


class NoValidationGainWarning(UserWarning):
    """Training did not lower the validation loss below the starting state's, so the
    starting state was restored (the marginal for an encoder head, the zero-shot model
    for a causal LM)."""


class MarginalWarning(NoValidationGainWarning):
    """A fitted LM answer model did not beat the training marginal on its validation
    split (its predictions for seen questions are the marginal)."""


def warn_no_gain(
    model: str, best: float | None, reference: str, reference_loss: float | None,
    consequence: str, category: type[Warning] = NoValidationGainWarning,
) -> None:  # fmt: skip
    """The one warning line of a fit whose best validation loss did not beat a reference
    (a loss that is not known reads ``n/a``)."""
    import warnings

    def loss(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.4f}"

    warnings.warn(
        f"{model}: validation loss {loss(best)} is not below {reference} "
        f"{loss(reference_loss)}; {consequence}",
        category, stacklevel=3,
    )  # fmt: skip


def inner_split(items: ItemSet, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(fit, validation)`` of an inner validation split.

    Respondent items are stratified by answer (the argmax of the target). Group items
    hold out a ``fraction`` of the groups of every question (unseen groups) and, when
    there are at least eight questions, also a ``fraction`` of the questions (unseen
    questions): with fewer, one held-out question would be most of what the early
    stopping sees, and its loss — which only a prior learned from other questions can
    lower — would veto learning how groups differ. Too few items for a split: no
    validation.
    """
    n = len(items)
    if fraction <= 0 or n < 10:
        return np.arange(n), np.array([], dtype=int)
    rng = np.random.default_rng(seed)
    qids = items.frame["question_id"].to_numpy()
    val = np.zeros(n, dtype=bool)
    if set(items.frame["kind"]) == {"group"}:
        questions = np.array(items.question_ids, dtype=object)
        if len(questions) >= 8:
            held = rng.choice(questions, size=max(1, round(len(questions) * fraction)),
                              replace=False)  # fmt: skip
            val |= np.isin(qids, held)
        strata = qids
    else:
        targets = cast("list[np.ndarray]", items.targets)  # items to fit on: all known
        strata = np.array([f"{q}\x1f{int(np.argmax(t))}" for q, t in
                           zip(qids, targets, strict=True)], dtype=object)  # fmt: skip
    for s in np.unique(strata[~val]):
        pos = np.flatnonzero((strata == s) & ~val)
        take = round(len(pos) * fraction)
        if len(pos) >= 2 and take >= 1:
            val[rng.choice(pos, size=min(take, len(pos) - 1), replace=False)] = True
    if val.all() or not val.any():
        return np.arange(n), np.array([], dtype=int)
    return np.flatnonzero(~val), np.flatnonzero(val)


def write_training_curves(directory: Path, curves: list[dict]) -> Path:
    """``training_curves.csv`` (``step, epoch, split, loss``: train and validation loss)
    in a model folder, atomically."""
    from surveylm.io.atomic import atomic_write_text

    csv = "step,epoch,split,loss\n" + "".join(
        f"{r['step']},{r['epoch']},{r['split']},{r['loss']}\n" for r in curves
    )
    path = Path(directory) / "training_curves.csv"
    atomic_write_text(path, csv)
    return path
