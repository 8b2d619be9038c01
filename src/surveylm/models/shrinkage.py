"""How far a fitted LM answer model is trusted over a simple anchor, chosen on the inner
validation split.

DESIGN.md, "Fitting": a fitted model is never further from the marginal than its
validation supports. Each prediction is a linear pool ``w · p_model + (1 − w) · anchor``
whose weight ``w`` depends on what the model has seen of the item, and each weight is
chosen by cross-entropy on the validation items of its kind
(:func:`~surveylm.models.validation.inner_split` holds out all three kinds):

- ``seen``: a question and context the model was fitted on -- every respondent item of a
  fitted question, and a group item of a group in the fit part. Anchor: the question's
  training marginal.
- ``new_group``: a fitted question for a group the model never saw (Cao et al. 2025's
  unseen groups). Anchor: the question's training marginal. A head that learned how
  seen groups differ does not know how a new one does (on the non-voters survey, trusted
  as far as its seen groups support, the encoder scored TV .082 on unseen groups against
  the question marginal's .058); this weight is why it need not be.
- ``new_question``: a question the model was not fitted on (SubPOP's and Cao et al.'s
  unseen questions). Anchor: the uniform distribution or the question's battery prior
  (:func:`~surveylm.models.item_texts.battery_log_prior`), whichever validates better.

A kind without validation items keeps its default: ``seen`` 1 (nothing says the fit is
worse than its anchor), ``new_group`` and ``new_question`` 0 (an untested guess is not
made: the anchor is returned).

A model whose own validation loss did not beat the training marginal's
(``lost_to_marginal``) gets weight 0 on fitted questions (``seen`` and ``new_group``): a
mixture weight can still beat the marginal on the same few validation items that the
model lost on, and that gain does not carry over (SmolLM2 LoRA on ANES 1996 group items,
20 validation items of held-out groups: the weight 0.4 it chose made TV on the test's
unseen groups .292 against the question marginal's .280).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from surveylm.items import ItemSet

if TYPE_CHECKING:
    from surveylm.models.seen_cells import SeenCells

__all__ = ["KINDS", "Shrinkage", "anchors", "apply_pooling", "choose_shrinkage", "fit_pooling",
           "group_keys", "item_kinds", "new_question_log_priors", "pool", "pooled_predictions"]

#: The kinds of item a weight is chosen for (see the module docstring).
KINDS = ("seen", "new_group", "new_question")

#: Anchors a question never fitted on may start from.
NEW_QUESTION_PRIORS = ("uniform", "battery")


@dataclass(frozen=True)
class Shrinkage:
    """One pooling weight per kind of item, and the anchor of new questions."""

    seen: float = 1.0
    new_group: float = 0.0
    new_question: float = 0.0
    new_question_prior: str = "uniform"

    def weight(self, kind: str) -> float:
        """The weight of the model's distribution for an item of ``kind``."""
        return float(getattr(self, kind))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Shrinkage:
        """From :meth:`to_dict`'s ``"shrinkage"`` entry of a saved model, or from the keys
        an older model wrote (one weight for every fitted question, one for new ones)."""
        if "shrinkage" in state:
            return cls(**state["shrinkage"])
        seen = float(state.get("seen_question_weight", 1.0))
        return cls(seen=seen, new_group=seen,
                   new_question=float(state.get("unseen_question_weight", 0.0)),
                   new_question_prior=state.get("unseen_question_prior", "uniform"))  # fmt: skip


def group_keys(items: ItemSet) -> list[str | None]:
    """Each item's group as a string (its label, or its context where it has none);
    ``None`` for a respondent item, which belongs to no group."""
    frame = items.frame
    return [
        None if kind != "group"
        else str(g) if isinstance(g, str) else json.dumps(c, sort_keys=True, default=str)
        for kind, g, c in zip(frame["kind"], frame["group"], frame["context"], strict=True)
    ]  # fmt: skip


def item_kinds(
    items: ItemSet, fit_questions: set[str], fit_groups: set[str] | None,
    keys: Sequence[str | None] | None = None,
) -> list[str]:  # fmt: skip
    """The kind of each item given the questions and groups of a model's fit part
    (``fit_groups=None``: a model saved before groups were told apart; every group item of
    a fitted question is then ``seen``); ``keys``: the items' :func:`group_keys`, when
    known."""
    qids = items.frame["question_id"].tolist()
    kinds = []
    for q, g in zip(qids, group_keys(items) if keys is None else keys, strict=True):
        if q not in fit_questions:
            kinds.append("new_question")
        elif g is None or fit_groups is None or g in fit_groups:
            kinds.append("seen")
        else:
            kinds.append("new_group")
    return kinds


