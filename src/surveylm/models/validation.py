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
    "MIN_GROUPS_TO_HOLD_OUT",
    "MIN_QUESTIONS_TO_HOLD_OUT",
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


#: Fewest distinct groups for which :func:`inner_split` holds out whole groups.
MIN_GROUPS_TO_HOLD_OUT = 5

#: Fewest distinct questions for which :func:`inner_split` holds out whole questions.
MIN_QUESTIONS_TO_HOLD_OUT = 8


def inner_split(items: ItemSet, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(fit, validation)`` of an inner validation split.

    Respondent items are stratified by answer (the argmax of the target). Group items
    are split the way they are tested (Cao et al. 2025's unseen groups and questions):
    a ``fraction`` of the groups of each grouping variable is held out whole when there
    are at least :data:`MIN_GROUPS_TO_HOLD_OUT` groups, and a ``fraction`` of the
    questions when there are at least :data:`MIN_QUESTIONS_TO_HOLD_OUT`; every item of a
    held-out group or question validates, so the fit part is the seen questions x seen
    groups. Each kind of validation item chooses its own pooling weight
    (:mod:`surveylm.models.shrinkage`): held-out groups say how far learned group
    offsets carry to a new group (on the non-voters survey, trusted as far as held-out
    (question, group) pairs supported, the encoder scored TV .082 on unseen groups
    against the question marginal's .058). Holding out pairs as well, to validate the
    seen groups' weight, cost more than it gained: on ANES 1996 (65 training items) the
    smaller fit part raised seen-group TV from .142 to .165, on non-voters it moved .055
    to .057. With fewer groups, a ``fraction`` of each question's groups is held out
    instead. With fewer questions, one held-out question would be most of what the early
    stopping sees, and its loss -- which only a prior learned from other questions can
    lower -- would veto learning how groups differ. Too few items for a
    split: no validation.
    """
    n = len(items)
    if fraction <= 0 or n < 10:
        return np.arange(n), np.array([], dtype=int)
    rng = np.random.default_rng(seed)
    qids = items.frame["question_id"].to_numpy()
    val = np.zeros(n, dtype=bool)
    strata: np.ndarray | None = None
    if set(items.frame["kind"]) == {"group"}:
        questions = np.unique(qids)
        if len(questions) >= MIN_QUESTIONS_TO_HOLD_OUT:
            held = rng.choice(questions, size=max(1, round(len(questions) * fraction)),
                              replace=False)  # fmt: skip
            val |= np.isin(qids, held)
        groups, variables = _group_keys(items)
        if len(np.unique(groups)) >= MIN_GROUPS_TO_HOLD_OUT:
            for var in np.unique(variables):  # like the test split: groups of each variable
                uniq = np.unique(groups[variables == var])
                k = min(len(uniq) - 1, max(1, round(len(uniq) * fraction)))
                if k >= 1:
                    val |= np.isin(groups, rng.choice(uniq, size=k, replace=False))
        else:
            strata = qids  # too few groups: some groups of every question
    else:
        targets = cast("list[np.ndarray]", items.targets)  # items to fit on: all known
        strata = np.array([f"{q}\x1f{int(np.argmax(t))}" for q, t in
                           zip(qids, targets, strict=True)], dtype=object)  # fmt: skip
    for s in np.unique(strata[~val]) if strata is not None else []:
        pos = np.flatnonzero((strata == s) & ~val)
        take = round(len(pos) * fraction)
        if len(pos) >= 2 and take >= 1:
            val[rng.choice(pos, size=min(take, len(pos) - 1), replace=False)] = True
    if val.all() or not val.any():
        return np.arange(n), np.array([], dtype=int)
    return np.flatnonzero(~val), np.flatnonzero(val)


def _group_keys(items: ItemSet) -> tuple[np.ndarray, np.ndarray]:
    """Each group item's group (:func:`~surveylm.models.shrinkage.group_keys`) and
    grouping variable (``""`` where it has none), as strings."""
    from surveylm.models.shrinkage import group_keys

    variables = [str(v) if isinstance(v, str) else "" for v in items.frame["group_var"]]
    return np.array(group_keys(items), dtype=object), np.array(variables, dtype=object)


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
