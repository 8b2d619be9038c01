"""A question asked with its options in another order than in training.

Fitted answer models keep per-question state in the order the training question listed
its options: a marginal, a log prior, a calibration offset, the columns of an indicator
table. An item can ask the same question id with the options reordered -- the
option-order robustness check of SubPOP and Cao et al. (2025) permutes them on purpose,
and a re-coded survey file may list them differently -- and that state must follow the
labels, not the positions. Read position by position, a marginal of (Clinton, Dole) is
a marginal of (Dole, Clinton): on the demo's group items that misreading had made the
fitted encoder look order-fragile (TV .410 with the order reversed against .142), when
only its state was misread.

:func:`trained_positions` says where each option of the item's question sits in the
training order; :func:`in_question_order` re-expresses a per-option array in the item's
order. A question whose labels are not a reordering of the training labels (another
question under the same id) is left as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["in_question_order", "option_labels", "trained_positions"]


def option_labels(items: Any) -> dict[str, list[str]]:
    """Each question's option labels in an item set (what a model stores at fit time)."""
    return {q: [str(o) for o in items.questions[q].options] for q in items.question_ids}


def trained_positions(
    trained: Sequence[str] | None, options: Sequence[str]
) -> np.ndarray | None:
    """``idx`` with ``options[j] == trained[idx[j]]`` when ``options`` lists the trained
    labels in another order; ``None`` when the order is the trained one, the trained
    labels are unknown (a model saved before they were kept), or the labels differ."""
    if trained is None or len(trained) != len(options):
        return None
    labels = [str(o) for o in options]
    if labels == list(trained):
        return None
    where = {label: i for i, label in enumerate(trained)}
    if len(where) != len(trained) or set(labels) != set(where):
        return None
    return np.array([where[label] for label in labels], dtype=int)


def in_question_order(
    values: Any, trained: Mapping[str, Sequence[str]] | None, qid: str, options: Sequence[str]
) -> np.ndarray:
    """``values`` (one per option, in the training order of question ``qid``) in the
    order of ``options``."""
    arr = np.asarray(values)
    idx = trained_positions(None if trained is None else trained.get(qid), options)
    return arr if idx is None else arr[idx]
