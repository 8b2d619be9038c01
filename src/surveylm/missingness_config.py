"""Pydantic configs of the non-response scenarios, as written in YAML.

One config per mechanism of :mod:`surveylm.missingness` — :class:`MCARConfig`,
:class:`MARConfig`, :class:`MNARConfig` (Rubin 1976; Little & Rubin 2019, *Statistical
Analysis with Missing Data*, ch. 1) and :class:`ConvenienceConfig` (Holtdirk et al.
2025, "Learning from Convenience Samples") — joined in :data:`ScenarioConfig`, a
pydantic union on ``kind``. :func:`scenario_from_dict` validates one mapping and
:func:`load_scenarios` reads a YAML file of them; each config's ``mask`` draws its
scenario's missing mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from surveylm.errors import ConfigError, where
from surveylm.io.yaml_files import read_yaml, validate
from surveylm.missingness import convenience, mar, mcar, mnar
from surveylm.survey import Survey

__all__ = [
    "ConvenienceConfig",
    "MARConfig",
    "MCARConfig",
    "MNARConfig",
    "ScenarioConfig",
    "load_scenarios",
    "scenario_from_dict",
]


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
