"""The few places where transformers' model API changed between the versions we support.

transformers 5.x renamed a decoder's key/value cache argument from ``past_key_values``
to ``cache`` (the old name is still accepted through a deprecation shim until 5.40, and
the output field is ``cache`` with a ``past_key_values`` alias). Rather than sniff for
one spelling and silently switch an optimisation off when it is missing, every caller
asks here which spelling this model takes.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["base_model", "cache_keyword", "output_cache"]

_CACHE_NAMES = ("cache", "past_key_values")


def base_model(model: Any) -> Any:
    """The transformers model under a peft wrapper (the model itself otherwise)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def cache_keyword(model: Any) -> str | None:
    """The keyword this model's ``forward`` takes a key/value cache by: ``"cache"``
    (transformers ≥ 5.x), ``"past_key_values"`` (4.x), or ``None`` when it takes neither."""
    params = inspect.signature(base_model(model).forward).parameters
    return next((name for name in _CACHE_NAMES if name in params), None)


def output_cache(out: Any) -> Any:
    """The cache a forward with ``use_cache=True`` returned, under either field name."""
    for name in _CACHE_NAMES:
        value = getattr(out, name, None)
        if value is not None:
            return value
    raise ValueError("the model returned no key/value cache (use_cache=True was ignored)")
