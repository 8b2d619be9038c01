"""Cross-fitted predictions: every respondent predicted by a model that never saw its answer.

Prediction-powered inference (:mod:`surveylm.correct`) needs the labelled respondents'
predictions to come from a model that was not fitted on their answers — a model fitted on
them and then scored on them looks better than it is, and the correction it earns is too
small. When the only real answers are the labelled ones (imputation: the respondents who
answered are both the training data and the labelled set), cross-prediction (Zrnic &
Candès 2024, "Cross-prediction-powered inference", *PNAS* 121:e2322083121) splits them
into ``k`` folds, fits one model per fold on the other folds, predicts each labelled
respondent with the model that left its fold out, and predicts each unlabelled respondent
with the average of the ``k`` models. It costs ``k`` fits instead of one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from surveylm.errors import DataError, where
from surveylm.items import build_respondent_items
from surveylm.models.base import AnswerModel, Predictions, derive_seed
from surveylm.survey import Survey

__all__ = ["cross_fit_predictions"]


def cross_fit_predictions(
    model: AnswerModel,
    survey: Survey,
    target: str,
    features: Sequence[str],
    *,
    folds: int = 5,
    seed: int = 0,
) -> Predictions:
    """Out-of-fold predictions of ``target`` for every respondent of ``survey``.

    Args:
        model: An unfitted :class:`AnswerModel`; a fresh clone is fitted per fold.
        survey: Respondents with an answer to ``target`` are the labelled set (the folds);
            those without one are predicted by every fold model, averaged.
        target: The question.
        features: Questions / covariates the model sees (respondent items).
        folds: Number of folds ``k`` (≥ 2); folds are stratified by the answer.
        seed: Seed of the fold assignment.

    Returns:
        :class:`Predictions` of the items ``"{target}|r={respondent}"`` of every
        respondent, in the survey's order, named after the model with ``extra["folds"]``.

    Raises:
        DataError: ``folds`` below 2, or fewer answers than folds.
    """
    items = build_respondent_items(survey, target, features, include_unanswered=True)
    known = items.has_target
    codes = survey.codes(target)
    rid_codes = dict(zip(survey.data.index.astype(str), codes, strict=True))
    labels = np.array([rid_codes[str(r)] for r in items.frame["respondent_id"]])
    if folds < 2 or known.sum() < folds:
        got = f"got {folds} folds, {int(known.sum())} answers"
        raise DataError(f"{where(question=target)}cross-fitting needs 2+ folds and at least "
                        f"as many answers; {got}")  # fmt: skip
    fold = _stratified_folds(labels, known, folds, seed)
    k = survey.question(target).n_options
    out = np.zeros((len(items), k))
    unknown = ~known
    for f in range(folds):
        train, held = known & (fold != f), fold == f
        fitted = model.clone().fit(items.subset(train))
        if held.any():
            out[held] = _stack(fitted.predict(items.subset(held)), k)
        if unknown.any():
            out[unknown] += _stack(fitted.predict(items.subset(unknown)), k) / folds
    name = getattr(model, "name", type(model).__name__)
    return Predictions(
        items.frame["item_id"].to_numpy(object), list(out), f"{name} (cross-fitted)",
        extra={"folds": folds, "seed": seed},
    )  # fmt: skip


def _stratified_folds(labels: np.ndarray, known: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold of each known item (``-1`` for the others), balanced within each answer."""
    rng = np.random.default_rng(derive_seed(seed, k))
    fold = np.full(len(labels), -1)
    for code in np.unique(labels[known]):
        members = rng.permutation(np.flatnonzero(known & (labels == code)))
        fold[members] = (np.arange(len(members)) + int(rng.integers(k))) % k
    return fold


def _stack(preds: Predictions, k: int) -> np.ndarray:
    arr = np.vstack(preds.distributions) if len(preds) else np.zeros((0, k))
    if arr.shape[1] != k:
        raise DataError(f"the model predicted {arr.shape[1]} options, not {k}")
    return arr
