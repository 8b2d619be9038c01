"""Loading experiment configs (pydantic models) from YAML, with located errors.

A thin front of :func:`surveylm.io.yaml_files.load_config`, the one YAML config loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from surveylm.io.yaml_files import load_config

ConfigT = TypeVar("ConfigT", bound=BaseModel)


def load_config_file(path: str | Path, model: type[ConfigT]) -> ConfigT:
    """Read and validate a config of type ``model`` from a YAML file.

    A relative ``dataset`` / ``codebook`` path that exists relative to the config file's
    folder is resolved against it.

    Raises:
        ConfigFileError: missing or unparsable file (a ``ConfigError`` and a
            ``FileFormatError``).
        ConfigError: fields that are unknown, missing or of the wrong type (all named).
    """
    return load_config(path, model, relative_keys=("dataset", "codebook"))
