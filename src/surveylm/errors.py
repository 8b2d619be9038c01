"""Errors raised on bad input.

Every error a user can cause raises a subclass of :class:`SurveyLMError` whose message
names *where* the problem is (file, row, column, question, item) and *what was expected*.
The CLI prints the message on one line and exits non-zero, without a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class SurveyLMError(Exception):
    """Base class of every error surveylm raises on bad input or configuration."""


class DataError(SurveyLMError, ValueError):
    """Survey data that cannot be used as given (bad weights, unknown answer labels...)."""


class CodebookError(SurveyLMError, ValueError):
    """A codebook (or question definition) that is inconsistent or incomplete."""


class DistributionError(SurveyLMError, ValueError):
    """A probability vector that is not a distribution (negative, NaN, bad sum, wrong length)."""


class FileFormatError(SurveyLMError, ValueError):
    """A file that cannot be read: missing, unreadable, truncated, wrong encoding or schema."""


class ConfigError(SurveyLMError, ValueError):
    """An invalid experiment or model configuration."""


class ConfigFileError(ConfigError, FileFormatError):
    """A config-like YAML file (experiment, scenario, fine-tuning config, label table) that
    is missing, unreadable or not valid YAML: both a :class:`ConfigError` and a
    :class:`FileFormatError`, so either ``except`` catches it."""


class ModelError(SurveyLMError, RuntimeError):
    """A model that cannot be loaded or used (missing folder, unreachable hub id, bad tokenizer)."""


class OutputError(SurveyLMError, OSError):
    """An output path that cannot take the result (a file where a folder is wanted, a
    folder that is not writable, an existing run that would be mixed with a new one)."""


class NotFittedError(SurveyLMError, RuntimeError):
    """``predict`` or ``save`` was called on a model that has not been fitted."""


class LeakageWarning(UserWarning):
    """A possible leak between training and test data that is not certain enough to refuse
    (e.g. a test question whose wording nearly duplicates a training question's)."""


def where(
    *,
    file: object | None = None,
    row: object | None = None,
    column: object | None = None,
    question: object | None = None,
    item: object | None = None,
) -> str:
    """Format a location prefix such as ``"file 'a.csv', row 12, column 'q3': "``.

    Rows are reported 1-based as a user sees them in a spreadsheet (header excluded)
    when given as integers.
    """
    parts: list[str] = []
    if file is not None:
        parts.append(f"file '{file}'")
    if row is not None:
        parts.append(f"row {row}")
    if column is not None:
        parts.append(f"column '{column}'")
    if question is not None:
        parts.append(f"question '{question}'")
    if item is not None:
        parts.append(f"item '{item}'")
    return (", ".join(parts) + ": ") if parts else ""


def preview(values: Iterable[object], limit: int = 5) -> str:
    """Render at most ``limit`` values for an error message, noting how many were left out."""
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:limit])
    extra = len(values) - limit
    return shown + (f" (and {extra} more)" if extra > 0 else "")


def shorten(text: object, limit: int) -> str:
    """``text`` on one line, cut to at most ``limit`` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
