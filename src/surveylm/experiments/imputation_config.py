"""Pydantic configuration of the imputation benchmark (:mod:`surveylm.experiments.imputation`).

A config names a survey (a built-in dataset or a file with its codebook), the target
question and the features the models see, the non-response scenarios
(:data:`surveylm.missingness_config.ScenarioConfig`) and the methods (registry names of
:func:`surveylm.models.make_model` with constructor parameters). ``extra="forbid"``
everywhere, so a typo in the YAML is an error rather than a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from surveylm.missingness_config import ScenarioConfig


class MethodConfig(BaseModel):
    """One imputation method: a registered model with its constructor parameters.

    Attributes:
        name: Display name in the results (unique within a config).
        model: Registry name (``uniform``, ``logistic``, ``chained-equations``,
            ``encoder``, ``causal-lm``, ...; see :data:`surveylm.models.MODELS`).
        params: Constructor parameters of the model.
        fit: ``False`` predicts without fitting — the zero-shot setting of a language
            model (Holtdirk et al. 2025 compare zero-shot prompting with fine-tuning).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    model: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    fit: bool = True


class ImputationConfig(BaseModel):
    """The whole imputation comparison.

    Attributes:
        dataset: A built-in dataset name (``anes1996``, ``nonvoters``) or a survey file.
        codebook: Codebook of a survey file (YAML/JSON); ``None`` infers questions.
        target: The question whose non-response is simulated and imputed.
        features: Questions / covariates the models see for each respondent.
        group_by: Optional question or covariate: population metrics are also reported
            within each of its values (e.g. party, age group).
        min_group_n: Subgroups with fewer respondents in the full sample are skipped
            (never estimated, never shown).
        max_respondents: Draw this many respondents (seeded, without replacement) before
            anything else — for smoke runs; ``None`` keeps everyone.
        scenarios: Non-response scenarios (MCAR, MAR, MNAR, convenience).
        methods: The methods compared.
        m: Imputations per missing-data draw (multiple imputation, Rubin 1987).
        repetitions: Scenario draws per scenario; interval coverage is computed over them
            (deterministic convenience scenarios are drawn once).
        folds: For MCAR scenarios, stratified k-fold as in Holtdirk et al. (2025): each
            fold is in turn the missing part, imputed from the rest. ``None`` = ``1/rate``
            when that is a whole number (MCAR 50 % = 2 folds), else plain MCAR draws.
        seed: Seed of every random step (scenario draws, folds, model seeds, imputations).
        estimand: ``population`` or ``sample`` (see
            :func:`surveylm.mi_pooling.multiple_imputation_shares`).
        level: Interval level of the Rubin intervals.
        n_boot: Bootstrap resamples of the respondent-metric confidence intervals.
        threads: CPU threads of every library (:mod:`surveylm.threads`; ``None`` = the
            available cores). ``surveylm --threads`` overrides it.
        ppi_folds: Also estimate the shares by prediction-powered inference (PPI++,
            answerers = labelled, nonrespondents = unlabelled) beside multiple imputation,
            with this many cross-fitting folds — that many extra fits per method and draw
            (:mod:`surveylm.experiments.ppi_imputation`); ``None`` (default) = off.
    """

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1)
    codebook: str | None = None
    target: str = Field(min_length=1)
    features: list[str] = Field(min_length=1)
    group_by: str | None = None
    min_group_n: int = Field(30, ge=2)
    max_respondents: int | None = Field(None, ge=10)
    scenarios: list[ScenarioConfig] = Field(min_length=1)
    methods: list[MethodConfig] = Field(min_length=1)
    m: int = Field(20, ge=2)
    repetitions: int = Field(1, ge=1)
    folds: int | None = Field(None, ge=2)
    seed: int = 0
    estimand: Literal["population", "sample"] = "population"
    level: float = Field(0.95, gt=0, lt=1)
    n_boot: int = Field(200, ge=0)
    threads: int | None = Field(None, ge=1)
    ppi_folds: int | None = Field(None, ge=2)

    @model_validator(mode="after")
    def _unique_names(self) -> ImputationConfig:
        for what, names in (
            ("method", [m.name for m in self.methods]),
            ("scenario", [s.label() for s in self.scenarios]),
        ):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"duplicate {what} names {dup}: give each a distinct name")
        return self

    def with_overrides(self, **updates: Any) -> ImputationConfig:
        """A validated copy with some fields replaced (e.g. fewer methods or repetitions)."""
        return ImputationConfig.model_validate({**self.model_dump(), **updates})

    def to_yaml(self) -> str:
        """The config as YAML (round-trips through :func:`load_imputation_config`)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def load_imputation_config(path: str | Path) -> ImputationConfig:
    """Read and validate an :class:`ImputationConfig` from a YAML file.

    A relative ``dataset`` / ``codebook`` path that exists relative to the config file's
    folder is resolved against it.

    Raises:
        FileFormatError: missing or unparsable file.
        ConfigError: a field that is unknown, missing or of the wrong type (named).
    """
    from surveylm.experiments.config_files import load_config_file

    return load_config_file(path, ImputationConfig)
