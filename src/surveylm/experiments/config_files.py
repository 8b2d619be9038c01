"""Loading experiment configs (pydantic models) from YAML, with located errors."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from surveylm.errors import ConfigError, FileFormatError, where

ConfigT = TypeVar("ConfigT", bound=BaseModel)


def load_config_file(path: str | Path, model: type[ConfigT]) -> ConfigT:
    """Read and validate a config of type ``model`` from a YAML file.

    A relative ``dataset`` / ``codebook`` path that exists relative to the config file's
    folder is resolved against it.

    Raises:
        FileFormatError: missing or unparsable file.
        ConfigError: fields that are unknown, missing or of the wrong type (all named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{where(file=path)}no such config file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise FileFormatError(f"{where(file=path)}not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where(file=path)}expected a mapping at the top level")
    for key in ("dataset", "codebook"):
        value = raw.get(key)
        if isinstance(value, str) and (path.parent / value).exists():
            raw[key] = str(path.parent / value)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError(f"{where(file=path)}{'; '.join(problems)}") from None
