"""Prediction-powered shares beside multiple imputation, in the imputation benchmark.

In an imputation problem the respondents who answered are a labelled set and the
nonrespondents an unlabelled one, so every imputation model also gives a
prediction-powered estimate of the option shares (:mod:`surveylm.correct`): the model's
share among the nonrespondents, corrected by its error on the answerers. Because the model
is fitted on the answerers, their predictions are cross-fitted
(:func:`surveylm.crossfit.cross_fit_predictions`, ``ppi_folds`` extra fits per method and
draw); a method that is not fitted (``fit: false``, a zero-shot LM) predicts everyone
directly.

The PPI++ interval is valid when the answerers are a random sample of the respondents
(MCAR); multiple imputation only needs the model to be right about the nonrespondents.
So a **disagreement** — the Rubin-pooled MI estimate outside the PPI++ interval — says that
the model's imputations carry a bias that its errors on the answerers reveal (or, under
MAR / MNAR / convenience scenarios, that the answerers are not like the nonrespondents:
there the PPI interval itself is not valid and the flag is a warning, not a verdict).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from surveylm.correct import effective_sample_size, respondent_predictions, survey_ppi_shares
from surveylm.crossfit import cross_fit_predictions
from surveylm.errors import SurveyLMError
from surveylm.items import build_respondent_items
from surveylm.models import make_run_model
from surveylm.survey import Survey

__all__ = ["KEYS", "ppi_rows", "with_mi"]

#: Columns that identify one missing-data draw of one method.
KEYS = ["scenario", "method", "rep", "unit"]
#: Bootstrap resamples of the effective-sample-size interval.
N_BOOT = 200


def ppi_rows(observed: Survey, config: Any, method: Any, seed: int) -> pd.DataFrame:
    """PPI++ shares of ``config.target`` on one missing-data draw, one row per option.

    Args:
        observed: The survey with the draw's answers hidden (answerers = labelled set).
        config: The :class:`~surveylm.experiments.imputation_config.ImputationConfig`
            (``target``, ``features``, ``level``, ``ppi_folds``).
        method: One :class:`~surveylm.experiments.imputation_config.MethodConfig`.
        seed: The draw's model and fold seed.

    Returns:
        :meth:`PPIShares.to_frame` columns plus ``effective_n_low`` / ``effective_n_high``
        (bootstrap interval of the effective sample size) and ``n_folds``.
    """
    target = config.target
    try:
        model = make_run_model(method.model, method.params, seed)
        if method.fit:
            preds = cross_fit_predictions(model, observed, target, config.features,
                                          folds=config.ppi_folds, seed=seed)  # fmt: skip
        else:
            items = build_respondent_items(observed, target, config.features,
                                           include_unanswered=True)  # fmt: skip
            preds = model.predict(items)
    except SurveyLMError as exc:
        raise type(exc)(f"method '{method.name}' (PPI): {exc}") from None
    shares = survey_ppi_shares(observed, target, preds, level=config.level)
    codes = observed.codes(target)
    lab = codes >= 0
    p = respondent_predictions(observed, target, preds)
    w = observed.weights.to_numpy(dtype=np.float64)
    ess = effective_sample_size(codes[lab], p[lab], p[~lab], labelled_weights=w[lab],
                                unlabelled_weights=w[~lab], level=config.level,
                                n_boot=N_BOOT, seed=seed)  # fmt: skip
    ess = ess[ess["option"] != "all"]
    return shares.to_frame().assign(
        effective_n_low=ess["ci_low"].to_numpy(),
        effective_n_high=ess["ci_high"].to_numpy(),
        n_folds=config.ppi_folds if method.fit else 0,
    )


def with_mi(parts: list[pd.DataFrame], population: pd.DataFrame) -> pd.DataFrame:
    """The PPI rows of every draw beside the full-sample MI estimate of the same draw.

    Adds ``mi_estimate``, ``mi_lower``, ``mi_upper``, ``truth``, ``covered`` (the truth
    inside the PPI++ interval), ``mi_covered`` and ``disagree`` (the MI estimate outside
    the PPI++ interval). Empty when there are no parts.
    """
    if not parts:
        return pd.DataFrame()
    ppi = pd.concat(parts, ignore_index=True)
    full = population[population["group"].isna()]
    names = {"estimate": "mi_estimate", "lower": "mi_lower", "upper": "mi_upper",
             "covered": "mi_covered"}  # fmt: skip
    mi = full[[*KEYS, "option", "estimate", "lower", "upper", "truth", "covered"]]
    mi = mi.rename(columns=names)
    out = ppi.merge(mi, on=[*KEYS, "option"], how="left")
    out["covered"] = (out["lower"] <= out["truth"]) & (out["truth"] <= out["upper"])
    out["disagree"] = (out["mi_estimate"] < out["lower"]) | (out["mi_estimate"] > out["upper"])
    first = [*KEYS, "option", "estimate", "lower", "upper", "mi_estimate", "mi_lower",
             "mi_upper", "disagree", "truth", "covered", "mi_covered"]  # fmt: skip
    return out[first + [c for c in out.columns if c not in first]]
