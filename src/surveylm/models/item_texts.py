"""Items as short texts: one per context line, one per question, one per option.

The encoder answer model does not embed one long prompt per item. It embeds every
*distinct* short text once — each ``Feature: value`` line of a respondent's profile
(the GLES study's format, Holtdirk et al. 2025) or each ``attribute: value`` of a group,
each question text and each option text — and a learned head combines them
(:mod:`surveylm.models.option_head`). A survey of 1,000 respondents with ten features
has a few hundred distinct lines, so the encoder runs a few hundred short sequences
instead of 1,000 long ones, nothing is ever truncated away (the question stays whole
however long the profile), and a frozen encoder's embeddings can be cached across fits.

Torch-free: this module only turns items into indices into a table of strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from surveylm.items import ItemSet, feature_labels
from surveylm.prompts import context_entry, get_format
from surveylm.survey import Question

__all__ = [
    "ItemTexts", "TextTable", "battery_log_prior", "context_lines", "item_texts",
    "marginal_log_prior", "numeric_bin_edges", "option_positions",
]  # fmt: skip

#: A numeric covariate with more distinct training values than this is binned.
MAX_NUMERIC_LEVELS = 10


def context_lines(
    context: Mapping[str, Any] | None,
    questions: Mapping[str, Question],
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """``Label: value`` lines of a context, labels from the codebook (``questions``, and
    ``labels`` for covariates).

    Respondent values render as their option label (``Party identification: Strong
    Democrat``); a group's several values are joined with " or ".
    """
    fmt = get_format("profile")
    return [context_entry(fmt, key, value, questions, labels)[1]
            for key, value in (context or {}).items()]  # fmt: skip


@dataclass(eq=False)
class TextTable:
    """Distinct strings, each with a stable integer id (insertion order)."""

    texts: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)

    def add(self, text: str) -> int:
        """The id of ``text``, adding it when new."""
        pos = self.index.get(text)
        if pos is None:
            pos = self.index[text] = len(self.texts)
            self.texts.append(text)
        return pos

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(eq=False)
class ItemTexts:
    """Per item: ids (into ``table``) of its context lines, its question and its options."""

    table: TextTable
    lines: list[list[int]]
    question: list[int]
    options: list[list[int]]


def numeric_bin_edges(items: ItemSet, n_bins: int) -> dict[str, list[float]]:
    """Quantile bin edges of every numeric covariate (a context key that is not a question)
    with more than :data:`MAX_NUMERIC_LEVELS` distinct values in ``items``.

    A text encoder reads ``Age: 37`` and ``Age: 38`` as unrelated strings and gives a
    continuous covariate one line per respondent, so nothing is learned across them;
    binned (``Age: 35 to under 45``) each bin is a line that many respondents share, as a tree
    model's split or a binned covariate in a logistic regression. The edges are the
    inner ``n_bins``-quantiles of the training values (ties merged); ``n_bins < 2``
    means no binning.
    """
    if n_bins < 2:
        return {}
    values: dict[str, list[float]] = {}
    not_numeric: set[str] = set()
    for ctx in items.contexts:
        for key, v in (ctx or {}).items():
            if key in items.questions:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float | np.number):
                not_numeric.add(key)
            else:
                values.setdefault(key, []).append(float(v))
    edges = {}
    for key, vals in values.items():
        if key in not_numeric:
            continue
        arr = np.asarray(vals)
        arr = arr[np.isfinite(arr)]
        if len(np.unique(arr)) <= MAX_NUMERIC_LEVELS:
            continue
        inner = np.quantile(arr, np.linspace(0, 1, n_bins + 1)[1:-1])
        edges[key] = sorted({float(e) for e in inner})
    return edges


def binned_value(value: float, edges: Sequence[float]) -> str:
    """The bin of ``value`` as text: ``"under 30"``, ``"30 to under 45"``, ``"45 or more"``."""
    j = int(np.searchsorted(edges, value, side="right"))
    if j == 0:
        return f"under {_number(edges[0])}"
    if j == len(edges):
        return f"{_number(edges[-1])} or more"
    return f"{_number(edges[j - 1])} to under {_number(edges[j])}"


def _number(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e6 else f"{x:.3e}"


def item_texts(
    items: ItemSet,
    table: TextTable | None = None,
    *,
    option_template: str = "{option}",
    numeric_bins: Mapping[str, Sequence[float]] | None = None,
) -> ItemTexts:
    """Break every item into its texts (see module docstring).

    Args:
        items: Respondent or group items.
        table: A table to extend (so several item sets share ids); ``None`` = a new one.
        option_template: Text of one option; placeholders ``{option}`` and ``{question}``.
        numeric_bins: Covariate → bin edges (:func:`numeric_bin_edges`): those
            covariates' lines show their bin, not their value.
    """
    numeric_bins = numeric_bins or {}
    table = TextTable() if table is None else table
    lines, question, options = [], [], []
    option_ids: dict[str, list[int]] = {}
    for qid in items.question_ids:
        q = items.questions[qid]
        option_ids[qid] = [table.add(option_template.format(option=o, question=q.text))
                           for o in q.options]  # fmt: skip
    line_cache: dict[tuple[str, str], int] = {}
    labels = feature_labels(items)
    for context, qid in zip(items.frame["context"], items.frame["question_id"], strict=True):
        q = items.questions[qid]
        row = []
        for key, value in (context or {}).items():
            ck = (key, repr(value))
            if ck not in line_cache:
                shown = value
                edges = numeric_bins.get(key)
                if edges and isinstance(value, int | float | np.number) and np.isfinite(value):
                    shown = binned_value(float(value), edges)
                line_cache[ck] = table.add(context_lines({key: shown}, items.questions, labels)[0])
            row.append(line_cache[ck])
        lines.append(row)
        question.append(table.add(q.text))
        options.append(option_ids[qid])
    return ItemTexts(table, lines, question, options)


def option_positions(k: int) -> np.ndarray:
    """Position features of a question's ``k`` options ``[k, 4]``: relative position in
    [0, 1], first, last, and 1/k — what a prior over unseen questions can use besides
    the texts (answer shares depend on where an option sits in an ordered scale)."""
    rel = np.arange(k) / max(k - 1, 1)
    first = (np.arange(k) == 0).astype(float)
    last = (np.arange(k) == k - 1).astype(float)
    return np.stack([rel, first, last, np.full(k, 1.0 / k)], axis=1)


def marginal_log_prior(
    items: ItemSet, *, smoothing: float = 0.5, weights: Sequence[float] | None = None
) -> dict[str, np.ndarray]:
    """Log of each question's (weighted) training marginal: the start of every fitted LM
    answer model, and what it is shrunk to.

    The same distribution as :class:`~surveylm.models.marginals.QuestionMarginalModel`'s,
    ``(n · mean + s · uniform) / (n + s)`` over the question's ``n`` items, so no option
    gets probability 0 and an LM shrunk all the way is exactly the baseline. (A
    pseudo-count of ``s`` items *per option* instead moved a 12-group question's
    marginal by TV .023 towards uniform on the non-voters survey, where the question
    marginal is TV .058 from unseen groups' distributions.)
    """
    from surveylm.models.marginals import smoothed_marginal

    out: dict[str, np.ndarray] = {}
    qids = items.frame["question_id"].to_numpy()
    w = items.frame["weight"].to_numpy(dtype=float) if weights is None else np.asarray(weights)
    targets = items.targets
    for qid in items.question_ids:
        pos = [int(i) for i in np.flatnonzero(qids == qid) if targets[i] is not None]
        k = items.questions[qid].n_options
        if not pos:
            out[qid] = np.full(k, -np.log(k))
            continue
        known = [np.asarray(targets[i], dtype=float) for i in pos]
        out[qid] = np.log(smoothed_marginal(known, w[pos], smoothing))
    return out


def battery_log_prior(
    labels: Mapping[str, Sequence[str]], marginals: Mapping[str, Sequence[float]],
    qids: Iterable[str],
) -> dict[str, np.ndarray]:  # fmt: skip
    """The prior of a question without a marginal of its own: the log of the mean
    training marginal of the *other* questions with the same option labels (in any
    order: each is read by label).

    Questions asked with one response scale (a battery: "How important is each of the
    following...") share a distribution more than any text model knows, so a new item of
    a battery starts from its siblings' answers rather than from the uniform. On the
    non-voters survey (8 unseen of 28 questions, all in batteries) the mean marginal of
    the siblings is TV .172 from the groups' distributions, uniform .292; on ANES 1996
    Dole's placement on Clinton's scale is worse than uniform (.389 vs .339), which is
    why a model uses this only where validation on held-out questions says so.

    Args:
        labels: Question id -> option labels, for the training questions and every id in
            ``qids`` (:func:`~surveylm.models.option_order.option_labels`).
        marginals: Training question id -> its marginal (probabilities).
        qids: The questions to give a prior; a question in ``marginals`` is left out of
            its own mean (a leave-one-out prior while training).

    Returns:
        Question id -> log prior, only for questions with at least one sibling.
    """
    from surveylm.models.option_order import trained_positions

    scale: dict[tuple[str, ...], list[str]] = {}
    for qid in marginals:
        scale.setdefault(tuple(sorted(labels[qid])), []).append(qid)
    out: dict[str, np.ndarray] = {}
    for qid in qids:
        mine = list(labels[qid])
        siblings = [s for s in scale.get(tuple(sorted(mine)), []) if s != qid]
        if siblings:  # each sibling's marginal read by label, in this question's order
            rows = []
            for s in siblings:
                m, idx = np.asarray(marginals[s], dtype=float), trained_positions(labels[s], mine)
                rows.append(m if idx is None else m[idx])
            mean = np.mean(rows, axis=0)
            out[qid] = np.log(np.clip(mean, 1e-12, None) / np.clip(mean, 1e-12, None).sum())
    return out
