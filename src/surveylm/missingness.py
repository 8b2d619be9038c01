"""Non-response simulators: which respondents' answers to a target question go missing.

Each scenario is a named, seeded function returning a boolean *missing* mask over a
survey's respondents (``True`` = the answer is hidden and must be imputed). Only
respondents who answered the target can be masked — the others have no truth to hide
and stay unanswered whatever the scenario. The classic mechanisms follow Rubin (1976)
and Little & Rubin (2019, *Statistical Analysis with Missing Data*, ch. 1):

* :func:`mcar` — missing completely at random: a simple random sample of the answers.
* :func:`mar` — missing at random: the probability of being missing is a logistic
  function of observed covariates.
* :func:`mnar` — missing not at random: it depends on the (hidden) answer itself.
* :func:`convenience` — a convenience sample (Holtdirk et al. 2025, "Learning from
  Convenience Samples"): only respondents matching a filter such as ``age < 30`` answer;
  everyone else is to be imputed. This is the systematic non-response of the GLES study.
  The filter language is :func:`surveylm.filter_expressions.evaluate_filter`.

:func:`apply_missingness` blanks the masked answers in a copy of the survey (the
original, with the truth, is untouched). Scenarios are described in YAML by
:data:`surveylm.missingness_config.ScenarioConfig` (a pydantic union on ``kind``) and
read by :func:`surveylm.missingness_config.load_scenarios`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

from surveylm.errors import DataError, preview, where
from surveylm.filter_expressions import evaluate_filter
from surveylm.survey import Survey

__all__ = ["apply_missingness", "convenience", "mar", "mcar", "mnar"]


# -- scenarios ---------------------------------------------------------------------------
def _eligible(survey: Survey, target: str) -> np.ndarray:
    answered = survey.answered(target)
    if answered.sum() < 2:
        raise DataError(f"{where(question=target)}fewer than 2 answers: nothing to hide")
    return answered


def _check_rate(rate: float) -> float:
    rate = float(rate)
    if not 0.0 < rate < 1.0:
        raise DataError(f"missingness rate must be in (0, 1), got {rate}")
    return rate


def _check_mask(mask: np.ndarray, eligible: np.ndarray, target: str, what: str) -> np.ndarray:
    if not mask.any():
        raise DataError(f"{where(question=target)}{what} hides no answer")
    if not (eligible & ~mask).any():
        raise DataError(f"{where(question=target)}{what} hides every answer: none left to learn")
    return mask


def mcar(survey: Survey, target: str, rate: float, seed: int = 0) -> np.ndarray:
    """Missing completely at random: hide a simple random sample of the answers.

    Exactly ``round(rate · n_answered)`` answers are hidden (a fixed rate, as in the
    random non-response setting of Holtdirk et al. 2025), chosen uniformly at random.

    Args:
        survey: The survey.
        target: The question whose answers go missing.
        rate: Share of the answered respondents to hide, in (0, 1).
        seed: Random seed.

    Returns:
        Boolean mask over respondents (``True`` = hidden).
    """
    rate = _check_rate(rate)
    eligible = _eligible(survey, target)
    idx = np.flatnonzero(eligible)
    k = round(rate * len(idx))
    mask = np.zeros(survey.n_respondents, dtype=bool)
    mask[np.random.default_rng(seed).choice(idx, size=k, replace=False)] = True
    return _check_mask(mask, eligible, target, f"MCAR at rate {rate}")


def _scores(survey: Survey, column: str, coef: float | Mapping[str, float]) -> np.ndarray:
    """Numeric score of one covariate, standardised over respondents who have it (missing
    → 0, the mean). Questions score by option: the given mapping, else the ordinal value
    (non-substantive options → missing), else the option index."""
    loc = where(column=column)
    if column in survey.questions:
        q = survey.questions[column]
        codes = survey.codes(column)
        if isinstance(coef, Mapping):
            unknown = [o for o in coef if o not in q.options]
            if unknown:
                raise DataError(f"{loc}options {preview(unknown)} not in {preview(q.options, 8)}")
            values = np.array([float(coef.get(o, 0.0)) for o in q.options])
            scale = 1.0
        else:
            values = np.asarray(q.ordinal if q.ordinal else range(q.n_options), dtype=float)
            if q.ordinal:
                values = np.where(values < 0, np.nan, values)
            scale = float(coef)
        x = np.where(codes >= 0, values[np.maximum(codes, 0)], np.nan)
    elif column in survey.covariates:
        if isinstance(coef, Mapping):
            raise DataError(f"{loc}a numeric covariate takes one coefficient, not a mapping")
        try:
            x = survey.data[column].to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise DataError(f"{loc}covariate is not numeric") from None
        scale = float(coef)
    else:
        raise DataError(
            f"{loc}not a question or covariate of survey '{survey.name}' (columns: "
            f"{preview([*survey.question_ids, *survey.covariates], 12)})"
        )
    ok = np.isfinite(x)
    if ok.sum() > 1 and not isinstance(coef, Mapping):
        sd = float(np.std(x[ok]))
        x = (x - np.mean(x[ok])) / (sd if sd > 0 else 1.0)
    return np.where(ok, x, 0.0) * scale


def _logistic_mask(
    eta: np.ndarray, eligible: np.ndarray, rate: float, seed: int
) -> tuple[np.ndarray, float]:
    """Bernoulli draws with ``P(missing) = expit(α + η)``, α solved so that the expected
    missing share among eligible respondents equals ``rate``."""
    e = eta[eligible]
    alpha = brentq(lambda a: float(np.mean(expit(a + e))) - rate, -50 - e.max(), 50 - e.min())
    p = np.where(eligible, expit(alpha + eta), 0.0)
    u = np.random.default_rng(seed).random(len(eta))
    return u < p, float(alpha)


def mar(
    survey: Survey,
    target: str,
    covariates: Sequence[str] | Mapping[str, float | Mapping[str, float]],
    rate: float,
    strength: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Missing at random: ``P(missing) = expit(α + strength · Σ_j β_j z_j)``.

    ``z_j`` is covariate ``j`` standardised (ordinal questions by their ordinal values,
    nominal ones by option index, numeric covariates as they are; a missing value counts
    as the mean), or — for a question given a mapping — the mapping's score of the answer
    (unstandardised, options left out score 0). The intercept ``α`` is solved so that the
    *expected* missing share equals ``rate``; each respondent is then drawn independently,
    so the realised share varies around it. Missingness depends only on observed
    variables, which is what makes it MAR (Rubin 1976).

    Args:
        survey: The survey.
        target: The question whose answers go missing (not allowed as a covariate: that
            would be MNAR, see :func:`mnar`).
        covariates: Column names (each ``β_j = 1``), or a mapping column → ``β_j`` (a
            number) or option → score (for a question).
        rate: Expected share of answered respondents to hide, in (0, 1).
        strength: Multiplies the linear predictor (0 = MCAR with a random count).
        seed: Random seed.
    """
    rate = _check_rate(rate)
    eligible = _eligible(survey, target)
    coefs = dict(covariates) if isinstance(covariates, Mapping) else dict.fromkeys(covariates, 1.0)
    if not coefs:
        raise DataError("MAR needs at least one covariate")
    if target in coefs:
        raise DataError(f"{where(question=target)}MAR cannot depend on the target (use MNAR)")
    eta = float(strength) * sum(_scores(survey, c, b) for c, b in coefs.items())
    mask, _ = _logistic_mask(np.asarray(eta, dtype=float), eligible, rate, seed)
    return _check_mask(mask, eligible, target, f"MAR on {preview(list(coefs))}")


