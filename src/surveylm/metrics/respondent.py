"""Respondent-level metrics for imputation (Holtdirk et al. 2025), survey-weighted.

Accuracy, balanced accuracy, macro F1, log loss and the multiclass Brier score of
predicted distributions against respondents' answers, equal to scikit-learn's with
``sample_weight`` (tested). :func:`respondent_values` and :func:`class_metrics` are the
pieces :func:`surveylm.evaluation.evaluate` reuses for its bootstrap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from surveylm.distribution_checks import check_distribution_matrix
from surveylm.errors import DataError
from surveylm.metrics.registry import names

#: Names of the respondent-level metrics, in report order (from the registry).
RESPONDENT_METRICS = names("respondent")

ArrayLike = Sequence[float] | np.ndarray


def _respondent_inputs(
    y_true: ArrayLike, q: np.ndarray, sample_weight: ArrayLike | None, context: str = ""
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    qm = check_distribution_matrix(np.asarray(q, dtype=np.float64), context=context)
    y = np.asarray(y_true)
    if y.ndim == 2:
        if y.shape != qm.shape or not np.all((y == 0) | (y == 1)) or np.any(y.sum(1) != 1):
            raise DataError(f"{context}true answers must be one-hot rows shaped like {qm.shape}")
        y = y.argmax(axis=1)
    y = y.astype(np.int64)
    if y.shape != (len(qm),) or np.any((y < 0) | (y >= qm.shape[1])):
        raise DataError(
            f"{context}need {len(qm)} true option indices in [0, {qm.shape[1]}), got shape "
            f"{y.shape}"
        )
    if sample_weight is None:
        w = np.ones(len(y))
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != y.shape or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise DataError(
                f"{context}sample weights must be {len(y)} finite values >= 0, not all 0"
            )
    return y, qm, w


def respondent_values(y: np.ndarray, q: np.ndarray) -> dict[str, np.ndarray]:
    """Per-respondent pieces: predicted option (argmax, first on ties), correct (0/1),
    log loss ``−ln clip(q_y, ε, 1−ε)`` (ε = float64 machine epsilon, as scikit-learn),
    Brier ``Σ_k (q_k − y_k)²``."""
    pred = q.argmax(axis=1)
    q_y = q[np.arange(len(y)), y]
    eps = np.finfo(np.float64).eps
    return {
        "pred": pred,
        "correct": (pred == y).astype(np.float64),
        "log_loss": -np.log(np.clip(q_y, eps, 1 - eps)),
        "brier": (q * q).sum(axis=1) - 2 * q_y + 1.0,
    }


def class_metrics(
    tp: np.ndarray, t: np.ndarray, pr: np.ndarray, present: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced accuracy and macro F1 from weighted per-class sums (last axis = class).

    ``tp``: weight of correct answers of each class; ``t``: weight truly in the class;
    ``pr``: weight predicted in it; ``present``: class occurs (unweighted) as a true or a
    predicted label. Balanced accuracy averages recall over classes with ``t > 0``; macro F1
    averages ``2·tp / (t + pr)`` (0 when that is 0/0) over present classes — both exactly
    as scikit-learn.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(t > 0, tp / t, 0.0)
        f1 = np.where(t + pr > 0, 2 * tp / (t + pr), 0.0)
        bal = (recall * (t > 0)).sum(-1) / (t > 0).sum(-1)
        mf1 = (f1 * present).sum(-1) / present.sum(-1)
    return np.clip(bal, 0.0, 1.0), np.clip(mf1, 0.0, 1.0)


def respondent_metrics(
    y_true: ArrayLike, q: np.ndarray, sample_weight: ArrayLike | None = None
) -> dict[str, float]:
    """All of :data:`RESPONDENT_METRICS` for one question's respondents.

    Args:
        y_true: True option index per respondent, or one-hot rows.
        q: ``(n, K)`` predicted distributions.
        sample_weight: Survey weights (default 1).

    Returns:
        ``accuracy`` (argmax prediction, ties to the first option), ``balanced_accuracy``,
        ``macro_f1`` (over options that occur as a true or predicted answer), ``log_loss``
        (nats) and ``brier`` (multiclass: weighted mean of ``Σ_k (q_k − y_k)²``, in
        [0, 2]) — equal to scikit-learn's ``accuracy_score``, ``balanced_accuracy_score``,
        ``f1_score(average="macro")``, ``log_loss(labels=range(K))`` and
        ``brier_score_loss(labels=range(K), scale_by_half=False)`` with ``sample_weight``.
    """
    y, qm, w = _respondent_inputs(y_true, q, sample_weight)
    v = respondent_values(y, qm)
    k = qm.shape[1]
    t = np.bincount(y, weights=w, minlength=k)
    tp = np.bincount(y, weights=w * v["correct"], minlength=k)
    pr = np.bincount(v["pred"], weights=w, minlength=k)
    present = (np.bincount(y, minlength=k) + np.bincount(v["pred"], minlength=k)) > 0
    bal, mf1 = class_metrics(tp, t, pr, present)
    return {
        "accuracy": float(np.average(v["correct"], weights=w)),
        "balanced_accuracy": float(bal),
        "macro_f1": float(mf1),
        "log_loss": float(np.average(v["log_loss"], weights=w)),
        "brier": float(np.average(v["brier"], weights=w)),
    }


def accuracy(y_true: ArrayLike, q: np.ndarray, sample_weight: ArrayLike | None = None) -> float:
    """Weighted share of respondents whose most likely option is their answer."""
    return respondent_metrics(y_true, q, sample_weight)["accuracy"]


def balanced_accuracy(
    y_true: ArrayLike, q: np.ndarray, sample_weight: ArrayLike | None = None
) -> float:
    """Mean over true options of the weighted recall (see :func:`respondent_metrics`)."""
    return respondent_metrics(y_true, q, sample_weight)["balanced_accuracy"]


def macro_f1(y_true: ArrayLike, q: np.ndarray, sample_weight: ArrayLike | None = None) -> float:
    """Unweighted mean of per-option F1 (see :func:`respondent_metrics`)."""
    return respondent_metrics(y_true, q, sample_weight)["macro_f1"]


def log_loss(y_true: ArrayLike, q: np.ndarray, sample_weight: ArrayLike | None = None) -> float:
    """Weighted mean of ``−ln q_y`` (nats), q clipped to [ε, 1−ε] as scikit-learn does."""
    return respondent_metrics(y_true, q, sample_weight)["log_loss"]


def brier_score(y_true: ArrayLike, q: np.ndarray, sample_weight: ArrayLike | None = None) -> float:
    """Multiclass Brier score: weighted mean over respondents of ``Σ_k (q_k − y_k)²``."""
    return respondent_metrics(y_true, q, sample_weight)["brier"]
