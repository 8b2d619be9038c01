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

:func:`apply_missingness` blanks the masked answers in a copy of the survey (the
original, with the truth, is untouched). Scenarios are described in YAML by
:data:`ScenarioConfig` (a pydantic union on ``kind``) and read by :func:`load_scenarios`.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from scipy.optimize import brentq
from scipy.special import expit

from surveylm.errors import ConfigError, DataError, preview, where
from surveylm.io.yaml_files import read_yaml, validate
from surveylm.survey import Survey


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
    described in :func:`evaluate_filter`, e.g. ``age < 30``,
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


# -- filter expressions -----------------------------------------------------------------
_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
    ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
}  # fmt: skip
_FLIP = {ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE}


def evaluate_filter(survey: Survey, expression: str) -> np.ndarray:
    """Which respondents match a small, safe filter expression.

    The language: comparisons of one column (a question or covariate; names that are not
    Python identifiers go in backticks) with literals — ``==``, ``!=``, ``<``, ``<=``,
    ``>``, ``>=``, ``in [...]``, ``not in [...]`` — combined with ``and``, ``or``, ``not``
    and parentheses. Nothing is executed: the expression is parsed with :mod:`ast` and
    only these nodes are interpreted. Questions compare by option label (a label that is
    not an option is an error, to catch typos); ``<``/``>`` on a question need an ordinal
    question and compare ordinal values (non-substantive options never match). A missing
    value never matches a comparison.

    Returns:
        Boolean mask over respondents.

    Raises:
        DataError: a syntax error, a construct outside the language, an unknown column or
            option — the message quotes the expression.
    """
    names: dict[str, str] = {}

    def _quote(m: re.Match[str]) -> str:
        key = f"_col{len(names)}_"
        names[key] = m.group(1)
        return key

    text = re.sub(r"`([^`]+)`", _quote, str(expression))
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise DataError(f"filter {expression!r}: not a valid expression ({exc.msg})") from None
    return _FilterEval(survey, str(expression), names).mask(tree.body)


