"""Answer models behind one contract (:class:`surveylm.models.base.AnswerModel`).

Models are created by registry name with :func:`make_model`; heavy back ends (torch,
transformers, catboost) are imported only when their model is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from surveylm.errors import ConfigError, preview

if TYPE_CHECKING:
    from surveylm.models.base import AnswerModel

#: Registry name → "module:Class".
MODELS: dict[str, str] = {
    "uniform": "surveylm.models.marginals:UniformModel",
    "question-marginal": "surveylm.models.marginals:QuestionMarginalModel",
    "group-marginal": "surveylm.models.marginals:GroupMarginalModel",
    "logistic": "surveylm.models.tabular:LogisticModel",
    "random-forest": "surveylm.models.tabular:RandomForestModel",
    "catboost": "surveylm.models.tabular:CatBoostModel",
    "chained-equations": "surveylm.models.chained:ChainedEquationsImputer",
    "encoder": "surveylm.models.encoder:EncoderAnswerModel",
    "causal-lm": "surveylm.models.causal_lm:CausalLMAnswerModel",
    "dsa": "surveylm.models.dsa:DSAModel",
    "blend": "surveylm.models.blend:BlendModel",
}

#: The baselines reported beside every method.
BASELINES = ("uniform", "question-marginal", "group-marginal")


def model_class(name: str) -> type[AnswerModel]:
    """The AnswerModel class registered under ``name``."""
    try:
        target = MODELS[name]
    except KeyError:
        msg = f"unknown model '{name}'; choose one of {preview(sorted(MODELS), 20)}"
        raise ConfigError(msg) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def make_model(name: str, **params: Any) -> AnswerModel:
    """Instantiate the model registered under ``name`` with constructor ``params``.

    Every model takes ``random_state`` and ``verbose`` besides its own parameters (see
    :class:`~surveylm.models.base.AnswerModel`).
    """
    klass = model_class(name)
    try:
        return klass(**params)
    except TypeError as exc:
        raise ConfigError(f"model '{name}': {exc}") from None


def make_run_model(
    name: str, params: Mapping[str, Any], random_state: int, *, verbose: bool = False
) -> AnswerModel:
    """A model for one step of a runner: ``make_model(name, **params)``, then the run's
    ``random_state`` (derived from the run seed and the step, e.g. with
    :func:`~surveylm.models.base.derive_seed`) and ``verbose`` (off: the runner shows its
    own bar) set with ``set_params`` — unless ``params`` (a method's config) give them."""
    model = make_model(name, **params)
    common = {"random_state": random_state, "verbose": verbose}
    return model.set_params(**{k: v for k, v in common.items() if k not in params})


__all__ = ["BASELINES", "MODELS", "make_model", "make_run_model", "model_class"]
