"""Answer model on any Hugging Face causal LM: first-token option scoring, LoRA fine-tuning.

Prediction reads ``p(option | question, context)`` off the next-token distribution at
the end of the prompt (Cao et al. 2025; SubPOP, Suh et al. 2025) — see
:mod:`surveylm.models.option_tokens`. Fine-tuning trains a LoRA adapter (Hu et al. 2022;
r=8, alpha=32 on q_proj/v_proj by default, as SubPOP and Cao et al.) with the forward KL
to each item's target distribution through
:func:`surveylm.training.trainer.train_option_model`; for one-hot respondent targets this
is the cross-entropy of the GLES imputation study (Holtdirk et al. 2025). The same model
without fine-tuning is the zero-shot baseline those papers compare against.

``fit`` runs, in order: the inner validation split; format alignment (the LM taught to
answer with an option token by self-distillation, ``align_format``); the marginal start's
offsets (contextual calibration, ``marginal_start``); LoRA fine-tuning, early-stopped on
validation with the best state restored; and the pooling weights chosen on validation
(:mod:`surveylm.models.shrinkage`, :mod:`surveylm.models.seen_cells`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import numpy as np

from surveylm.errors import DataError, ModelError, where
from surveylm.io.atomic import scratch_dir
from surveylm.items import ItemSet
from surveylm.models.base import AnswerModel, Predictions, write_model_json
from surveylm.models.hf_loading import (
    load_causal_lm,
    quiet_loading,
    resolve_device,
    resolve_dtype,
)
from surveylm.models.option_order import in_question_order, option_labels
from surveylm.models.seen_cells import SeenCells
from surveylm.models.shrinkage import Shrinkage
from surveylm.prompts import default_format, get_format, option_orders
from surveylm.training.config import FineTuneConfig, override_config

__all__ = ["CausalLMAnswerModel"]

#: Prompts, in batches, whose prefix trees run together (one call for their shared
#: prefixes, one for their group segments: :func:`surveylm.models.prefix_cache.run_plans`);
#: bounds the keys and values held at once.
PREFIX_WINDOW = 8
#: Most prompts in one prefix tree (:func:`surveylm.models.prefix_cache.partition`).
PLAN_ROWS = 32
#: Items per question that the marginal start's offsets and the format alignment use.
CALIBRATION_ITEMS = 64


def causal_lm_default_config() -> FineTuneConfig:
    """The causal LM's fitting defaults (LoRA r = 8, α = 32 on q/v as SubPOP and Cao et al.).

    AdamW at 1e-3 with a 10 % warm-up and linear decay over at most 2 epochs, 20 % of
    the items held out, evaluated twice an epoch, the best state kept and the run stopped
    after 2 evaluations without gain (DESIGN.md, "Fitting"). SubPOP's 2e-4 is a rate for
    7B+ models over thousands of steps; on SmolLM2-135M with a few hundred respondents it
    stays near the marginal in an epoch (ANES 1996 vote, 378 items, marginal .685:
    validation loss .620 after 1 epoch at 2e-4; .324 after the first of 3 epochs at 1e-3
    without warm-up). With these defaults fine-tuning beat zero-shot on ANES and on the
    non-voters survey (``benchmarks/lm_vs_tabular.py --lm``). The loss adds ``-log`` format mass
    (``format_loss_weight`` = 1: on one-hot targets, the LM's own cross-entropy over the
    vocabulary), so a fine-tuned model answers with an option letter instead of leaving
    half its probability elsewhere (.52 format mass on ANES without it). No epoch
    checkpoints outside ``surveylm fit --resume``.

    Batches of 8 items run as one forward pass (``max_forward_batch`` = ``None``).
    ``fine_tune: {max_forward_batch: 2}`` runs them as 4 passes of 2 with gradient
    accumulation (the same optimiser steps): on SmolLM2 with ANES group prompts a fit's
    peak resident memory falls from 6.3 GB to 2.9 GB, but the result is not the same fit
    (dropout draws and rounding differ), and at 1e-3 the fit is not stable enough for
    that not to matter: on ANES 1996 respondents (vote, seed 0) LoRA accuracy fell from
    .905 to .768 and MI coverage from 1.0 to 0.0 with passes of 2. Validation loss rose
    between steps 24 and 48 of 96 in both that run and a one-pass run with another seed
    (.66 -> 1.06 / .95; the warm-up peaks at step 10) and was still falling at the last
    step.
    """
    return FineTuneConfig(
        learning_rate=1e-3, epochs=2.0, warmup_ratio=0.1, lr_scheduler="linear",
        evaluations_per_epoch=2, early_stopping_patience=2, save_every_epoch=False,
        format_loss_weight=1.0, max_forward_batch=None,
    )  # fmt: skip


class SpeedupDeclinedWarning(UserWarning):
    """A predict-time speed-up (prefix sharing, the last-position trim) was asked for but
    does not apply to this model; predictions are the plain forward's."""


