"""Module boundaries the architecture promises (issue: one scoring back-end boundary).

* Option-token derivation and prompt encoding are torch-free, so that a back end other
  than transformers can reuse them.
* DSA builds on its back end's public training parts only: no private attribute of
  another object is read.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "surveylm"


@pytest.mark.parametrize("module", ["surveylm.models.option_tokens", "surveylm.prompts"])
def test_option_tokens_and_prompts_import_without_torch(module):
    # ``sys.modules["torch"] = None`` makes every ``import torch`` raise ImportError.
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; "
        f"import importlib; importlib.import_module({module!r}); print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def _private_reads_of_other_objects(path: Path) -> list[str]:
    """``obj._name`` where ``obj`` is not ``self``/``cls``/``super()`` (dunders allowed)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in {"self", "cls"}:
            continue
        if isinstance(owner, ast.Call) and getattr(owner.func, "id", None) == "super":
            continue
        found.append(f"{path.name}:{node.lineno}: .{name} of {ast.unparse(owner)}")
    return found


@pytest.mark.parametrize("path", [SRC / "models" / "dsa.py", SRC / "training" / "dsa.py"])
def test_dsa_reads_no_private_attribute_of_another_object(path):
    assert _private_reads_of_other_objects(path) == []


def test_the_scan_finds_a_private_read(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(backend):\n    return backend._scorer\n")
    assert _private_reads_of_other_objects(bad) == ["bad.py:2: ._scorer of backend"]


def test_trainers_override_no_private_trainer_method():
    from transformers import Trainer

    from surveylm.training.dsa import DSATrainer
    from surveylm.training.trainer import DistributionTrainer

    for cls in (DistributionTrainer, DSATrainer):
        private = [
            name for name in vars(cls)
            if name.startswith("_") and not name.startswith("__") and hasattr(Trainer, name)
            and callable(getattr(Trainer, name))
        ]  # fmt: skip
        assert private == [], f"{cls.__name__} overrides private Trainer methods {private}"
