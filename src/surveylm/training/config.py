"""Fine-tuning settings as pydantic models, turned into peft / transformers objects.

The settings a user (or an experiment YAML) writes are validated here with
``extra="forbid"``, so a misspelt key is an error rather than a silently ignored
default. peft's ``LoraConfig`` and transformers' ``TrainingArguments`` are *built* from
them, never subclassed (DESIGN.md, "Configs").

Defaults follow the papers: LoRA rank 8, alpha 32 on the query and value projections
(SubPOP, Suh et al. 2025; Cao et al. 2025), learning rate 2e-4.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from surveylm.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover - heavy imports only for type checkers
    import peft
    import transformers

__all__ = ["FineTuneConfig", "LoraSettings", "override_config", "parse_config"]


class LoraSettings(BaseModel):
    """LoRA adapter settings (Hu et al. 2022), as used by SubPOP and Cao et al. 2025.

    Attributes:
        r: Adapter rank.
        alpha: Scaling numerator (``lora_alpha``); the update is scaled by ``alpha / r``
            (or ``alpha / sqrt(r)`` with rsLoRA).
        dropout: Dropout on the adapter input.
        target_modules: Names of the linear layers that get adapters (``q_proj``/``v_proj``
            for Llama-style models; ``query``/``value`` for BERT encoders).
        use_rslora: Rank-stabilised scaling (Kalajdzievski 2023).
        enabled: ``False`` means full fine-tuning (or top-layer tuning) instead of LoRA.
    """

    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, ge=1)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    use_rslora: bool = False
    enabled: bool = True

    def to_peft(
        self, task_type: Any = None, *, layers_to_transform: list[int] | None = None
    ) -> peft.LoraConfig:
        """Build the equivalent ``peft.LoraConfig``.

        Args:
            task_type: peft task type (e.g. ``"CAUSAL_LM"``); ``None`` for a bare module.
            layers_to_transform: Restrict adapters to these layer indices (used for
                "train only the top N layers" together with LoRA).
        """
        from peft import LoraConfig

        if not self.target_modules:
            raise ConfigError("lora.target_modules is empty: name the layers to adapt")
        return LoraConfig(
            r=self.r,
            # peft annotates an int but only divides by it (alpha / r): a float is kept as
            # given, so that a config's alpha: 16.5 means what it says.
            lora_alpha=self.alpha,  # type: ignore[arg-type]
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            use_rslora=self.use_rslora,
            bias="none",
            task_type=task_type,
            layers_to_transform=layers_to_transform,
        )


class FineTuneConfig(BaseModel):
    """Everything about one fine-tuning run except the model and the data.

    Attributes:
        learning_rate: Peak learning rate (AdamW).
        epochs: Number of passes over the training items (fractions allowed).
        max_steps: Stop after this many optimiser steps (overrides ``epochs``).
        batch_size: Items per device per forward pass.
        gradient_accumulation_steps: Forward passes per optimiser step.
        max_forward_batch: Run each batch as forward passes of at most this many items
            (the largest divisor of ``batch_size`` not above it), accumulating their
            gradients: the same optimiser steps with less activation memory; ``None`` =
            one pass per batch.
        weight_decay: AdamW weight decay (not applied to biases, norms or τ).
        warmup_ratio: Fraction of the steps with a linear learning-rate warm-up.
        lr_scheduler: transformers scheduler name (``"linear"``, ``"cosine"``, ``"constant"``).
        max_grad_norm: Gradient clipping norm.
        seed: Seed of model initialisation, data order and dropout.
        lora: LoRA settings; ``lora.enabled=False`` for full fine-tuning.
        train_top_layers: Only the top N transformer layers are trained (with LoRA: only
            they get adapters); ``None`` = all layers.
        logging_steps: Log the loss every this many steps.
        save_every_epoch: Write a checkpoint after each epoch (needed to resume).
        save_total_limit: Keep at most this many checkpoints (``None`` = all).
        bf16: bfloat16 mixed precision: ``"auto"`` = on when a CUDA device supports it,
            never on CPU.
        temperature_lr: Learning rate of temperature parameters (the encoder's τ); ``None``
            = the main learning rate.
        dataloader_num_workers: Worker processes of the data loader.
        head_lr: Learning rate of a scorer's head (parameters named ``head.*``, e.g. the
            encoder's option head) when the rest trains at ``learning_rate``; ``None`` =
            the main learning rate.
        loss: Training objective, a name in :data:`surveylm.training.losses.LOSSES`
            (``forward_kl``: SubPOP / Cao et al.; cross-entropy on one-hot targets).
        validation_fraction: Share of the training items a model holds out as its inner
            validation split (stratified by answer for respondents, by question for
            groups); 0 = no validation, train for the whole budget.
        early_stopping_patience: Stop after this many evaluations without a lower
            validation loss; the best evaluated state (the start included) is restored.
            ``None`` = evaluate and restore the best, but never stop early.
        evaluations_per_epoch: Validation evaluations per epoch.
        format_loss_weight: Weight of ``-log`` format mass (the probability the language
            model puts on the option tokens, before renormalising) added to the training
            loss; at 1 the loss on one-hot targets is the LM's own cross-entropy over the
            whole vocabulary, so fine-tuning also teaches the model to answer with an
            option. Only for scorers whose scores are full-vocabulary log-probabilities
            (the causal LM); 0 = the renormalised loss alone. Validation always uses
            the renormalised loss, so the best state is chosen on answers, not format.
    """

    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(2e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_forward_batch: int | None = Field(None, ge=1)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    lr_scheduler: str = "linear"
    max_grad_norm: float = Field(1.0, gt=0)
    seed: int = 0
    lora: LoraSettings = Field(default_factory=LoraSettings)
    train_top_layers: int | None = Field(None, ge=1)
    logging_steps: int = Field(10, ge=1)
    save_every_epoch: bool = True
    save_total_limit: int | None = Field(None, ge=1)
    bf16: bool | Literal["auto"] = "auto"
    temperature_lr: float | None = Field(None, gt=0)
    dataloader_num_workers: int = Field(0, ge=0)
    head_lr: float | None = Field(None, gt=0)
    loss: str = "forward_kl"
    validation_fraction: float = Field(0.2, ge=0, lt=1)
    early_stopping_patience: int | None = Field(3, ge=1)
    evaluations_per_epoch: int = Field(1, ge=1)
    format_loss_weight: float = Field(0.0, ge=0)

    def forward_batch(self) -> int:
        """Items per training forward pass (``batch_size`` split by ``max_forward_batch``)."""
        cap = self.max_forward_batch
        if cap is None or cap >= self.batch_size:
            return self.batch_size
        return max(d for d in range(1, cap + 1) if self.batch_size % d == 0)

    def use_bf16(self) -> bool:
        """Whether this run trains in bf16 (resolves ``"auto"``; never on CPU)."""
        import torch

        cuda = torch.cuda.is_available()
        if self.bf16 == "auto":
            return bool(cuda and torch.cuda.is_bf16_supported())
        if self.bf16 and not cuda:
            return False
        return bool(self.bf16)

    def to_training_arguments(
        self, output_dir: str | Path, **overrides: Any
    ) -> transformers.TrainingArguments:
        """Build ``transformers.TrainingArguments`` for this run.

        Checkpoints are written each epoch when ``save_every_epoch`` (so a run can resume),
        unused dataset columns are kept (our collators need ``targets``/``option_mask``),
        no experiment tracker is contacted, and the CPU is used when there is no CUDA
        device. ``overrides`` are passed through as extra ``TrainingArguments`` fields.
        """
        import torch
        from transformers import TrainingArguments

        kwargs: dict[str, Any] = dict(
            output_dir=str(output_dir),
            learning_rate=self.learning_rate,
            num_train_epochs=self.epochs,
            max_steps=self.max_steps if self.max_steps is not None else -1,
            per_device_train_batch_size=self.forward_batch(),
            per_device_eval_batch_size=self.batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps
            * (self.batch_size // self.forward_batch()),
            weight_decay=self.weight_decay,
            warmup_steps=self.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
            lr_scheduler_type=self.lr_scheduler,
            max_grad_norm=self.max_grad_norm,
            seed=self.seed,
            data_seed=self.seed,
            logging_strategy="steps",
            logging_steps=self.logging_steps,
            save_strategy="epoch" if self.save_every_epoch else "no",
            save_total_limit=self.save_total_limit,
            eval_strategy="no",
            bf16=self.use_bf16(),
            use_cpu=not torch.cuda.is_available(),
            remove_unused_columns=False,
            report_to=[],
            ddp_find_unused_parameters=False,
            disable_tqdm=False,
            dataloader_num_workers=self.dataloader_num_workers,
        )
        kwargs.update(overrides)
        try:
            return TrainingArguments(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid training arguments: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> FineTuneConfig:
        """Read a config from a YAML file (a clear error naming the file on bad input; an
        empty file is the defaults).

        Raises:
            ConfigFileError: missing or unparsable file.
            ConfigError: an unknown key or an invalid value (every one, located).
        """
        from surveylm.io.yaml_files import load_config

        return load_config(
            path, FineTuneConfig, context="invalid fine-tuning config: ", allow_empty=True
        )


def parse_config(
    value: FineTuneConfig | Mapping[str, Any] | None, *, context: str = ""
) -> FineTuneConfig:
    """Accept a config, a plain mapping (e.g. from YAML/JSON) or ``None`` (defaults).

    Raises:
        ConfigError: an unknown key or an invalid value, named in one line.
    """
    if value is None:
        return FineTuneConfig()
    if isinstance(value, FineTuneConfig):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{context}fine-tuning config must be a mapping, got {type(value)}")
    from surveylm.io.yaml_files import validate

    config: FineTuneConfig = validate(
        FineTuneConfig, dict(value), f"{context}invalid fine-tuning config: "
    )
    return config


def override_config(
    base: FineTuneConfig, value: FineTuneConfig | Mapping[str, Any] | None, *, context: str = ""
) -> FineTuneConfig:
    """A model's defaults ``base`` overridden key by key by a mapping (``lora`` too), or
    ``value`` itself when it is a :class:`FineTuneConfig`; ``None`` = ``base``.

    Raises:
        ConfigError: an unknown key or an invalid value, named in one line.
    """
    if value is None:
        return base
    if not isinstance(value, Mapping):
        return parse_config(value, context=context)
    merged = {**base.model_dump(), **value}
    if isinstance(value.get("lora"), Mapping):
        merged["lora"] = {**base.lora.model_dump(), **value["lora"]}
    return parse_config(merged, context=context)
