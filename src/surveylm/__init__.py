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
    "BASELINES": "surveylm.models",
    "BlendModel": "surveylm.models.blend",
    "CatBoostModel": "surveylm.models.tabular",
    "CausalLMAnswerModel": "surveylm.models.causal_lm",
    "ChainedEquationsImputer": "surveylm.models.chained",
    "Codebook": "surveylm.codebook",
    "ConvenienceConfig": "surveylm.missingness_config",
    "DSAModel": "surveylm.models.dsa",
    "EncoderAnswerModel": "surveylm.models.encoder",
    "Evaluation": "surveylm.evaluation",
    "FineTuneConfig": "surveylm.training.config",
    "Group": "surveylm.items",
    "GroupMarginalModel": "surveylm.models.marginals",
    "ImputationConfig": "surveylm.experiments.imputation_config",
    "ItemSet": "surveylm.items",
    "LogisticModel": "surveylm.models.tabular",
    "MARConfig": "surveylm.missingness_config",
    "MCARConfig": "surveylm.missingness_config",
    "MNARConfig": "surveylm.missingness_config",
    "MODELS": "surveylm.models",
    "PooledEstimate": "surveylm.mi_pooling",
    "Predictions": "surveylm.models.base",
    "Question": "surveylm.survey",
    "QuestionMarginalModel": "surveylm.models.marginals",
    "RandomForestModel": "surveylm.models.tabular",
    "SimulationConfig": "surveylm.experiments.simulation_config",
    "Survey": "surveylm.survey",
    "SurveyLMError": "surveylm.errors",
    "UniformModel": "surveylm.models.marginals",
    "apply_missingness": "surveylm.missingness",
    "build_group_items": "surveylm.items",
    "build_respondent_items": "surveylm.items",
    "crossed_split": "surveylm.splits",
    "evaluate": "surveylm.evaluation",
    "evaluate_baselines": "surveylm.experiments.baselines",
    "impute": "surveylm.completed_data",
    "kfold_respondents": "surveylm.splits",
    "load_anes1996": "surveylm.datasets",
    "load_codebook": "surveylm.codebook",
    "load_dataset": "surveylm.datasets",
    "load_masculinity": "surveylm.datasets.fivethirtyeight",
    "load_nonvoters": "surveylm.datasets.fivethirtyeight",
    "load_scenarios": "surveylm.missingness_config",
    "make_model": "surveylm.models",
    "model_class": "surveylm.models",
    "multiple_imputation_shares": "surveylm.mi_pooling",
    "pool_shares": "surveylm.completed_data",
    "read_distributions": "surveylm.io.distributions",
    "read_survey": "surveylm.io.surveys",
    "rubin_pool": "surveylm.mi_pooling",
    "run_data_efficiency": "surveylm.experiments.data_efficiency",
    "run_demo": "surveylm.experiments.demo",
    "run_imputation_benchmark": "surveylm.experiments.imputation",
    "run_simulation_benchmark": "surveylm.experiments.simulation",
    "scenario_from_dict": "surveylm.missingness_config",
    "split_items_by_group": "surveylm.splits",
    "split_items_by_question": "surveylm.splits",
    "split_items_by_source": "surveylm.splits",
    "split_respondents": "surveylm.splits",
    "survey_from_dataframe": "surveylm.io.surveys",
    "write_imputations": "surveylm.completed_data",
    "write_long_csv": "surveylm.io.distributions",
    "write_subpop_jsonl": "surveylm.io.distributions",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from surveylm.codebook import Codebook, load_codebook
    from surveylm.completed_data import impute, pool_shares, write_imputations
    from surveylm.datasets import load_anes1996, load_dataset
    from surveylm.datasets.fivethirtyeight import load_masculinity, load_nonvoters
    from surveylm.errors import SurveyLMError
    from surveylm.evaluation import Evaluation, evaluate
    from surveylm.experiments.baselines import evaluate_baselines
    from surveylm.experiments.data_efficiency import run_data_efficiency
    from surveylm.experiments.demo import run_demo
    from surveylm.experiments.imputation import run_imputation_benchmark
    from surveylm.experiments.imputation_config import ImputationConfig
    from surveylm.experiments.simulation import run_simulation_benchmark
    from surveylm.experiments.simulation_config import SimulationConfig
    from surveylm.io.distributions import read_distributions, write_long_csv, write_subpop_jsonl
    from surveylm.io.surveys import read_survey, survey_from_dataframe
    from surveylm.items import Group, ItemSet, build_group_items, build_respondent_items
    from surveylm.mi_pooling import PooledEstimate, multiple_imputation_shares, rubin_pool
    from surveylm.missingness import apply_missingness
    from surveylm.missingness_config import (
        ConvenienceConfig,
        MARConfig,
        MCARConfig,
        MNARConfig,
        load_scenarios,
        scenario_from_dict,
    )
    from surveylm.models import BASELINES, MODELS, make_model, model_class
    from surveylm.models.base import AnswerModel, Predictions
    from surveylm.models.blend import BlendModel
    from surveylm.models.causal_lm import CausalLMAnswerModel
    from surveylm.models.chained import ChainedEquationsImputer
    from surveylm.models.dsa import DSAModel
    from surveylm.models.encoder import EncoderAnswerModel
    from surveylm.models.marginals import GroupMarginalModel, QuestionMarginalModel, UniformModel
    from surveylm.models.tabular import CatBoostModel, LogisticModel, RandomForestModel
    from surveylm.splits import (
        crossed_split,
        kfold_respondents,
        split_items_by_group,
        split_items_by_question,
        split_items_by_source,
        split_respondents,
    )
    from surveylm.survey import Question, Survey
    from surveylm.training.config import FineTuneConfig


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'surveylm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
