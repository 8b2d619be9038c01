"""The public API: ``import surveylm as sl`` exposes a sorted ``__all__`` of importable
names, lazily, and ``sl.impute`` stays the imputation function whatever was imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

import surveylm as sl


def test_all_is_sorted_and_unique() -> None:
    assert sl.__all__ == sorted(sl.__all__)
    assert len(set(sl.__all__)) == len(sl.__all__)
    assert sorted(dir(sl)) == sl.__all__


@pytest.mark.parametrize("name", sl.__all__)
def test_every_name_is_importable(name: str) -> None:
    assert getattr(sl, name) is not None
    namespace: dict[str, object] = {}
    exec(f"from surveylm import {name}", namespace)
    assert namespace[name] is getattr(sl, name)


def test_the_surface_users_need_is_exported() -> None:
    from surveylm.completed_data import impute
    from surveylm.experiments.imputation import run_imputation_benchmark
    from surveylm.mi_pooling import rubin_pool
    from surveylm.training.config import FineTuneConfig

    assert sl.impute is impute and sl.rubin_pool is rubin_pool
    assert sl.FineTuneConfig is FineTuneConfig
    assert sl.run_imputation_benchmark is run_imputation_benchmark
    for name in ("split_respondents", "crossed_split", "MCARConfig", "load_scenarios",
                 "run_simulation_benchmark", "make_model", "model_class", "MODELS",
                 "UniformModel", "EncoderAnswerModel"):  # fmt: skip
        assert name in sl.__all__, name
    assert set(sl.MODELS) >= {"uniform", "encoder", "causal-lm"}


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sl.nope  # noqa: B018


IMPORTS = {
    "import the old module first": "import surveylm.impute\nimport surveylm as sl",
    "the function first, then the old module": (
        "import surveylm as sl\nsl.impute\nimport surveylm.impute"
    ),
    "from the old module": "import surveylm as sl\nfrom surveylm.impute import impute, pool_shares",
    "the new module": "import surveylm.completed_data\nimport surveylm as sl",
}


@pytest.mark.parametrize("imports", list(IMPORTS.values()), ids=list(IMPORTS))
def test_sl_impute_runs_the_function_after_any_import_of_it(imports: str) -> None:
    """In a fresh interpreter (imports are process-wide): ``sl.impute(...)`` imputes."""
    code = imports + """
import inspect
import numpy as np, pandas as pd
from surveylm.survey import Question, Survey
data = pd.DataFrame({"g": ["a", "b"] * 10, "v": ["x", "y", None, "x"] * 5})
survey = Survey(data, [Question("g", "G?", ("a", "b")), Question("v", "V?", ("x", "y"))])
out = sl.impute(survey, "v", ["g"], "question-marginal", m=2)
assert sorted(set(out[".imp"])) == [0, 1, 2], out
assert list(inspect.signature(sl.impute).parameters)[:3] == ["survey", "target", "features"]
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