class _FilterEval:
    def __init__(self, survey: Survey, expression: str, names: dict[str, str]) -> None:
        self.survey, self.expr, self.names = survey, expression, names

    def fail(self, msg: str) -> DataError:
        return DataError(f"filter {self.expr!r}: {msg}")

    def mask(self, node: ast.AST) -> np.ndarray:
        if isinstance(node, ast.BoolOp):
            parts = [self.mask(v) for v in node.values]
            op = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            return op.reduce(parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return ~self.mask(node.operand)
        if isinstance(node, ast.Compare):
            out = np.ones(self.survey.n_respondents, dtype=bool)
            left = node.left
            for cmp, right in zip(node.ops, node.comparators, strict=True):
                out &= self.compare(left, cmp, right)
                left = right
            return out
        raise self.fail(
            f"'{ast.unparse(node)}' is not allowed; use comparisons such as age < 30 or "
            'party in ["Democrat"], combined with and / or / not'
        )

    def column(self, node: ast.AST) -> str | None:
        if not isinstance(node, ast.Name):
            return None
        name = self.names.get(node.id, node.id)
        if name not in self.survey.questions and name not in self.survey.covariates:
            cols = [*self.survey.question_ids, *self.survey.covariates]
            raise self.fail(f"unknown column '{name}' (columns: {preview(cols, 15)})")
        return name

    def literal(self, node: ast.AST) -> Any:
        try:
            value = ast.literal_eval(node)
        except ValueError:
            raise self.fail(f"'{ast.unparse(node)}' is not a literal value") from None
        return value

    def compare(self, left: ast.AST, op: ast.cmpop, right: ast.AST) -> np.ndarray:
        col, other = self.column(left), right
        if col is None:
            col, other = self.column(right), left
            if col is None or isinstance(op, ast.In | ast.NotIn):
                raise self.fail(f"'{ast.unparse(left)}': compare a column with a value")
            op = _FLIP.get(type(op), type(op))()
        if isinstance(other, ast.Name):
            raise self.fail(f"'{ast.unparse(other)}': compare a column with a literal")
        value = self.literal(other)
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(value, list | tuple | set):
                raise self.fail(f"'in' needs a list, e.g. {col} in [...]")
            values = list(value)
        else:
            values = [value]
        x, present = self._values(col, op, values)
        if isinstance(op, ast.In | ast.NotIn):
            hit = np.isin(x, np.asarray(values, dtype=x.dtype))
            return present & (hit if isinstance(op, ast.In) else ~hit)
        with np.errstate(invalid="ignore"):
            try:
                return present & np.asarray(_OPS[type(op)](x, values[0]), dtype=bool)
            except TypeError:
                raise self.fail(f"cannot compare '{col}' with {values[0]!r}") from None

    def _values(self, col: str, op: ast.cmpop, values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """The column as comparable values, with the literals converted alike."""
        if col in self.survey.questions:
            q = self.survey.questions[col]
            bad = [v for v in values if str(v) not in q.options]
            if bad:
                raise self.fail(
                    f"{preview(bad)} not an option of '{col}' ({preview(q.options, 8)})"
                )
            codes = self.survey.codes(col)
            if isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn):
                values[:] = [q.options.index(str(v)) for v in values]
                return codes, codes >= 0
            if q.ordinal is None:
                raise self.fail(f"'{col}' is nominal: use == or in, not an order comparison")
            o = np.asarray(q.ordinal)
            values[:] = [o[q.options.index(str(values[0]))]]
            x = np.where(codes >= 0, o[np.maximum(codes, 0)], -1.0)
            return x, (codes >= 0) & (x >= 0) & (values[0] >= 0)
        raw = self.survey.data[col]
        present = raw.notna().to_numpy()
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            x = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            return x, present & np.isfinite(x)
        return raw.astype(object).map(str).to_numpy(dtype=object), present


# -- configs -----------------------------------------------------------------------------
class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Display name (defaults to a description built from the parameters).
    name: str | None = None

    def label(self) -> str:
        """The scenario's display name."""
        return self.name or self._default_label()

    def _default_label(self) -> str:  # pragma: no cover - overridden
        return self.__class__.__name__

    def mask(self, survey: Survey, target: str, seed: int = 0) -> np.ndarray:
        """The missing mask for ``target`` in ``survey``."""
        raise NotImplementedError


class MCARConfig(_Base):
    """MCAR at a fixed rate (see :func:`mcar`)."""

    kind: Literal["mcar"] = "mcar"
    rate: float = Field(gt=0, lt=1)

    def _default_label(self) -> str:
        return f"MCAR {self.rate:.0%}"

    def mask(self, survey: Survey, target: str, seed: int = 0) -> np.ndarray:
        return mcar(survey, target, self.rate, seed)


class MARConfig(_Base):
    """MAR on covariates (see :func:`mar`)."""

    kind: Literal["mar"] = "mar"
    rate: float = Field(gt=0, lt=1)
    covariates: list[str] | dict[str, float | dict[str, float]]
    strength: float = 1.0

    def _default_label(self) -> str:
        return f"MAR {self.rate:.0%} on {', '.join(self.covariates)}"

    def mask(self, survey: Survey, target: str, seed: int = 0) -> np.ndarray:
        return mar(survey, target, self.covariates, self.rate, self.strength, seed)


class MNARConfig(_Base):
    """MNAR on the target's own answer (see :func:`mnar`)."""

    kind: Literal["mnar"] = "mnar"
    rate: float = Field(gt=0, lt=1)
    strength: float = 1.0
    option_effects: dict[str, float] | None = None

    def _default_label(self) -> str:
        return f"MNAR {self.rate:.0%}"

    def mask(self, survey: Survey, target: str, seed: int = 0) -> np.ndarray:
        return mnar(survey, target, self.rate, self.strength, self.option_effects, seed)


class ConvenienceConfig(_Base):
    """A convenience sample defined by a filter (see :func:`convenience`)."""

    kind: Literal["convenience"] = "convenience"
    filter: str = Field(min_length=1)

    def _default_label(self) -> str:
        return f"only {self.filter}"

    def mask(self, survey: Survey, target: str, seed: int = 0) -> np.ndarray:
        return convenience(survey, target, self.filter)


#: A scenario config: one of the four, chosen by its ``kind`` field.
ScenarioConfig = Annotated[
    MCARConfig | MARConfig | MNARConfig | ConvenienceConfig, Field(discriminator="kind")
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(ScenarioConfig)
_LIST_ADAPTER: TypeAdapter[Any] = TypeAdapter(list[ScenarioConfig])


def scenario_from_dict(data: Mapping[str, Any], *, file: str | Path | None = None) -> Any:
    """Validate one scenario mapping (``{"kind": "mcar", "rate": 0.5}``) into its config.

    Raises:
        ConfigError: unknown kind, a misspelt or missing field, a value out of range.
    """
    return validate(_ADAPTER, dict(data), f"{where(file=file)}invalid scenario: ")


def load_scenarios(path: str | Path) -> list[Any]:
    """Read scenario configs from YAML: a list of scenarios, or ``{scenarios: [...]}``.

    Raises:
        ConfigFileError: missing or unparsable file (a ``ConfigError`` and a
            ``FileFormatError``).
        ConfigError: an invalid scenario (the message names the file and every field).
    """
    path = Path(path)
    raw = read_yaml(path)
    if isinstance(raw, Mapping) and "scenarios" in raw:
        raw = raw["scenarios"]
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where(file=path)}expected a list of scenarios")
    return list(validate(_LIST_ADAPTER, raw, f"{where(file=path)}invalid scenario: "))