def pool(p: np.ndarray, anchor: np.ndarray, weight: float) -> np.ndarray:
    """``weight · p + (1 − weight) · anchor``, renormalised."""
    out = weight * np.asarray(p, dtype=float) + (1 - weight) * np.asarray(anchor, dtype=float)
    return out / out.sum()


def new_question_log_priors(
    shrinkage: Shrinkage, labels: Mapping[str, Sequence[str]],
    marginals: Mapping[str, Sequence[float]], items: ItemSet,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Log priors of the items' questions without a training marginal: their battery's
    mean training marginal where validation chose it and the question has a battery,
    else none (uniform).

    Args:
        shrinkage: The model's weights (its ``new_question_prior``).
        labels: Option labels of the training questions (the order of ``marginals``).
        marginals: Training question id -> marginal.
        items: The items to predict.
    """
    from surveylm.models.item_texts import battery_log_prior
    from surveylm.models.option_order import option_labels

    new = [q for q in items.question_ids if q not in marginals]
    if shrinkage.new_question_prior != "battery" or not new:
        return {}
    known = {q: m for q, m in marginals.items() if q in labels}
    return battery_log_prior({**labels, **option_labels(items)}, known, new)


def anchors(
    items: ItemSet, kinds: Sequence[str], labels: Mapping[str, Sequence[str]],
    marginals: Mapping[str, Sequence[float]], new_log_priors: Mapping[str, np.ndarray],
) -> list[np.ndarray]:  # fmt: skip
    """Each item's anchor, in its question's option order: the training marginal (read
    by label) for a fitted question, the prior of :func:`new_question_log_priors` or the
    uniform for a new one."""
    from surveylm.models.option_order import in_question_order

    out = []
    for qid, kind in zip(items.frame["question_id"], kinds, strict=True):
        k = items.questions[qid].n_options
        if kind != "new_question":
            out.append(np.asarray(in_question_order(marginals[qid], labels, qid,
                                                    items.questions[qid].options)))  # fmt: skip
        elif qid in new_log_priors:
            lp = np.asarray(new_log_priors[qid], dtype=float)
            out.append(np.exp(lp - np.logaddexp.reduce(lp)))
        else:
            out.append(np.full(k, 1.0 / k))
    return out


def choose_shrinkage(
    kinds: Sequence[str],
    targets: Sequence[Any],
    val_pos: Sequence[int] | np.ndarray,
    model: Callable[[int, str], np.ndarray],
    anchor: Callable[[int, str], np.ndarray],
    grid_size: int = 11,
    lost_to_marginal: bool = False,
) -> Shrinkage:
    """The weights of :class:`Shrinkage`, each on the validation items of its kind.

    Args:
        kinds: The kind of every training item (:func:`item_kinds` against the fit part).
        targets: Every training item's target distribution.
        val_pos: Positions of the validation items.
        model: ``model(i, anchor_name)``: the model's distribution of training item ``i``
            when its anchor is ``anchor_name`` (``"marginal"``, or one of
            :data:`NEW_QUESTION_PRIORS` for a new question; a model whose scores start
            from the anchor, like the encoder's head, gives different ones).
        anchor: ``anchor(i, anchor_name)``: that anchor's distribution for item ``i``.
        grid_size: Equally spaced weights in [0, 1] tried (ties: the smaller weight).
        lost_to_marginal: The model's validation loss did not beat the marginal's:
            fitted questions get weight 0 (see the module docstring).
    """
    from surveylm.models.blend import choose_weight

    grid = np.linspace(0, 1, grid_size)

    def fit(pos: list[int], name: str) -> tuple[float, float]:
        probs = [model(i, name) for i in pos]
        anchors = [anchor(i, name) for i in pos]
        truth = [np.asarray(targets[i], dtype=float) for i in pos]
        w, losses = choose_weight(probs, anchors, truth, grid)
        return w, min(losses)

    by_kind: dict[str, list[int]] = {k: [] for k in KINDS}
    for i in val_pos:
        by_kind[kinds[int(i)]].append(int(i))
    default = Shrinkage()
    seen, new_group = 0.0, 0.0  # lost to the marginal: fitted questions get it
    if not lost_to_marginal:
        seen = fit(by_kind["seen"], "marginal")[0] if by_kind["seen"] else default.seen
        new_group = fit(by_kind["new_group"], "marginal")[0] if by_kind["new_group"] else 0.0
    new_question, prior = 0.0, "uniform"
    if by_kind["new_question"]:
        scored = {name: fit(by_kind["new_question"], name) for name in NEW_QUESTION_PRIORS}
        prior = min(scored, key=lambda name: scored[name][1])
        new_question = scored[prior][0]
    return Shrinkage(seen=seen, new_group=new_group, new_question=new_question,
                     new_question_prior=prior)  # fmt: skip


def pooled_predictions(
    shrinkage: Shrinkage,
    kinds: Sequence[str],
    positions: Sequence[int] | np.ndarray,
    model: Callable[[int, str], np.ndarray],
    anchor: Callable[[int, str], np.ndarray],
) -> dict[int, np.ndarray]:
    """The pooled prediction of each item at ``positions`` (the callables of
    :func:`choose_shrinkage`) under the chosen weights."""
    out = {}
    for i in positions:
        i, kind = int(i), kinds[int(i)]
        name = shrinkage.new_question_prior if kind == "new_question" else "marginal"
        out[i] = pool(model(i, name), anchor(i, name), shrinkage.weight(kind))
    return out


def fit_pooling(
    train: ItemSet, fit_pos: Sequence[int] | np.ndarray, val_pos: Sequence[int] | np.ndarray,
    model: Callable[[int, str], np.ndarray], anchor: Callable[[int, str], np.ndarray],
    lost_to_marginal: bool = False,
) -> tuple[list[str], Shrinkage, SeenCells | None]:  # fmt: skip
    """What a fitted model is pooled with, from its validation items: the groups of its
    fit part, the weights (:func:`choose_shrinkage`, with ``model``, ``anchor`` and
    ``lost_to_marginal`` as there) and the training cells with the prior strength of the
    pooled validation predictions (:func:`~surveylm.models.seen_cells.fitted_cells`)."""
    from surveylm.models.seen_cells import fitted_cells

    keys = group_keys(train)
    fit_groups = sorted({g for g in (keys[int(i)] for i in fit_pos) if g is not None})
    qids = train.frame["question_id"].to_numpy()
    fit_questions = {str(qids[int(i)]) for i in fit_pos}
    kinds = item_kinds(train, fit_questions, set(fit_groups), keys)
    shrinkage = choose_shrinkage(kinds, train.targets, val_pos, model, anchor,
                                 lost_to_marginal=lost_to_marginal)  # fmt: skip
    validation = pooled_predictions(shrinkage, kinds, val_pos, model, anchor)
    return fit_groups, shrinkage, fitted_cells(train, kinds, validation)


def apply_pooling(
    items: ItemSet, dists: Sequence[np.ndarray], shrinkage: Shrinkage,
    cells: SeenCells | None, *, labels: Mapping[str, Sequence[str]],
    marginals: Mapping[str, Sequence[float]], fit_groups: Sequence[str] | None,
    new_log_priors: Mapping[str, np.ndarray],
) -> list[np.ndarray]:  # fmt: skip
    """A fitted model's predictions ``dists`` pooled with their anchors by ``shrinkage``,
    then its training cells' data pooled in (``cells``; ``None`` = none).

    Args:
        items: The items predicted.
        dists: The model's own distributions, one per item.
        shrinkage: The weights chosen at fit time.
        cells: The training cells, or ``None``.
        labels: Option labels of the training questions (the order of ``marginals``).
        marginals: Training question id -> its marginal (a fitted question's anchor).
        fit_groups: The fit part's groups (``None``: a model saved before they were kept).
        new_log_priors: Log priors of new questions (:func:`new_question_log_priors`).
    """
    keys = group_keys(items)
    kinds = item_kinds(items, set(marginals), None if fit_groups is None else set(fit_groups),
                       keys)  # fmt: skip
    out = [pool(p, a, shrinkage.weight(k)) for p, a, k in zip(
        dists, anchors(items, kinds, labels, marginals, new_log_priors), kinds,
        strict=True)]  # fmt: skip
    return out if cells is None else cells.pool(items, out, labels, keys)
