"""The baseline evaluation: the yardsticks on a survey, in one call.

Respondents are split at random (seeded) into a training and a test half. Items are
built on each half — group items (question × group, weighted) or respondent items
(target question from features) — every model is fitted on the training items and
evaluated on the test items, with the uniform distribution and the sampling-noise floor
of the test groups reported beside them (see :func:`surveylm.evaluation.evaluate`). The
baseline models themselves (uniform, question and group marginals) are
:mod:`surveylm.models.marginals`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from surveylm.errors import DataError
from surveylm.items import DEFAULT_MIN_N, ItemSet, build_group_items, build_respondent_items
from surveylm.models import make_run_model
from surveylm.models.base import Predictions
from surveylm.splits import split_respondents
from surveylm.survey import Survey


@dataclass(eq=False)
class BaselineRun:
    """What :func:`evaluate_baselines` produced."""

    evaluation: Any  # surveylm.evaluation.Evaluation
    train_items: ItemSet
    test_items: ItemSet
    predictions: dict[str, Predictions]


def evaluate_baselines(
    survey: Survey,
    *,
    kind: str = "group",
    by: Sequence[str | Sequence[str]] | None = None,
    questions: Sequence[str] | None = None,
    target: str | None = None,
    features: Sequence[str] | None = None,
    models: Sequence[str] = ("question-marginal", "group-marginal"),
    test_fraction: float = 0.5,
    min_n: int = DEFAULT_MIN_N,
    seed: int = 0,
    n_boot: int = 1000,
    progress: Callable[[str], None] | None = None,
) -> BaselineRun:
    """Fit models on one half of the respondents and evaluate them on the other.

    Args:
        survey: The survey.
        kind: ``"group"`` (distributions of groups) or ``"respondent"`` (individual answers).
        by: Grouping variables for group items (each an attribute or an intersection).
        questions: Target questions of group items (default: all not used for grouping).
        target: Target question of respondent items.
        features: Feature questions/covariates of respondent items.
        models: Registry names of the models to fit (default: the two fitted baselines;
            the uniform distribution is always reported as a reference).
        test_fraction: Share of respondents held out.
        min_n: Minimum group cell size (smaller cells are suppressed in both halves).
        seed: Seed of the split, of the models (their ``random_state``) and of the bootstrap.
        n_boot: Bootstrap replicates for the confidence intervals.
        progress: Called with a short message before each stage.
    """
    from surveylm.evaluation import evaluate

    say = progress or (lambda _msg: None)
    if kind == "group":
        if not by:
            raise DataError("group items need grouping variables (by=...)")
        train_s, test_s = split_respondents(survey, test_fraction, seed=seed)
        say("building group items")
        train = build_group_items(train_s, questions, by=by, min_n=min_n)
        test = build_group_items(test_s, questions, by=by, min_n=min_n)
    elif kind == "respondent":
        if not target or not features:
            raise DataError("respondent items need a target question and features")
        train_s, test_s = split_respondents(survey, test_fraction, seed=seed, stratify=target)
        say("building respondent items")
        train = build_respondent_items(train_s, target, features)
        test = build_respondent_items(test_s, target, features)
    else:
        raise DataError(f"kind must be 'group' or 'respondent', got {kind!r}")
    if len(test) == 0 or len(train) == 0:
        raise DataError(
            f"no items left after suppressing cells below n={min_n}; lower min_n or use "
            "coarser groups"
        )
    predictions: dict[str, Predictions] = {}
    for name in models:
        say(f"fitting {name}")
        model = make_run_model(name, {}, seed)
        predictions[name] = model.fit(train).predict(test)
    say("evaluating")
    evaluation = evaluate(test, predictions, n_boot=n_boot, seed=seed)
    return BaselineRun(evaluation, train, test, predictions)
