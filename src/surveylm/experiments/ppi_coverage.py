"""Coverage study of prediction-powered shares: do the intervals hold what they promise?

The design of the acceptance test of :mod:`surveylm.correct`: split a survey's
respondents at random into a *model* half, on which each answer model is fitted once, and
an *estimation* half whose full (weighted) share of the target's options is the truth.
Then, ``draws`` times for each labelled sample size ``n``, draw ``n`` respondents of the
estimation half at random as the labelled set (their real answers and predictions), take
the rest of the half as the unlabelled set (predictions only), and compute the PPI++ and
the classical (labelled-only) intervals. Reported per model × ``n``: the coverage of the
truth over draws × options, the mean interval widths, their ratio and the mean effective
sample size.

Three kinds of model are compared, as the issue asks: a good one (a model fitted on the
model half, e.g. CatBoost), a poor one (the question marginal: the same prediction for
everyone, so λ = 0 and PPI++ is the classical estimate) and a deliberately biased one
(the good model's predictions with half their mass moved to the last option).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from surveylm.correct import normal_quantile, ppi_shares
from surveylm.errors import DataError
from surveylm.items import build_respondent_items
from surveylm.models import make_model
from surveylm.models.base import AnswerModel, derive_seed
from surveylm.splits import split_respondents
from surveylm.survey import Survey

__all__ = ["biased", "coverage_study", "summarise_coverage"]

_COLUMNS = ("model", "n", "draw", "option", "truth", "estimate", "lower", "upper", "lam",
            "classical", "classical_lower", "classical_upper", "effective_n")  # fmt: skip
#: Share of the predicted mass the biased model moves to the last option.
BIAS_MASS = 0.5


def biased(p: np.ndarray, mass: float = BIAS_MASS) -> np.ndarray:
    """Predictions with ``mass`` of every row moved to the last option (a model that is
    systematically wrong but still ranks respondents as the original does)."""
    out = (1 - mass) * np.asarray(p, dtype=np.float64)
    out[:, -1] += mass
    return out


def coverage_study(
    survey: Survey,
    target: str,
    features: Sequence[str],
    models: Mapping[str, AnswerModel | str],
    *,
    sizes: Sequence[int] = (50, 100, 200),
    draws: int = 200,
    seed: int = 0,
    level: float = 0.95,
    biased_from: str | None = None,
) -> pd.DataFrame:
    """Repeated labelled-sample draws; one row per dataset draw × model × n × option.

    Args:
        survey: The survey (respondents without an answer to ``target`` are dropped).
        target: The question whose option shares are estimated.
        features: What the models see of each respondent.
        models: Display name → unfitted model or registry name; fitted on the model half.
        sizes: Labelled sample sizes.
        draws: Labelled samples per size.
        seed: Seed of the halves and of every draw.
        level: Interval level.
        biased_from: Name of a model in ``models`` whose predictions, made
            :func:`biased`, are added as ``"<name> biased"``.

    Returns:
        Columns ``model, n, draw, option, truth, estimate, lower, upper, lam,
        classical, classical_lower, classical_upper, covered, classical_covered,
        width, classical_width, effective_n``.
    """
    data = survey.subset(survey.answered(target))
    fit_half, est_half = split_respondents(data, 0.5, seed=seed, stratify=target)
    big = max(sizes)
    if big >= est_half.n_respondents:
        raise DataError(f"labelled size {big} leaves no unlabelled respondents in the "
                        f"estimation half ({est_half.n_respondents})")  # fmt: skip
    train = build_respondent_items(fit_half, target, features)
    test = build_respondent_items(est_half, target, features)
    preds: dict[str, np.ndarray] = {}
    for name, model in models.items():
        m = make_model(model) if isinstance(model, str) else model.clone()
        preds[name] = np.vstack(m.fit(train).predict(test).for_items(test).distributions)
    if biased_from is not None:
        preds[f"{biased_from} biased"] = biased(preds[biased_from])
    codes = est_half.codes(target)
    w = est_half.weights.to_numpy(dtype=np.float64)
    options = est_half.question(target).options
    truth = np.bincount(codes, weights=w, minlength=len(options)) / w.sum()
    cols: dict[str, list[np.ndarray]] = {c: [] for c in _COLUMNS}
    for n in sizes:
        for d in range(draws):
            rng = np.random.default_rng(derive_seed(seed, n, d))
            lab = np.zeros(len(codes), dtype=bool)
            lab[rng.choice(len(codes), n, replace=False)] = True
            for name, p in preds.items():
                s = ppi_shares(codes[lab], p[lab], p[~lab], labelled_weights=w[lab],
                               unlabelled_weights=w[~lab], options=options,
                               level=level)  # fmt: skip
                k, z = len(options), normal_quantile(level, s.df)
                for col, v in (
                    ("model", [name] * k), ("n", [n] * k), ("draw", [d] * k),
                    ("option", options), ("truth", truth), ("estimate", s.estimate),
                    ("lower", s.lower), ("upper", s.upper), ("lam", s.lam),
                    ("classical", s.classical),
                    ("classical_lower", np.clip(s.classical - z * s.classical_se, 0, 1)),
                    ("classical_upper", np.clip(s.classical + z * s.classical_se, 0, 1)),
                    ("effective_n", s.effective_n),
                ):  # fmt: skip
                    cols[col].append(np.asarray(v))
    out = pd.DataFrame({c: np.concatenate(v) for c, v in cols.items()})
    return out.assign(
        covered=(out["lower"] <= out["truth"]) & (out["truth"] <= out["upper"]),
        classical_covered=(out["classical_lower"] <= out["truth"])
        & (out["truth"] <= out["classical_upper"]),
        width=out["upper"] - out["lower"],
        classical_width=out["classical_upper"] - out["classical_lower"],
    )


def summarise_coverage(draws: pd.DataFrame) -> pd.DataFrame:
    """Per model × n: ``coverage`` (PPI++) and ``classical_coverage`` over draws ×
    options, mean ``width`` and ``classical_width``, ``width_ratio`` (PPI++ / classical),
    mean ``effective_n``, mean ``lam`` and the number of ``draws``."""
    g = draws.groupby(["model", "n"], sort=False)
    out = g.agg(
        coverage=("covered", "mean"), classical_coverage=("classical_covered", "mean"),
        width=("width", "mean"), classical_width=("classical_width", "mean"),
        effective_n=("effective_n", "mean"), lam=("lam", "mean"), draws=("draw", "nunique"),
    ).reset_index()  # fmt: skip
    out.insert(6, "width_ratio", out["width"] / out["classical_width"])
    return out
