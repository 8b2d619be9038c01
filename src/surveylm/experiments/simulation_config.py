"""Pydantic configuration of the simulation benchmark (:mod:`surveylm.experiments.simulation`).

A config names a survey, the target questions and grouping variables that make group
items, how questions and groups are held out (Cao et al. 2025's crossing of seen/unseen
questions × seen/unseen groups; SubPOP, Suh et al. 2025), the methods, the prompt-
robustness variants (DSA, Huang, Li, Shao 2025) and the data-efficiency fractions.
``extra="forbid"`` everywhere: a misspelt key is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from surveylm.splits import NEAR_DUPLICATE_THRESHOLD

__all__ = [
    "DataEfficiencyConfig",
    "GroupMapConfig",
    "PilotConfig",
    "RobustnessConfig",
    "SimMethodConfig",
    "SimulationConfig",
    "UnseenSurveyConfig",
    "load_simulation_config",
]

#: The method that is not a model: group distributions of a respondent subsample.
TRAINING_DATA = "training-data"


class SimMethodConfig(BaseModel):
    """One method: a registered model (or ``training-data``) with its parameters.

    Attributes:
        name: Display name (unique).
        model: Registry name (``uniform``, ``question-marginal``, ``group-marginal``,
            ``encoder``, ``causal-lm``, ``dsa``...) or ``training-data`` — the group
            distributions among a random ``params.fraction`` of the training respondents,
            for *every* test cell: a small real survey, DSA's point of comparison.
        params: Constructor parameters.
        fit: ``False`` = predict without fitting (zero-shot language models).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    model: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    fit: bool = True


class RobustnessConfig(BaseModel):
    """Prompt-robustness variants for language-model methods.

    Attributes:
        methods: Method names to re-evaluate (``None`` = every encoder/causal-LM/DSA one).
        formats: Group prompt formats (``country`` is used only when groups are countries).
        permutations: Random option orders to evaluate (0 = none).
    """

    model_config = ConfigDict(extra="forbid")

    methods: list[str] | None = None
    formats: list[str] = Field(default_factory=lambda: ["qa", "bio", "portray", "country"])
    permutations: int = Field(1, ge=0)


class DataEfficiencyConfig(BaseModel):
    """Settings of :func:`surveylm.experiments.data_efficiency.run_data_efficiency`.

    Attributes:
        fractions: Shares of the training respondents that build training distributions.
        subsamples: Random subsamples per fraction (the bootstrap band is over them).
        methods: Method names (from ``methods``) to run; ``None`` = every method except
            zero-shot ones.
    """

    model_config = ConfigDict(extra="forbid")

    fractions: list[float] = Field(default_factory=lambda: [0.05, 0.1, 0.25, 0.5, 1.0])
    subsamples: int = Field(3, ge=1)
    methods: list[str] | None = None


class PilotConfig(BaseModel):
    """A group's distribution from each model plus k real respondents of the group
    (prediction-powered, :mod:`surveylm.experiments.pilot`).

    Attributes:
        sizes: Pilot sizes k (real respondents of the group, drawn from the held-out half).
        draws: Pilots drawn per test cell and size.
        methods: Method names (``None`` = every method).
        level: Interval level.
    """

    model_config = ConfigDict(extra="forbid")

    sizes: list[Annotated[int, Field(ge=2)]] = Field(default_factory=lambda: [25, 50],
                                                     min_length=1)  # fmt: skip
    draws: int = Field(20, ge=1)
    methods: list[str] | None = None
    level: float = Field(0.95, gt=0, lt=1)


class GroupMapConfig(BaseModel):
    """How one grouping attribute of the test survey reads in the training survey's terms.

    Attributes:
        to: The training survey's attribute (``age3`` → ``age_group``).
        values: Test value → training value(s): one value, several (a list, or one string
            ``"35 - 49 | 50 - 64"``) for a test group that spans several training groups, or
            ``null`` for a test group with no counterpart (not evaluated). A value not listed
            keeps its name.
    """

    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1)
    values: dict[str, str | list[str] | None] = Field(default_factory=dict)