class CausalLMAnswerModel(AnswerModel):
    """Any Hugging Face causal LM as an answer model (see module docstring).

    ``predict`` works without ``fit``: that is the zero-shot model. ``fit`` fine-tunes a
    LoRA adapter (or the top layers) on the items' target distributions; with
    ``zero_shot=True`` it only loads the model, so runners can treat the zero-shot
    baseline like any other model.

    Args:
        model_name: Hub id, local folder or ``.gguf`` file (de-quantised once and cached:
            :mod:`surveylm.models.hf_loading`); ``None`` = the small default,
            SmolLM2-135M-Instruct (:func:`~surveylm.models.hf_loading.default_causal_lm`;
            ``$SURVEYLM_SMOLLM2_GGUF`` points elsewhere), sized for a CPU.
        prompt_format: A :data:`~surveylm.prompts.FORMATS` name, or ``"auto"`` (``qa`` for
            group items, ``profile`` for respondent items).
        chat: Use the chat template (with the generation prompt); ``None`` = when the
            tokenizer has one.
        system_prompt: System message for chat models.
        permutations: Option orders averaged at predict time (against letter-position
            bias; cyclic orders are capped at the number of options).
        permutation_scheme: ``"cyclic"`` or ``"random"`` (see
            :func:`~surveylm.prompts.option_orders`).
        train_permutations: Option orders per training item (augmentation; 1 = codebook).
        batch_size: Prompts per forward pass at predict time.
        max_length: Longest prompt in tokens (a longer one is an error naming the item).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        dtype: ``"auto"`` (bf16 on GPU, fp32 on CPU) or a dtype name.
        fine_tune: A :class:`~surveylm.training.config.FineTuneConfig`, or a mapping that
            overrides :func:`causal_lm_default_config` key by key.
        zero_shot: ``fit`` loads the model and trains nothing.
        marginal_start: Fine-tune a residual on each training question's marginal: the
            option scores get a fixed per-question offset ``log m_q − mean log p_LM(q)``
            (the training marginal over the zero-shot model's average answer on the
            training items: contextual calibration, Zhao et al. 2021), so the untrained
            model answers with the marginal on average and training only adds how
            contexts differ. A fit that does not beat the marginal on validation says
            so (one warning, ``beats_marginal: false`` in the predictions) and answers
            fitted questions with the marginal: its pooling weight there is 0
            (:mod:`surveylm.models.shrinkage`). Unseen questions get no offset.
        align_format: Before fine-tuning, teach the LM to answer with an option token
            without changing which: one epoch on the calibration sample (at most 64 items
            per training question) with the LM's own renormalised answers as targets and
            the format loss (self-distillation). The fit's starting point then answers in
            format (SmolLM2's zero-shot format mass is .41-.87 on our surveys), also when
            validation keeps that starting point. Needs ``format_loss_weight`` > 0.
        pool_seen_cells: Answer a group item of a training cell (question x group) with
            that cell's training distribution pooled with the prediction by empirical
            Bayes (:mod:`surveylm.models.seen_cells`); ``False`` = the model alone.
        output_dir: Checkpoint folder for fine-tuning (default: a temporary one).
        trust_remote_code: Passed to ``from_pretrained`` (off by default).
        use_safetensors: Load safetensors weights only (on by default).
        last_position_trim: At predict time, run the top layer's output projection and
            feed-forward block at the last position only
            (:mod:`surveylm.models.last_position`); checked once per model against the
            plain forward, which is used where the two differ. ``False`` = always plain.
        prefix_sharing: At predict time, sort prompts so that shared token prefixes are
            neighbours and compute a batch's shared prefix once
            (:mod:`surveylm.models.prefix_cache`); checked once per model against the
            plain forward, which is used where the two differ. ``False`` = always plain.
        min_shared_prefix: Shortest shared prefix (tokens) worth a separate pass; batches
            sharing less run the plain forward.
        random_state: Seed of the random option orders and of fine-tuning (adapter
            initialisation, data order, dropout), unless a ``fine_tune`` mapping names its
            own ``seed``; ``None`` = fresh entropy each time.
        verbose: Progress bars while fine-tuning and scoring (scoring bars show on a
            terminal only).
    """

    name: ClassVar[str] = "causal-lm"
    resumable: ClassVar[bool] = True
    # Declared for the type checker only (no class-level values: getattr defaults apply).
    _in_memory: bool  # built by from_model(): nothing to (re)load
    option_offsets_: dict[str, np.ndarray]
    log_marginal_: dict[str, np.ndarray]
    beats_marginal_: bool | None
    marginal_: dict[str, list[float]]
    shrinkage_: Shrinkage | None
    fit_groups_: list[str] | None
    seen_cells_: SeenCells | None
    _stage_items: tuple[ItemSet, int] | None  # training_parts() -> end_training()

    def __init__(
        self,
        model_name: str | None = None,
        prompt_format: str = "auto",
        chat: bool | None = None,
        system_prompt: str | None = None,
        permutations: int = 1,
        permutation_scheme: Literal["cyclic", "random"] = "cyclic",
        train_permutations: int = 1,
        batch_size: int = 8,
        max_length: int = 2048,
        device: str = "auto",
        dtype: str = "auto",
        fine_tune: Any = None,
        zero_shot: bool = False,
        marginal_start: bool = True,
        align_format: bool = True,
        pool_seen_cells: bool = True,
        output_dir: str | None = None,
        trust_remote_code: bool = False,
        use_safetensors: bool = True,
        last_position_trim: bool = True,
        prefix_sharing: bool = True,
        min_shared_prefix: int = 16,
        random_state: int | None = 0,
        verbose: bool = True,
    ) -> None:
        super().__init__(random_state=random_state, verbose=verbose)
        self.model_name = model_name
        self.prompt_format = prompt_format
        self.chat = chat
        self.system_prompt = system_prompt
        self.permutations = permutations
        self.permutation_scheme = permutation_scheme
        self.train_permutations = train_permutations
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self.dtype = dtype
        self.fine_tune = fine_tune
        self.zero_shot = zero_shot
        self.marginal_start = marginal_start
        self.align_format = align_format
        self.pool_seen_cells = pool_seen_cells
        self.output_dir = output_dir
        self.trust_remote_code = trust_remote_code
        self.use_safetensors = use_safetensors
        self.last_position_trim = last_position_trim
        self.prefix_sharing = prefix_sharing
        self.min_shared_prefix = min_shared_prefix

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, **params: Any) -> CausalLMAnswerModel:
        """Wrap a model and tokenizer already in memory (e.g. loaded with custom options).

        ``model_name`` defaults to the model's ``name_or_path``; the model is used as it
        is (its device and dtype), frozen and put in eval mode.
        """
        params.setdefault("model_name", getattr(model, "name_or_path", "") or "in-memory")
        out = cls(**params)
        out._device = str(next(model.parameters()).device)
        out._lm = model.requires_grad_(False).eval()
        out._tok = tokenizer
        out._pad = out._pad_id(tokenizer)
        out._in_memory = True
        return out

    @staticmethod
    def _pad_id(tokenizer: Any) -> int:
        pad = tokenizer.pad_token_id
        pad = tokenizer.eos_token_id if pad is None else pad
        return 0 if pad is None else int(pad)

    # -- loading -----------------------------------------------------------------------
    def _ensure_loaded(self, *, fresh: bool = False) -> None:
        if getattr(self, "_in_memory", False):  # from_model(): nothing to (re)load
            if fresh and getattr(self, "trained_", None):
                raise ModelError("refitting needs a model loaded by name, not from_model()")
            return
        if getattr(self, "_lm", None) is not None and not fresh:
            return
        device = resolve_device(self.device)
        with contextlib.nullcontext() if self.verbose else quiet_loading():
            model, tokenizer = load_causal_lm(
                self.model_name,
                dtype=resolve_dtype(self.dtype, device),
                trust_remote_code=self.trust_remote_code,
                use_safetensors=self.use_safetensors,
            )
        self._device = device
        # frozen and in eval mode: inference only until fit() unfreezes what it trains
        self._lm = model.requires_grad_(False).to(device).eval()
        self._tok = tokenizer
        self._pad = self._pad_id(tokenizer)

    @property
    def uses_chat(self) -> bool:
        """Whether prompts go through the chat template (loads the tokenizer)."""
        self._ensure_loaded()
        if self.chat is None:
            return getattr(self._tok, "chat_template", None) is not None
        if self.chat and getattr(self._tok, "chat_template", None) is None:
            raise ModelError(
                f"model '{self.model_name or 'default'}' has no chat template but chat=True"
            )
        return bool(self.chat)

    def _formats(self, items: ItemSet) -> list[Any]:
        if self.prompt_format == "auto":
            return [default_format(k) for k in items.frame["kind"]]
        return [get_format(self.prompt_format)] * len(items)

    def _orders(self, items: ItemSet, n: int) -> list[list[np.ndarray]]:
        out = []
        seed = self._seed()
        for q in items.item_questions():
            m = min(n, q.n_options) if self.permutation_scheme == "cyclic" else n
            out.append(option_orders(q.n_options, m, seed=seed, scheme=self.permutation_scheme))
        return out

    def _encode(self, items: ItemSet, n_orders: int) -> list[Any]:
        from surveylm.models.option_tokens import encode_items

        encoded = encode_items(
            items, self._tok, self._formats(items), chat=self.uses_chat,
            orders=self._orders(items, n_orders), max_length=self.max_length,
            system=self.system_prompt,
        )  # fmt: skip
        offsets = self._offsets()
        if offsets:
            qids = items.frame["question_id"].to_numpy()
            labels = getattr(self, "option_labels_", None)
            mine = {q: in_question_order(offsets[q], labels, q, items.questions[q].options)
                    for q in items.question_ids if q in offsets}  # the items' option order
            for e in encoded:
                off = mine.get(qids[e.index])
                e.offset = None if off is None else off[e.order]  # the prompt's order
        return encoded

    def _offsets(self) -> dict[str, np.ndarray]:
        """The marginal start's per-question offsets; the marginal itself (LM ignored)
        where validation said the LM does not beat it (see ``marginal_start``)."""
        return getattr(self, "option_offsets_", None) or {}

    def _calibration_sample(self, items: ItemSet) -> ItemSet:
        """At most :data:`CALIBRATION_ITEMS` items per question of ``items`` (seeded)."""
        qids = items.frame["question_id"].to_numpy()
        rng = np.random.default_rng(self._seed())
        take = np.concatenate([rng.permutation(np.flatnonzero(qids == q))[:CALIBRATION_ITEMS]
                               for q in items.question_ids])  # fmt: skip
        return items.subset(np.sort(take))

    def _align_format(
        self, model: Any, sample: ItemSet, cfg: FineTuneConfig
    ) -> tuple[dict[str, float], Predictions]:
        """Format alignment (see ``align_format``): one epoch on the calibration sample
        (:meth:`_calibration_sample`), its targets the LM's own renormalised answers,
        with the format loss. Returns the sample's mean format mass before and after, how far its
        renormalised answers moved (mean TV), and the aligned LM's predictions of it."""
        from surveylm.models.option_scoring import (
            CausalLMOptionScorer,
            OptionCollator,
            OptionItemDataset,
        )
        from surveylm.training.trainer import train_option_model

        before = self.predict(sample)
        frame = sample.frame.copy()
        frame["target"] = [np.asarray(d, dtype=float) for d in before.distributions]
        own = ItemSet(frame, sample.questions, sample.summary)
        settings = cfg.model_copy(update={
            "epochs": 1.0, "max_steps": None, "validation_fraction": 0.0,
            "early_stopping_patience": None, "save_every_epoch": False,
        })  # fmt: skip
        with scratch_dir("surveylm-format-") as tmp:
            train_option_model(
                CausalLMOptionScorer(model), OptionItemDataset(self._encode(own, 1)),
                OptionCollator(self._pad), settings, tmp, disable_tqdm=not self.verbose,
            )  # fmt: skip
        model.eval()
        after = self.predict(sample)
        moved = [0.5 * np.abs(a - b).sum()
                 for a, b in zip(after.distributions, before.distributions, strict=True)]
        mass = [float(np.mean(cast("np.ndarray", p.format_mass))) for p in (before, after)]
        summary = {"before": mass[0], "after": mass[1],
                   "answers_moved_tv": float(np.mean(moved)), "n_items": len(sample)}
        return summary, after

    def _marginal_offsets(
        self, items: ItemSet, sample: ItemSet, pred: Predictions | None = None
    ) -> dict[str, np.ndarray]:
        """``log m_q − mean log p_LM(q)`` per question of ``items`` (see
        ``marginal_start``), the LM's mean over ``sample`` (:meth:`_calibration_sample`;
        ``pred``: the LM's predictions of it, when already made)."""
        from surveylm.models.item_texts import marginal_log_prior

        log_prior = marginal_log_prior(items)
        pred = self.predict(sample) if pred is None else pred
        sample_qids = sample.frame["question_id"].to_numpy()
        out = {}
        for q in items.question_ids:
            logs = [
                np.log(np.clip(d, 1e-12, None))
                for d, sq in zip(pred.distributions, sample_qids, strict=True)
                if sq == q
            ]
            out[q] = log_prior[q] - np.mean(logs, axis=0)
        return out

    # -- fit ---------------------------------------------------------------------------
    def fit(
        self,
        items: ItemSet,
        *,
        resume_from_checkpoint: str | bool | None = None,
        callbacks: Sequence[Any] | None = None,
    ) -> CausalLMAnswerModel:
        """Fine-tune on the items with a known target (forward KL); returns ``self``.

        Args:
            items: Training items (items without a target are skipped).
            resume_from_checkpoint: A checkpoint folder, or ``True`` for the latest one in
                ``output_dir`` (needs ``output_dir``).
            callbacks: Extra ``transformers.TrainerCallback`` objects.

        Raises:
            DataError: no item has a known target.
        """
        from transformers import set_seed

        from surveylm.models.item_texts import marginal_log_prior
        from surveylm.models.option_scoring import (
            CausalLMOptionScorer,
            OptionCollator,
            OptionItemDataset,
        )
        from surveylm.models.validation import MarginalWarning, inner_split, warn_no_gain
        from surveylm.training.trainer import (
            find_layer_list,
            freeze_all_but_top_layers,
            train_option_model,
        )

        train = items.filter(known_target=True)
        if len(train) == 0:
            raise DataError("no items with a known target to fine-tune on")
        if resume_from_checkpoint and self.output_dir is None:
            raise ModelError("resume_from_checkpoint needs output_dir (where checkpoints are)")
        self._ensure_loaded(fresh=True)  # refitting starts from the base model again
        self.option_offsets_, self.log_marginal_, self.beats_marginal_ = {}, {}, None
        self.option_labels_ = option_labels(train)  # the order of the per-question state
        self.marginal_ = {q: np.exp(v).tolist() for q, v in marginal_log_prior(train).items()}
        self.shrinkage_, self.fit_groups_, self.seen_cells_ = None, None, None
        if self.zero_shot:
            self.trained_, self.history_ = None, []
            return self
        cfg = self._checkpointing(self.fine_tune_config())
        set_seed(cfg.seed)  # adapter initialisation
        model = self._lm
        if cfg.lora.enabled:
            from peft import get_peft_model

            layers = None
            if cfg.train_top_layers is not None:
                total = len(find_layer_list(model)[1])
                layers = list(range(max(total - cfg.train_top_layers, 0), total))
            model = get_peft_model(model, cfg.lora.to_peft("CAUSAL_LM", layers_to_transform=layers))
            trained = "lora"
        elif cfg.train_top_layers is not None:
            freeze_all_but_top_layers(model, cfg.train_top_layers)
            trained = "layers"
        else:
            model.requires_grad_(True)
            trained = "layers"
        # inner validation split (DESIGN.md "Fitting"): early stopping, best state restored
        fit_pos, val_pos = inner_split(train, cfg.validation_fraction, cfg.seed)
        self.option_offsets_, self.log_marginal_, self.beats_marginal_ = {}, {}, None
        fit_items = train.subset(fit_pos)
        sample = self._calibration_sample(fit_items)
        alignment, aligned = None, None
        if self.align_format and cfg.format_loss_weight > 0:
            alignment, aligned = self._align_format(model, sample, cfg)
        if self.marginal_start:
            self.log_marginal_ = marginal_log_prior(fit_items)
            self.option_offsets_ = self._marginal_offsets(fit_items, sample, aligned)
        dataset = OptionItemDataset(self._encode(train.subset(fit_pos), self.train_permutations))
        evaluation = OptionItemDataset(self._encode(train.subset(val_pos), 1)) \
            if len(val_pos) else None  # fmt: skip
        try:
            with scratch_dir("surveylm-ft-") as tmp:
                out = train_option_model(
                    CausalLMOptionScorer(model), dataset, OptionCollator(self._pad), cfg,
                    self.output_dir or tmp, eval_dataset=evaluation,
                    resume_from_checkpoint=resume_from_checkpoint,
                    callbacks=callbacks, disable_tqdm=not self.verbose,
                )  # fmt: skip
        except BaseException:
            if not getattr(self, "_in_memory", False):
                self._lm = None  # half-trained adapter inside: reload the base next time
            raise
        # inference from here on: frozen weights give the same kernels (and bit-identical
        # numbers) as a model restored by load()
        self._trained_names = [n for n, p in model.named_parameters() if p.requires_grad]
        self._lm = model.requires_grad_(False).to(self._device).eval()
        self.trained_ = trained
        self.history_ = out.log_history
        self.train_seconds_ = out.seconds
        self.items_per_second_ = out.items_per_second
        self.validation_ = {"initial": out.initial_validation_loss,
                            "best": out.best_validation_loss, "best_step": out.best_step,
                            "n_fit": len(fit_pos), "n_validation": len(val_pos),
                            "seed": cfg.seed, "format_alignment": alignment}  # fmt: skip
        self.curves_ = out.curves()
        marginal_loss = self._marginal_validation_loss(train.subset(val_pos), cfg.loss)
        if marginal_loss is not None and out.best_validation_loss is not None:
            self.validation_["marginal"] = marginal_loss
            self.beats_marginal_ = out.best_validation_loss < marginal_loss - 1e-6
        self.shrinkage_, cells = self._choose_shrinkage(train, fit_pos, val_pos,
                                                        self.beats_marginal_ is False)  # fmt: skip
        self.seen_cells_ = cells if self.pool_seen_cells else None
        self.validation_["shrinkage"] = self.shrinkage_.to_dict()
        self.validation_["seen_cell_kappa"] = None if cells is None else cells.kappa
        if self.log_marginal_:  # what seen questions get if the LM lost: the baseline's
            self.log_marginal_ = marginal_log_prior(train)  # marginal, from every item
        name = f"causal LM '{self.model_name or 'default'}'"
        if self.beats_marginal_ is False:
            also = " (a seen cell: its own data pooled with it)" if self.seen_cells_ else ""
            warn_no_gain(name, out.best_validation_loss, "the training marginal's",
                         marginal_loss, f"fitted questions are answered with the marginal{also}",
                         MarginalWarning)  # fmt: skip
        elif out.improved is False:
            warn_no_gain(name, out.best_validation_loss, "the untrained model's",
                         out.initial_validation_loss,
                         "the untrained (format-aligned) weights are kept" if alignment
                         else "the untrained (zero-shot) weights are kept")  # fmt: skip
        return self

    def _choose_shrinkage(
        self, train: ItemSet, fit_pos: np.ndarray, val_pos: np.ndarray,
        lost_to_marginal: bool = False, predicted: Sequence[np.ndarray] | None = None,
    ) -> tuple[Shrinkage, SeenCells | None]:  # fmt: skip
        """What the fitted LM is pooled with (:func:`~surveylm.models.shrinkage.
        fit_pooling`), from its predictions of the validation items (they do not depend
        on the anchor; ``predicted`` when already made); sets ``fit_groups_``."""
        from surveylm.models.item_texts import battery_log_prior, marginal_log_prior
        from surveylm.models.shrinkage import fit_pooling

        log_fit = marginal_log_prior(train.subset(fit_pos))
        battery = battery_log_prior(self.option_labels_, {q: np.exp(v) for q, v in
                                    log_fit.items()}, train.question_ids)  # fmt: skip
        if predicted is None:
            predicted = self.predict(train.subset(val_pos)).distributions if len(val_pos) else []
        by_position = dict(zip(val_pos.tolist(), predicted, strict=True))
        qids = train.frame["question_id"].to_numpy()

        def anchor(i: int, name: str) -> np.ndarray:
            lp = {"marginal": log_fit, "battery": battery}.get(name, {}).get(qids[i])
            lp = np.zeros(len(by_position[i])) if lp is None else np.asarray(lp, dtype=float)
            return np.exp(lp - np.logaddexp.reduce(lp))

        self.fit_groups_, shrinkage, cells = fit_pooling(
            train, fit_pos, val_pos, model=lambda i, name: by_position[i], anchor=anchor,
            lost_to_marginal=lost_to_marginal,
        )  # fmt: skip
        return shrinkage, cells

    def fine_tune_config(self) -> FineTuneConfig:
        """The resolved fitting settings: :func:`causal_lm_default_config`, overridden key
        by key by a ``fine_tune`` mapping (``lora`` too), or a :class:`FineTuneConfig` as
        given. The seed is ``random_state`` unless the mapping names one."""
        cfg = override_config(causal_lm_default_config(), self.fine_tune,
                              context="causal-lm fine_tune: ")  # fmt: skip
        if not (isinstance(self.fine_tune, Mapping) and "seed" in self.fine_tune):
            cfg = cfg.model_copy(update={"seed": self._seed()})
        return cfg

    def _loses_to_marginal(
        self, validation: ItemSet, predicted: Sequence[np.ndarray]
    ) -> bool | None:
        """Whether the LM's own predictions (no pooling) ``predicted`` of ``validation``
        score a training loss no lower than the training marginal's; ``None`` without a
        marginal start or items. For a model trained further after ``fit`` (DSA's
        stage 2)."""
        loss = self.fine_tune_config().loss
        marginal = self._marginal_validation_loss(validation, loss)
        if marginal is None:
            return None
        scores = [np.log(np.clip(d, 1e-12, None)) for d in predicted]
        return _mean_loss(scores, validation.targets, loss) >= marginal - 1e-6

    def _marginal_validation_loss(self, validation: ItemSet, loss: str) -> float | None:
        """Mean training loss (``loss``, the fit's own, so the two compare) of the training
        marginal on the validation items (the fit part's; the uniform for a question held
        out of it); ``None`` without a marginal start or items."""
        if not self.log_marginal_ or len(validation) == 0:
            return None
        # a question held out of the fit part has no marginal there: the uniform
        qids = validation.frame["question_id"]
        scores = [self.log_marginal_.get(q, np.zeros(validation.questions[q].n_options))
                  for q in qids]  # fmt: skip
        return _mean_loss(scores, validation.targets, loss)

    def training_parts(self, items: ItemSet) -> Any:
        """What a further training stage (DSA's stage 2) needs, without private state:
        the option scorer around the fitted LM, the LM, a dataset of ``items`` in
        codebook option order (so shifts between groups line up) and its collator.
        Call :meth:`end_training` afterwards."""
        from surveylm.models.base import TrainingParts
        from surveylm.models.option_scoring import (
            CausalLMOptionScorer,
            OptionCollator,
            OptionItemDataset,
        )

        self._ensure_loaded()
        dataset = OptionItemDataset(self._encode(items, 1))
        seed = int(getattr(self, "validation_", {}).get("seed", 0))
        self._stage_items = (items, seed)
        return TrainingParts(CausalLMOptionScorer(self._lm), self._lm, dataset,
                             OptionCollator(self._pad), seed)  # fmt: skip

    def end_training(self, trained_names: list[str] | None = None) -> None:
        """Back to inference after :meth:`training_parts` was trained; ``trained_names``
        (the parameters that stage trained) are saved with the model when its own fit
        trained none."""
        if not getattr(self, "_trained_names", None):
            self._trained_names = list(trained_names or [])
        self._lm.requires_grad_(False).eval()
        stage = getattr(self, "_stage_items", None)
        self._stage_items = None
        if stage is not None:  # pooling weights and cells chosen again, for the new weights
            from surveylm.models.validation import inner_split

            items, seed = stage
            fit_pos, val_pos = inner_split(items, self.fine_tune_config().validation_fraction,
                                           seed)  # fmt: skip
            self.shrinkage_, self.seen_cells_ = None, None  # the LM's own predictions
            validation = items.subset(val_pos)
            predicted = self.predict(validation).distributions if len(val_pos) else []
            lost = self._loses_to_marginal(validation, predicted)
            if lost is not None:  # the further trained weights against the marginal again
                self.beats_marginal_ = not lost
            self.shrinkage_, cells = self._choose_shrinkage(items, fit_pos, val_pos,
                                                            lost is True, predicted)  # fmt: skip
            self.seen_cells_ = cells if self.pool_seen_cells else None
            if hasattr(self, "validation_"):
                self.validation_["shrinkage"] = self.shrinkage_.to_dict()
                self.validation_["seen_cell_kappa"] = None if cells is None else cells.kappa

    # -- predict -----------------------------------------------------------------------
    def predict(self, items: ItemSet) -> Predictions:
        """Option distributions (averaged over ``permutations`` orders) and format mass.

        Works on an unfitted model (zero-shot). One forward pass per batch of
        length-sorted, left-padded prompts, under ``torch.inference_mode``; with
        ``prefix_sharing``, runs of neighbours in lexicographic token order that share a
        long enough prefix are scored as prefix trees instead, each shared prefix
        computed once (:mod:`surveylm.models.prefix_cache`). Afterwards
        ``prefix_stats`` holds the prompt tokens, the tokens and positions (padding
        included) computed, and the numbers of prefix trees and plain batches.
        """
        import torch
        from tqdm.auto import tqdm

        from surveylm.models.option_scoring import CausalLMOptionScorer, OptionCollator
        from surveylm.models.prefix_cache import accepts_prefix_cache, run_plans

        self._ensure_loaded()
        encoded = self._encode(items, self.permutations)
        scorer = CausalLMOptionScorer(self._lm).eval()
        collate = OptionCollator(self._pad)
        sums = [np.zeros(q.n_options) for q in items.item_questions()]
        mass = np.zeros(len(items))
        counts = np.zeros(len(items))

        def inputs(chunk: list[Any]) -> list[Any]:
            batch = collate([{"input_ids": e.input_ids, "option_token_ids": e.option_ids}
                             for e in chunk])  # fmt: skip
            return [batch[k].to(self._device)
                    for k in ("input_ids", "attention_mask", "option_token_ids")]  # fmt: skip

        with torch.inference_mode():
            units = self._batches(encoded, sharing=self.prefix_sharing)
            first = next((u for u in units if u[1] is not None), None)
            if first is not None and not self._prefix_exact(
                scorer, cast("tuple[list[list[int]], list[Any]]", first), encoded, inputs
            ):  # first: a unit with plans (u[1] is not None)
                units = self._batches(encoded, sharing=False)
                sharing = "declined: shared-prefix scores differ from the plain forward"
            elif not self.prefix_sharing:
                sharing = "off"
            elif not accepts_prefix_cache(self._lm):
                sharing = ("declined: the model's forward takes no key/value cache and "
                           "position_ids")  # fmt: skip
            else:
                sharing = "on" if first is not None else "unused: no prompts share a long prefix"
            for batches, plans in tqdm(
                units, desc="scoring",
                disable=None if self.verbose else True,
            ):  # fmt: skip
                chunks = [[encoded[j] for j in rows] for rows in batches]
                args = [inputs(chunk) for chunk in chunks]
                with self._trim(scorer, args[0]).active():
                    if plans is None:
                        scores = [scorer(*args[0])]
                    else:
                        scores = run_plans(scorer, plans, [a[2] for a in args], self._pad, self._bs)
                for chunk, chunk_scores in zip(chunks, scores, strict=True):
                    for e, row in zip(chunk, chunk_scores.double().cpu().numpy(), strict=True):
                        logp = row[: len(e.order)]
                        top = logp.max()
                        total = np.exp(logp - top).sum()
                        mass[e.index] += np.exp(top) * total
                        counts[e.index] += 1
                        if e.offset is not None:
                            logp = logp + e.offset
                            top = logp.max()
                        p = np.exp(logp - top)
                        sums[e.index][e.order] += p / p.sum()
        self.prefix_stats = self._prefix_stats(encoded, units)
        self.speedups = {"prefix_sharing": sharing, "last_position_trim": self._trim_status()}
        self._warn_declined()
        dists = [s / c for s, c in zip(sums, counts, strict=True)]
        shrink = getattr(self, "shrinkage_", None)
        if shrink is not None:  # fitted: as far from its anchors as validation supports
            from surveylm.models.shrinkage import apply_pooling, new_question_log_priors

            new = new_question_log_priors(shrink, self.option_labels_, self.marginal_, items)
            dists = apply_pooling(items, dists, shrink, getattr(self, "seen_cells_", None),
                                  labels=self.option_labels_, marginals=self.marginal_,
                                  fit_groups=getattr(self, "fit_groups_", None),
                                  new_log_priors=new)  # fmt: skip
        return Predictions(
            items.item_ids, dists, model=self.name, format_mass=mass / counts,
            extra={"prompt_format": self.prompt_format, "permutations": self.permutations,
                   "chat": self.uses_chat, "speedups": dict(self.speedups),
                   "marginal_start": bool(self._offsets()),
                   "beats_marginal": getattr(self, "beats_marginal_", None),
                   "shrinkage": None if shrink is None else shrink.to_dict()},
        )  # fmt: skip

    def _trim_status(self) -> str:
        if not self.last_position_trim:
            return "off"
        cached = getattr(self, "_trim_cache", None)
        if cached is None or cached[0] is not self._lm:
            return "unused"
        return "on" if cached[1].applicable else "declined: differs from the plain forward"

    def _warn_declined(self) -> None:
        """One warning per model and speed-up that was asked for but declined (nothing
        silent: the numbers are the same, only slower)."""
        import warnings

        warned = self.__dict__.setdefault("_warned_speedups", set())
        for name, status in self.speedups.items():
            if status.startswith("declined") and name not in warned:
                warned.add(name)
                warnings.warn(f"causal LM '{self.model_name}': {name.replace('_', ' ')} "
                              f"{status} (predictions are unchanged, only slower)",
                              SpeedupDeclinedWarning, stacklevel=3)  # fmt: skip

    @property
    def _bs(self) -> int:
        return max(1, int(self.batch_size))

    def _batches(
        self, encoded: list[Any], *, sharing: bool
    ) -> list[tuple[list[list[int]], list[Any] | None]]:
        """Units of work ``(runs of prompt indices, plans)``. With ``sharing``: windows
        of up to :data:`PREFIX_WINDOW` batches' worth of prompts, as runs of neighbours in
        lexicographic token order whose shared prefix is long enough, with their
        :class:`~surveylm.models.prefix_cache.PrefixPlan` (run together by
        :func:`~surveylm.models.prefix_cache.run_plans`); the other prompts sorted by
        length (least padding), one batch per unit, plans ``None`` (the plain forward)."""
        from surveylm.models.prefix_cache import accepts_prefix_cache, partition, plan_batch

        bs = self._bs
        planned: list[tuple[list[int], Any]] = []
        rest = list(range(len(encoded)))
        if sharing and accepts_prefix_cache(self._lm):
            lexicographic = sorted(rest, key=lambda j: encoded[j].input_ids)
            seqs = [encoded[j].input_ids for j in lexicographic]
            rest = []
            for lo, hi, shared in partition(
                seqs, max_rows=PLAN_ROWS, min_prefix=self.min_shared_prefix
            ):
                plan = (
                    plan_batch(seqs[lo:hi], min_prefix=self.min_shared_prefix) if shared else None
                )
                if plan is None:
                    rest += lexicographic[lo:hi]
                else:
                    planned.append((lexicographic[lo:hi], plan))
        rest.sort(key=lambda j: -len(encoded[j].input_ids))
        grouped: list[tuple[list[list[int]], list[Any]]] = []
        for rows, plan in planned:
            if not grouped or sum(map(len, grouped[-1][0])) + len(rows) > PREFIX_WINDOW * bs:
                grouped.append(([], []))
            grouped[-1][0].append(rows)
            grouped[-1][1].append(plan)
        units: list[tuple[list[list[int]], list[Any] | None]] = [*grouped]
        return units + [([rest[s : s + bs]], None) for s in range(0, len(rest), bs)]

    def _prefix_exact(
        self, scorer: Any, unit: tuple[list[list[int]], list[Any]], encoded: list[Any],
        inputs: Any,
    ) -> bool:  # fmt: skip
        """Whether shared-prefix scoring gives this model's numbers: checked once per model
        on one ``unit`` of planned batches against the plain forward (both with the trim
        in use)."""
        import torch

        from surveylm.models.prefix_cache import prefix_is_exact, run_plans

        cached = getattr(self, "_prefix_check", None)
        if cached is not None and cached[0] is self._lm:
            return cached[1]
        batches, plans = unit
        args = [inputs([encoded[j] for j in rows]) for rows in batches]
        dtype = next(self._lm.parameters()).dtype
        with self._trim(scorer, args[0]).active():
            ok = prefix_is_exact(
                lambda: torch.cat([scorer(*a).flatten() for a in args]),
                lambda: torch.cat([x.flatten() for x in run_plans(
                    scorer, plans, [a[2] for a in args], self._pad, self._bs)]),
                dtype=dtype,
            )  # fmt: skip
        self._prefix_check = (self._lm, ok)
        return ok

    def _prefix_stats(
        self, encoded: list[Any], units: list[tuple[list[list[int]], list[Any] | None]]
    ) -> dict:
        """Tokens in the prompts vs tokens and positions (padding included) computed."""
        from surveylm.models.prefix_cache import positions_run

        tokens = sum(len(e.input_ids) for e in encoded)
        run, positions, shared, n = 0, 0, 0, 0
        for batches, plans in units:
            n += len(batches)
            if plans is None:
                lengths = [len(encoded[j].input_ids) for j in batches[0]]
                run += sum(lengths)
                positions += max(lengths) * len(lengths)
            else:
                run += sum(plan.tokens_run for plan in plans)
                positions += positions_run(plans, self._bs)
                shared += len(plans)
        return {"prompt_tokens": tokens, "tokens_run": run, "positions_run": positions,
                "prefix_trees": shared, "plain_batches": n - shared}  # fmt: skip

    def _trim(self, scorer: Any, args: list[Any]) -> Any:
        """The top-layer last-position trim (:mod:`surveylm.models.last_position`) when it
        gives this model's numbers: checked once per model on the first two prompts of
        ``args`` (a batch), else a trim that does nothing (the plain forward)."""
        from surveylm.models.last_position import LastPositionTrim, trim_is_exact

        if not self.last_position_trim:
            return LastPositionTrim(None)
        cached = getattr(self, "_trim_cache", None)
        if cached is not None and cached[0] is self._lm:
            return cached[1]
        trim = LastPositionTrim(self._lm)
        probe = [a[:2] for a in args]
        dtype = next(self._lm.parameters()).dtype
        if not trim_is_exact(lambda: scorer(*probe), trim, dtype=dtype):
            trim = LastPositionTrim(None)
        self._trim_cache = (self._lm, trim)
        return trim

    # -- persistence -------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``model.json`` (parameters, training history) and the trained weights:
        the LoRA adapter (``adapter/``, peft format, safetensors) or the trained layers
        (``trained_layers.safetensors``). An unfitted model saves its settings only
        (a zero-shot model). ``model.json`` is written last, atomically."""
        from surveylm.io.atomic import atomic_path

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        params = self.get_params()
        if isinstance(params["fine_tune"], FineTuneConfig):  # a mapping stays as given: on
            params["fine_tune"] = params["fine_tune"].model_dump()  # load it overrides the
        elif params["fine_tune"] is not None:  # causal LM's defaults again, key by key
            params["fine_tune"] = dict(params["fine_tune"])
        trained = getattr(self, "trained_", None)
        if trained == "lora":
            tmp = Path(tempfile.mkdtemp(prefix=".adapter.", dir=directory))
            self._lm.save_pretrained(tmp, safe_serialization=True)
            shutil.rmtree(directory / "adapter", ignore_errors=True)
            os.replace(tmp, directory / "adapter")
        elif trained == "layers":
            from safetensors.torch import save_file

            keep = set(self._trained_names)
            state = {n: p.detach().cpu().contiguous() for n, p in self._lm.named_parameters()
                     if n in keep}  # fmt: skip
            with atomic_path(directory / "trained_layers.safetensors") as tmp_file:
                save_file(state, str(tmp_file))
        if getattr(self, "curves_", None):
            from surveylm.models.validation import write_training_curves

            write_training_curves(directory, self.curves_)
        shrink, cells = getattr(self, "shrinkage_", None), getattr(self, "seen_cells_", None)
        state = {"fitted": self.is_fitted, "trained": trained,
                 "history": getattr(self, "history_", []), "curves": getattr(self, "curves_", []),
                 "option_offsets": {q: v.tolist() for q, v in self._offsets().items()},
                 "log_marginal": {q: v.tolist()
                                  for q, v in (getattr(self, "log_marginal_", None) or {}).items()},
                 "beats_marginal": getattr(self, "beats_marginal_", None),
                 "option_labels": getattr(self, "option_labels_", {}),
                 "marginal": getattr(self, "marginal_", {}),
                 "shrinkage": None if shrink is None else shrink.to_dict(),
                 "fit_groups": getattr(self, "fit_groups_", None),
                 "seen_cells": None if cells is None else cells.to_dict()}  # fmt: skip
        write_model_json(self, directory, params, state)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> CausalLMAnswerModel:
        """Restore a model written by :meth:`save` (base model + adapter): the same
        predictions as before saving."""
        directory = Path(directory)
        model, state = cls._from_saved(directory)
        model._ensure_loaded()
        trained = state.get("trained")
        if trained == "lora":
            from peft import PeftModel

            adapter = directory / "adapter"
            if not adapter.is_dir():
                raise ModelError(f"{where(file=adapter)}the saved adapter is missing")
            model._lm = PeftModel.from_pretrained(model._lm, adapter).to(model._device).eval()
        elif trained == "layers":
            from safetensors.torch import load_file

            weights = load_file(str(directory / "trained_layers.safetensors"))
            missing = set(weights) - {n for n, _ in model._lm.named_parameters()}
            if missing:
                raise ModelError(f"{where(file=directory)}saved weights do not fit the model "
                                 f"'{model.model_name}' (e.g. {sorted(missing)[0]})")  # fmt: skip
            model._lm.load_state_dict(weights, strict=False)
            model._trained_names = sorted(weights)
        if state.get("fitted"):
            model.trained_ = trained
            model.history_ = state.get("history", [])
            model.curves_ = state.get("curves", [])
            model.option_offsets_ = {
                q: np.asarray(v, dtype=float) for q, v in state.get("option_offsets", {}).items()
            }
            model.log_marginal_ = {
                q: np.asarray(v, dtype=float) for q, v in state.get("log_marginal", {}).items()
            }
            model.beats_marginal_ = state.get("beats_marginal")
            model.option_labels_ = state.get("option_labels", {})
            model.marginal_ = state.get("marginal", {})
            shrink = state.get("shrinkage")  # None: saved before pooling (predicts as then)
            model.shrinkage_ = None if shrink is None else Shrinkage(**shrink)
            if shrink is None and model.beats_marginal_ is False and model.log_marginal_:
                # saved before pooling by a fit that lost: it answered fitted questions
                # with their marginal and new ones with the LM; the same as a pool
                model.shrinkage_ = Shrinkage(seen=0.0, new_group=0.0, new_question=1.0)
                model.marginal_ = model.marginal_ or {
                    q: np.exp(v - np.logaddexp.reduce(v)).tolist()
                    for q, v in model.log_marginal_.items()
                }
            model.fit_groups_ = state.get("fit_groups")
            model.seen_cells_ = SeenCells.from_dict(state.get("seen_cells"))
        return model


def _mean_loss(log_scores: Sequence[np.ndarray], targets: Sequence[Any], loss: str) -> float:
    """Mean of the training loss ``loss`` (by name) over items, one option-score vector
    (log-probabilities) and one target distribution each."""
    import torch

    from surveylm.training.losses import get_loss

    loss_fn = get_loss(loss)
    values = []
    for scores, t in zip(log_scores, targets, strict=True):
        x = torch.as_tensor(np.asarray(scores, dtype=float), dtype=torch.float32)[None]
        y = torch.as_tensor(np.asarray(t, dtype=float), dtype=torch.float32)[None]
        values.append(float(loss_fn(x, y, torch.ones_like(y, dtype=torch.bool))))
    return float(np.mean(values))
