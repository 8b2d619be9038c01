"""Answer models behind one contract (:class:`surveylm.models.base.AnswerModel`).

Models are created by registry name with :func:`make_model`; heavy back ends (torch,
transformers, catboost) are imported only when their model is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

from surveylm.errors import ConfigError, preview

#: Registry name → "module:Class".
MODELS: dict[str, str] = {
    "uniform": "surveylm.models.baselines:UniformModel",
    "question-marginal": "surveylm.models.baselines:QuestionMarginalModel",
    "group-marginal": "surveylm.models.baselines:GroupMarginalModel",
    "logistic": "surveylm.models.tabular:LogisticModel",
    "random-forest": "surveylm.models.tabular:RandomForestModel",
    "catboost": "surveylm.models.tabular:CatBoostModel",
    "chained-equations": "surveylm.models.chained:ChainedEquationsImputer",
    "encoder": "surveylm.models.encoder:EncoderAnswerModel",
    "causal-lm": "surveylm.models.causal_lm:CausalLMAnswerModel",
    "dsa": "surveylm.models.dsa:DSAModel",
}

#: The baselines reported beside every method.
BASELINES = ("uniform", "question-marginal", "group-marginal")


def model_class(name: str) -> type:
    """The AnswerModel class registered under ``name``."""
    try:
        target = MODELS[name]
    except KeyError:
        msg = f"unknown model '{name}'; choose one of {preview(sorted(MODELS), 20)}"
        raise ConfigError(msg) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def make_model(name: str, **params: Any) -> Any:
    """Instantiate the model registered under ``name`` with constructor ``params``."""
    klass = model_class(name)
    try:
        return klass(**params)
    except TypeError as exc:
        raise ConfigError(f"model '{name}': {exc}") from None


__all__ = ["BASELINES", "MODELS", "make_model", "model_class"]
