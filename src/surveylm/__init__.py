"""surveylm: fine-tune language models on survey data to simulate how subpopulations
answer survey questions and to impute the answers of respondents who did not answer.

Every model predicts ``p(option | question, context)``; see DESIGN.md. Names are
imported lazily (PEP 562), so ``import surveylm`` and ``surveylm --help`` stay instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "AnswerModel": "surveylm.models.base",
    "Codebook": "surveylm.codebook",
    "Evaluation": "surveylm.evaluation",
    "Group": "surveylm.items",
    "ItemSet": "surveylm.items",
    "Predictions": "surveylm.models.base",
    "Question": "surveylm.survey",
    "Survey": "surveylm.survey",
    "SurveyLMError": "surveylm.errors",
    "build_group_items": "surveylm.items",
    "build_respondent_items": "surveylm.items",
    "evaluate": "surveylm.evaluation",
    "evaluate_baselines": "surveylm.experiments.baselines",
    "load_anes1996": "surveylm.datasets",
    "load_codebook": "surveylm.codebook",
    "load_dataset": "surveylm.datasets",
    "load_masculinity": "surveylm.datasets.fivethirtyeight",
    "load_nonvoters": "surveylm.datasets.fivethirtyeight",
    "make_model": "surveylm.models",
    "read_distributions": "surveylm.io.distributions",
    "read_survey": "surveylm.io.surveys",
    "survey_from_dataframe": "surveylm.io.surveys",
    "write_long_csv": "surveylm.io.distributions",
    "write_subpop_jsonl": "surveylm.io.distributions",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from surveylm.codebook import Codebook, load_codebook
    from surveylm.datasets import load_anes1996, load_dataset
    from surveylm.datasets.fivethirtyeight import load_masculinity, load_nonvoters
    from surveylm.errors import SurveyLMError
    from surveylm.evaluation import Evaluation, evaluate
    from surveylm.experiments.baselines import evaluate_baselines
    from surveylm.io.distributions import (
        read_distributions,
        write_long_csv,
        write_subpop_jsonl,
    )
    from surveylm.io.surveys import read_survey, survey_from_dataframe
    from surveylm.items import Group, ItemSet, build_group_items, build_respondent_items
    from surveylm.models import make_model
    from surveylm.models.base import AnswerModel, Predictions
    from surveylm.survey import Question, Survey


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'surveylm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
