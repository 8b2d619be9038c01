"""Numeric model parameters checked when a model is built, not when it first predicts.

``--param smoothing=abc`` or ``smoothing=-3`` used to be stored and fail only in numpy at
``predict``, after the fit. A model lists its numeric parameters' ranges as
``param_rules`` and calls :func:`check_params` at the end of its constructor (and again at
``fit``, for values changed with ``set_params``): a bad value is one
:class:`~surveylm.errors.ConfigError` naming the model, the parameter and the range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from surveylm.errors import ConfigError

__all__ = ["Rule", "check_params"]


@dataclass(frozen=True)
class Rule:
    """The range of one numeric parameter.

    Attributes:
        low: Smallest allowed value.
        strict: ``low`` itself is not allowed (``> low`` rather than ``>= low``).
        below: Values must be smaller than this (``None``: no upper bound).
        integer: The value must be a whole number.
        optional: ``None`` is allowed (a default chosen by the library).
    """

    low: float = 0.0
    strict: bool = False
    below: float | None = None
    integer: bool = False
    optional: bool = False

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        bound = f"> {self.low:g}" if self.strict else f">= {self.low:g}"
        if self.below is not None:
            bound += f" and < {self.below:g}"
        return f"{kind} {bound}" + (" (or null)" if self.optional else "")

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool) or not isinstance(value, Integral if self.integer else Real):
            return False
        v = float(value)
        if not math.isfinite(v) or v < self.low or (self.strict and v == self.low):
            return False
        return self.below is None or v < self.below


def check_params(model: Any) -> None:
    """Check ``model``'s parameters against its class's ``param_rules``.

    Raises:
        ConfigError: a value of the wrong type or outside its range, e.g.
            ``QuestionMarginalModel: smoothing must be a number >= 0, got 'abc'``.
    """
    for name, rule in getattr(type(model), "param_rules", {}).items():
        value = getattr(model, name)
        if not rule.accepts(value):
            raise ConfigError(f"{type(model).__name__}: {name} must be {rule.describe()}, "
                              f"got {value!r}")  # fmt: skip
