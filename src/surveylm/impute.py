"""The old path of :mod:`surveylm.completed_data` (``from surveylm.impute import impute``).

``surveylm.impute`` is the *function* :func:`~surveylm.completed_data.impute`. Importing
this module binds the package attribute ``surveylm.impute`` to the module (Python's import
system does that for every submodule), so the module is made callable: ``surveylm.impute(
survey, target, features, model)`` runs the function either way. New code imports from
:mod:`surveylm.completed_data` or uses ``surveylm.impute``.
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any

from surveylm.completed_data import INDEX_COLUMNS, impute, pool_shares, write_imputations

__all__ = ["INDEX_COLUMNS", "impute", "pool_shares", "write_imputations"]
__signature__ = inspect.signature(impute)


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`~surveylm.completed_data.impute`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return impute(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
