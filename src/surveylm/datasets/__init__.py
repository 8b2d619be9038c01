"""Built-in real survey data, loadable by name.

``anes1996`` ships with statsmodels (public domain) and is always available. The two
FiveThirtyEight surveys (CC BY 4.0) are read from a data folder beside the repository
(``../shared/data``) or from ``$SURVEYLM_SHARED_DATA`` when present.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from surveylm.errors import DataError, preview
from surveylm.survey import Survey


@dataclass(frozen=True)
class DatasetInfo:
    """A built-in dataset: its loader and a one-line description."""

    name: str
    loader: str  # "module:function", imported lazily
    description: str
    license: str

    def load(self) -> Survey:
        module, _, func = self.loader.partition(":")
        fn: Callable[[], Survey] = getattr(importlib.import_module(module), func)
        return fn()


DATASETS: dict[str, DatasetInfo] = {
    "anes1996": DatasetInfo(
        "anes1996",
        "surveylm.datasets.anes:load_anes1996",
        "American National Election Studies 1996 (statsmodels subset): 944 respondents, "
        "vote Clinton/Dole, party ID, ideology, education, income, age",
        "public domain",
    ),
    "masculinity": DatasetInfo(
        "masculinity",
        "surveylm.datasets.fivethirtyeight:load_masculinity",
        "FiveThirtyEight/SurveyMonkey 'What do men think it means to be a man?' (2018), "
        "1,615 men, weighted; needs ../shared/data",
        "CC BY 4.0",
    ),
    "nonvoters": DatasetInfo(
        "nonvoters",
        "surveylm.datasets.fivethirtyeight:load_nonvoters",
        "FiveThirtyEight/Ipsos non-voters survey (2020), 5,836 respondents, weighted, "
        "planned vote Q23; needs ../shared/data",
        "CC BY 4.0",
    ),
}


def load_dataset(name: str) -> Survey:
    """Load a built-in dataset by name (see :data:`DATASETS`)."""
    try:
        info = DATASETS[name]
    except KeyError:
        raise DataError(
            f"unknown dataset '{name}'; built-in datasets are {preview(sorted(DATASETS))}"
        ) from None
    return info.load()


def load_anes1996() -> Survey:
    """Load ANES 1996 (see :func:`surveylm.datasets.anes.load_anes1996`)."""
    from surveylm.datasets.anes import load_anes1996 as _load

    return _load()


__all__ = ["DATASETS", "DatasetInfo", "load_anes1996", "load_dataset"]