class UnseenSurveyConfig(BaseModel):
    """The unseen survey of the cross-survey protocol (SubPOP: train on Pew ATP, test on the
    GSS; Cao et al.: train on the WVS, test on Pew): its questions are unseen by
    construction, its groups are mapped onto the training survey's attributes.

    Attributes:
        dataset: A built-in dataset name, a survey file or a distribution file.
        codebook: Codebook of a survey file.
        questions: Test questions (``None`` = every question not used for grouping).
        group_by: The test survey's grouping variables (one attribute or a list each).
        group_map: Test attribute → a training attribute (a plain rename) or a
            :class:`GroupMapConfig`; an attribute not listed must exist in the training data
            under the same name.
        context: Conditions true of the whole test population, in training terms (the
            masculinity survey asked only men: ``{gender: Male}``), added to every group.
        min_n: Test cells with fewer respondents are suppressed (default: the config's).
    """

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1)
    codebook: str | None = None
    questions: list[str] | None = None
    group_by: list[str | list[str]] = Field(min_length=1)
    group_map: dict[str, str | GroupMapConfig] = Field(default_factory=dict)
    context: dict[str, str | list[str]] = Field(default_factory=dict)
    min_n: int | None = Field(None, ge=1)


class SimulationConfig(BaseModel):
    """The whole simulation benchmark.

    Attributes:
        dataset: A built-in dataset name (``anes1996``, ``nonvoters``), a survey file, or a
            distribution file (SubPOP JSONL, Cao et al. JSON...; read by content). A
            distribution file has no respondents to split: its group items are split by
            question and group only (no seen/seen cell), with the noise floor from its ``n``.
        codebook: Codebook of a survey file.
        labels: Label table for a distribution file's attributes and groups
            (:mod:`surveylm.io.labels`): a file or the table itself.
        unseen_survey: Train on ``dataset`` and test on this other survey (the unseen-survey
            protocol, one split ``unseen_survey``); the held-out question/group settings and
            ``test_fraction`` are then not used.
        questions: Target questions (``None`` = every question not used for grouping).
        group_by: Grouping variables; an entry is one attribute or a list (intersection).
        min_n: Group cells with fewer respondents are suppressed.
        test_fraction: Share of respondents whose group distributions are the evaluation
            truth (the rest build the training distributions; so the seen/seen cell is
            meaningful and the noise floor is that of the held-out half).
        test_questions / test_question_fraction: Unseen questions (explicit ids, or a
            random share of them).
        test_groups / test_group_fraction: Unseen groups (labels, or a random share of the
            groups of each grouping variable).
        near_duplicate_threshold: Warn when an unseen question's wording is this similar
            (word-set Jaccard) to a training question's (``None`` = off); see
            :func:`surveylm.splits.crossed_split`.
        methods: The methods compared.
        robustness: Prompt-format and option-order variants (``None`` = skip).
        data_efficiency: Fractions and subsamples of the data-efficiency curves.
        pilot: Each model's group distributions corrected by k real respondents of the
            group, with coverage of the truth (``None`` = skip; needs a survey split in
            halves).
        n_boot: Bootstrap resamples for the intervals.
        seed: Seed of every random step.
        threads: CPU threads of every library (:mod:`surveylm.threads`; ``None`` = the
            available cores). ``surveylm --threads`` overrides it.
    """

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1)
    codebook: str | None = None
    labels: str | dict[str, Any] | None = None
    questions: list[str] | None = None
    group_by: list[str | list[str]] = Field(min_length=1)
    unseen_survey: UnseenSurveyConfig | None = None
    min_n: int = Field(20, ge=1)
    test_fraction: float = Field(0.5, gt=0, lt=1)
    test_questions: list[str] | None = None
    test_question_fraction: float = Field(0.3, gt=0, lt=1)
    test_groups: list[str] | None = None
    test_group_fraction: float = Field(0.3, gt=0, lt=1)
    near_duplicate_threshold: float | None = Field(NEAR_DUPLICATE_THRESHOLD, gt=0, le=1)
    methods: list[SimMethodConfig] = Field(min_length=1)
    robustness: RobustnessConfig | None = Field(default_factory=RobustnessConfig)
    data_efficiency: DataEfficiencyConfig = Field(default_factory=DataEfficiencyConfig)
    pilot: PilotConfig | None = None
    n_boot: int = Field(200, ge=0)
    seed: int = 0
    threads: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _unique_names(self) -> SimulationConfig:
        names = [m.name for m in self.methods]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate method names {dup}: give each a distinct name")
        unknown = sorted(set(self.pilot.methods or []) - set(names)) if self.pilot else []
        if unknown:
            raise ValueError(f"pilot.methods names unknown methods {unknown}")
        return self

    def with_overrides(self, **updates: Any) -> SimulationConfig:
        """A validated copy with some fields replaced."""
        return SimulationConfig.model_validate({**self.model_dump(), **updates})

    def to_yaml(self) -> str:
        """The config as YAML (round-trips through :func:`load_simulation_config`)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def load_simulation_config(path: str | Path) -> SimulationConfig:
    """Read and validate a :class:`SimulationConfig` from YAML (errors name the file/field)."""
    from surveylm.experiments.config_files import load_config_file

    return load_config_file(path, SimulationConfig)
