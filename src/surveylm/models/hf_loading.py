"""Loading Hugging Face models safely and offline-first.

DESIGN.md: models load with ``trust_remote_code=False`` and safetensors by default; any
hub id or local folder works, and nothing assumes a hub is reachable. Failures become one
:class:`~surveylm.errors.ModelError` line that names the model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from surveylm.errors import ModelError, SurveyLMError

__all__ = [
    "load_causal_lm",
    "looks_local",
    "quiet_loading",
    "resolve_device",
    "resolve_dtype",
]

_TRUE = {"1", "true", "yes", "on"}


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` → ``"cuda"`` when a CUDA device is present, else ``"cpu"``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    """``"auto"`` → bfloat16 on a GPU that supports it, float32 otherwise."""
    import torch

    if dtype == "auto":
        gpu = device.startswith("cuda") and torch.cuda.is_available()
        return torch.bfloat16 if gpu and torch.cuda.is_bf16_supported() else torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}  # fmt: skip
    if dtype not in table:
        raise ModelError(f"unknown dtype '{dtype}': expected auto, {', '.join(table)}")
    return table[dtype]


def looks_local(name: str) -> bool:
    """A path rather than a hub id: it exists, or is written like a path."""
    return (
        Path(name).expanduser().exists()
        or name.startswith(("/", "./", "../", "~", "\\"))
        or name.endswith(("/", "\\"))
        or name.count("/") > 1
        or (len(name) > 1 and name[1] == ":")  # C:\...
    )


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Hide transformers' per-load "Loading weights" bar (a runner loads a model per fit;
    the runners' own progress bars say what is happening)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def load_causal_lm(
    name: str,
    *,
    dtype: Any = None,
    trust_remote_code: bool = False,
    use_safetensors: bool = True,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a hub id or a local folder.

    Nothing assumes a hub is reachable: a local path, or ``HF_HUB_OFFLINE`` /
    ``TRANSFORMERS_OFFLINE`` set, loads with ``local_files_only``.

    Raises:
        ModelError: a missing folder, or a model that cannot be loaded (unreachable hub
            id offline, no safetensors weights...), in one line.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = str(name)
    local = looks_local(name)
    if local and not Path(name).expanduser().is_dir():
        raise ModelError(f"model folder '{name}' does not exist")
    path = str(Path(name).expanduser()) if local else name
    offline = local or any(
        os.environ.get(v, "").lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    common = {"local_files_only": offline, "trust_remote_code": trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **common)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, use_safetensors=use_safetensors, **common
        )
    except SurveyLMError:
        raise
    except Exception as exc:  # transformers raises OSError, ValueError, HF hub errors...
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        where_ = "offline, " if offline and not local else ""
        raise ModelError(f"cannot load causal LM '{name}' ({where_}{first})") from None
    return model, tokenizer
