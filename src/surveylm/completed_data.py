"""Multiple imputation of one question's non-response, in R mice's ``complete(long)`` format.

(This module was ``surveylm.impute``; that path still imports, but ``surveylm.impute`` is
the function :func:`impute`, exported by the package.)

:func:`impute` fits any :class:`~surveylm.models.base.AnswerModel` on the respondents who
answered the target, predicts a distribution for each respondent who did not, and draws
``m`` completed datasets from those distributions — per-draw distributions when the model
provides them (``Predictions.extra["draws"]``, e.g. the chained-equations imputer, whose
draws carry parameter uncertainty: *proper* multiple imputation, Rubin 1987, ch. 4).
The result is the long format of van Buuren & Groothuis-Oudshoorn's mice
(``complete(imp, "long", include = TRUE)``): ``.imp`` 0 is the original data with its
missing answers, ``.imp`` 1..m the completed datasets, ``.id`` the respondent id.

:func:`pool_shares` pools the weighted option shares of the completed datasets by Rubin's
rules (:func:`surveylm.mi_pooling.rubin_pool`), so the same file that an analyst takes to
R or Stata also gives the headline estimate with an honest interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from surveylm.errors import DataError, FileFormatError, where
from surveylm.items import build_respondent_items
from surveylm.mi_pooling import completed_shares, draw_imputations, rubin_pool
from surveylm.models.base import AnswerModel
from surveylm.survey import Survey, kish_effective_n

#: Columns that every completed-data frame starts with.
INDEX_COLUMNS = (".imp", ".id", ".weight")


def impute(
    survey: Survey,
    target: str,
    features: Sequence[str],
    model: AnswerModel | str,
    m: int = 20,
    seed: int = 0,
    *,
    model_params: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Impute the missing answers to ``target`` ``m`` times.

    Args:
        survey: The survey; respondents without an answer to ``target`` are imputed.
        target: The question to impute.
        features: Questions / covariates the model sees for each respondent.
        model: An unfitted :class:`AnswerModel` (fitted here on the respondents who
            answered) or a registry name for :func:`surveylm.models.make_model`.
        m: Number of completed datasets (≥ 1).
        seed: Seed of the draws.
        model_params: Constructor parameters when ``model`` is a registry name.

    Returns:
        Long frame with ``.imp`` (0 = original data), ``.id`` (respondent id), ``.weight``
        (survey weight), ``target`` and the features; ``.imp`` 1..m have every answer to
        ``target`` filled in. The target column is categorical with the question's options.

    Raises:
        DataError: nobody to impute, nobody to learn from, or ``m < 1``.
    """
    if m < 1:
        raise DataError(f"m must be at least 1, got {m}")
    if isinstance(model, str):
        from surveylm.models import make_model

        model = make_model(model, **(model_params or {}))
    q = survey.question(target)
    codes = survey.codes(target)
    missing = codes < 0
    if not missing.any():
        raise DataError(f"{where(question=target)}every respondent answered: nothing to impute")
    items = build_respondent_items(survey, target, features, include_unanswered=True)
    known = items.has_target
    preds = model.fit(items.subset(known)).predict(items.subset(~known))
    draws = draw_imputations(preds, m, seed)  # [m, n_missing], in respondent order
    base = pd.DataFrame({
        ".id": [str(r) for r in survey.data.index],
        ".weight": survey.weights.to_numpy(dtype=np.float64),
    })  # fmt: skip
    for col in features:
        base[col] = survey.data[col].to_numpy()
    frames = []
    idx = np.flatnonzero(missing)
    for j in range(m + 1):
        filled = codes.copy()
        if j > 0:
            filled[idx] = draws[j - 1]
        answers = pd.Categorical.from_codes(filled, categories=list(q.options))
        frames.append(base.assign(**{target: answers}).assign(**{".imp": j}))
    out = pd.concat(frames, ignore_index=True)
    return out[[*INDEX_COLUMNS, target, *[f for f in features if f != target]]]


def pool_shares(
    frame: pd.DataFrame,
    target: str,
    *,
    level: float = 0.95,
    estimand: Literal["population", "sample"] = "population",
) -> pd.DataFrame:
    """Rubin-pooled weighted shares of each option of ``target`` from completed datasets.

    Args:
        frame: Output of :func:`impute` (or a file read back); rows with ``.imp`` 0 are
            ignored, ``.imp`` 1..m must be complete.
        target: The imputed column.
        level: Interval level.
        estimand: ``population`` (sampling + imputation variance, ``df_com = n_eff − 1``)
            or ``sample`` (imputation variance only), see
            :func:`surveylm.mi_pooling.multiple_imputation_shares`.

    Returns:
        One row per option: ``option, estimate, se, lower, upper, df, fmi, m``.
    """
    for col in (".imp", ".weight", target):
        if col not in frame.columns:
            raise DataError(f"{where(column=col)}missing from the completed-data frame")
    done = frame[frame[".imp"] > 0]
    if done[target].isna().any():
        raise DataError(f"{where(column=target)}completed datasets still have missing answers")
    options = list(frame[target].cat.categories) if isinstance(
        frame[target].dtype, pd.CategoricalDtype
    ) else sorted(done[target].astype(str).unique())  # fmt: skip
    est, var, n_eff = [], [], []
    for _, part in done.groupby(".imp", sort=True):
        codes = pd.Categorical(part[target].astype(str), categories=options).codes
        w = part[".weight"].to_numpy(dtype=np.float64)
        s, v = completed_shares(np.asarray(codes), w, len(options))
        est.append(s)
        var.append(v if estimand == "population" else np.zeros_like(v))
        n_eff.append(kish_effective_n(w))
    n = n_eff[0] if estimand == "population" else None
    p = rubin_pool(np.array(est), np.array(var), n, level=level)
    return pd.DataFrame({
        "option": options, "estimate": p.estimate, "se": p.se, "lower": p.lower,
        "upper": p.upper, "df": p.df, "fmi": p.fmi, "m": p.m,
    })  # fmt: skip


def write_imputations(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write completed datasets atomically: Parquet (``.parquet``/``.pq``) or CSV (``.csv``).

    Raises:
        FileFormatError: any other suffix.
    """
    from surveylm.io.atomic import atomic_path

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise FileFormatError(
            f"{where(file=path)}unsupported output type '{path.suffix}', expected .parquet or .csv"
        )
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            out = frame.copy()
            for col in out.columns:
                if out[col].dtype == object:
                    out[col] = out[col].map(lambda v: None if v is None or v != v else str(v))
            out.to_parquet(tmp, index=False)
    return path


__all__ = ["INDEX_COLUMNS", "impute", "pool_shares", "write_imputations"]
