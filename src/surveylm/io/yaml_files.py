"""The one YAML reader and the one pydantic-error formatter of surveylm.

Every YAML file surveylm reads (experiment, scenario and fine-tuning configs, codebooks,
label tables, a run folder's ``config.yaml``) is parsed by :func:`parse_yaml`, with one
dialect: YAML 1.1's ``yes``/``no``/``on``/``off`` are **strings**, only
``true``/``false`` are booleans (YAML 1.2), so ``options: [Yes, No]`` and
``option_effects: {Yes: 1.0, No: 0.0}`` keep their labels. A file that is missing,
unreadable, not UTF-8 or not valid YAML raises :class:`~surveylm.errors.ConfigFileError`
(a :class:`~surveylm.errors.ConfigError` and a :class:`~surveylm.errors.FileFormatError`)
naming the file; a config that fails validation raises ``ConfigError`` listing **every**
problem with its location (:func:`validation_problems`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from surveylm.errors import ConfigError, ConfigFileError, FileFormatError, where

__all__ = [
    "YamlLoader",
    "load_config",
    "parse_yaml",
    "read_text_file",
    "read_yaml",
    "validate",
    "validation_problems",
]

ModelT = TypeVar("ModelT", bound=BaseModel)


class YamlLoader(yaml.SafeLoader):
    """SafeLoader where only ``true``/``false`` are booleans (YAML 1.2), not yes/no/on/off.

    Under YAML 1.1 rules ``options: [Yes, No]`` would load as ``[True, False]``.
    """


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def read_text_file(path: str | Path) -> str:
    """The UTF-8 text of a config-like file (:func:`surveylm.io.textfiles.read_text`).

    Raises:
        ConfigFileError: the file is missing, a folder, unreadable or not UTF-8.
    """
    from surveylm.io.textfiles import read_text

    try:
        return read_text(path)
    except FileFormatError as exc:
        raise ConfigFileError(str(exc)) from None


def parse_yaml(
    text: str,
    path: str | Path | None = None,
    *,
    check: Callable[[yaml.Node], None] | None = None,
) -> Any:
    """Parse YAML text with :class:`YamlLoader` (``None`` for an empty document).

    Args:
        text: The YAML text.
        path: The file it came from, for the error message.
        check: Called with the composed node tree before it is constructed (e.g. to
            refuse duplicated keys with their line).

    Raises:
        ConfigFileError: not valid YAML (one line, with the parser's position).
    """
    try:
        if check is not None:
            root = yaml.compose(text, Loader=YamlLoader)
            if root is not None:
                check(root)
        return yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())
        raise ConfigFileError(f"{where(file=path)}invalid YAML: {message}") from None


def read_yaml(path: str | Path) -> Any:
    """:func:`read_text_file` then :func:`parse_yaml`."""
    return parse_yaml(read_text_file(path), path)


def validation_problems(exc: ValidationError) -> str:
    """Every error of a pydantic ``ValidationError`` as ``"loc: message"``, joined by
    ``"; "`` (``(top level)`` where the error has no location)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
        for err in exc.errors()
    )


def validate(
    schema: type[ModelT] | TypeAdapter[Any], data: Any, context: str = ""
) -> Any:
    """Validate ``data`` against a pydantic model class or a ``TypeAdapter``.

    Raises:
        ConfigError: ``context`` followed by every problem (:func:`validation_problems`).
    """
    try:
        if isinstance(schema, TypeAdapter):
            return schema.validate_python(data)
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{context}{validation_problems(exc)}") from None


def load_config(
    path: str | Path,
    model: type[ModelT],
    *,
    relative_keys: tuple[str, ...] = (),
    context: str = "",
    allow_empty: bool = False,
) -> ModelT:
    """Read and validate a config of type ``model`` from a YAML file.

    Args:
        path: The YAML file.
        model: The pydantic model.
        relative_keys: Top-level keys holding paths: a relative one that exists relative
            to the config file's folder is resolved against it.
        context: Inserted after the file name in validation errors
            (``"invalid fine-tuning config: "``).
        allow_empty: An empty file is an empty mapping (all defaults) instead of an error.

    Raises:
        ConfigFileError: missing, unreadable or unparsable file.
        ConfigError: not a mapping, or fields that are unknown, missing or of the wrong
            type (all named, with their location).
    """
    path = Path(path)
    raw = read_yaml(path)
    if raw is None and allow_empty:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where(file=path)}expected a mapping at the top level")
    raw = dict(raw)
    for key in relative_keys:
        value = raw.get(key)
        if isinstance(value, str) and (path.parent / value).exists():
            raw[key] = str(path.parent / value)
    result: ModelT = validate(model, raw, f"{where(file=path)}{context}")
    return result