def mnar(
    survey: Survey,
    target: str,
    rate: float,
    strength: float = 1.0,
    option_effects: Mapping[str, float] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Missing not at random: the probability depends on the hidden answer itself.

    ``P(missing | answer k) = expit(α + strength · e_k)``, with ``e_k`` from
    ``option_effects`` (log-odds shifts, options left out get 0) or, by default, the
    standardised option position (ordinal value for ordinal questions) — so later options
    ("Bob Dole", "Strongly disagree") are missing more often for ``strength > 0``, like
    a shy-voter effect. ``α`` is solved for the expected ``rate`` as in :func:`mar`.

    Args:
        survey: The survey.
        target: The question whose answers go missing.
        rate: Expected share of answered respondents to hide, in (0, 1).
        strength: Multiplies the effects (0 = MCAR with a random count).
        option_effects: Optional option → log-odds shift.
        seed: Random seed.
    """
    rate = _check_rate(rate)
    eligible = _eligible(survey, target)
    coef: float | Mapping[str, float] = 1.0 if option_effects is None else option_effects
    eta = float(strength) * _scores(survey, target, coef)
    mask, _ = _logistic_mask(eta, eligible, rate, seed)
    return _check_mask(mask, eligible, target, "MNAR")


def convenience(survey: Survey, target: str, filter_expression: str) -> np.ndarray:
    """A convenience sample: only respondents matching ``filter_expression`` answer.

    Everyone else who answered is hidden — the systematic non-response setting of
    Holtdirk et al. (2025), where a model learns from e.g. students only and must impute
    the rest of the electorate. Deterministic (no seed). The expression language is
    described in :func:`~surveylm.filter_expressions.evaluate_filter`, e.g. ``age < 30``,
    ``educ3 == "Bachelor's degree or more"``, ``party in ["Democrat"]``; a respondent
    whose value is missing does not match.

    Raises:
        DataError: a bad expression, an unknown column or option (named in the message),
            or a filter that keeps nobody / everybody.
    """
    eligible = _eligible(survey, target)
    in_sample = evaluate_filter(survey, filter_expression)
    mask = eligible & ~in_sample
    return _check_mask(mask, eligible, target, f"convenience sample {filter_expression!r}")


def apply_missingness(survey: Survey, target: str, mask: np.ndarray) -> Survey:
    """A copy of ``survey`` with the answers to ``target`` blanked where ``mask`` is true.

    The original survey keeps the true answers (the yardstick of every evaluation).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (survey.n_respondents,):
        raise DataError(f"mask has shape {mask.shape}; need ({survey.n_respondents},)")
    answers = survey.answers(target).astype(object).to_numpy(copy=True)
    answers[mask] = None
    return survey.with_answers(target, answers)
