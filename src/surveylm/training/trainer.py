"""Fine-tuning any option scorer through ``transformers.Trainer``: the one training entry point.

Both backends (causal LM and sentence encoder) are a ``torch.nn.Module`` that maps a
collated batch to option scores ``[B, K]``. :class:`DistributionTrainer` changes only
how the loss is computed — a loss from :data:`~surveylm.training.losses.LOSSES` chosen
by name (forward KL by default) between the scores and the item's target distribution,
as trl lets a ``compute_loss_func`` be passed — so everything else the Trainer does
(gradient accumulation, mixed precision, checkpoints, resuming, data parallelism under
``accelerate launch`` / ``torchrun``) works unchanged. The objective is SubPOP's (Suh et
al. 2025) and Cao et al. 2025's forward KL; on one-hot respondent targets it is the
cross-entropy of the GLES study (Holtdirk et al. 2025).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from transformers import PreTrainedModel, PrinterCallback, Trainer, TrainerCallback

from surveylm.errors import ConfigError, ModelError
from surveylm.training.checkpoints import CheckpointMarker, last_checkpoint
from surveylm.training.config import FineTuneConfig, parse_config
from surveylm.training.losses import get_loss

__all__ = [
    "BestStateCallback",
    "DistributionTrainer",
    "TrainOutput",
    "find_layer_list",
    "format_loss",
    "freeze_all_but_top_layers",
    "train_option_model",
]

#: Names of the parameters that get ``FineTuneConfig.temperature_lr`` (substring match).
TEMPERATURE_PARAM = "log_temperature"
#: Fewest optimiser steps between two validation evaluations.
MIN_EVAL_STEPS = 8
#: Parameters whose name starts with this get ``FineTuneConfig.head_lr``.
HEAD_PREFIX = "head."


def format_loss(
    scores: torch.Tensor,
    option_mask: torch.Tensor,
    offsets: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean ``-log`` format mass of a batch: ``-logsumexp`` of the options' full-vocabulary
    log-probabilities (``scores`` less the marginal-start ``offsets`` added to them),
    weighted like the main loss."""
    raw = scores if offsets is None else scores - offsets.to(scores.device, scores.dtype)
    log_mass = torch.logsumexp(raw.masked_fill(~option_mask.bool(), -torch.inf), dim=-1)
    if weights is None:
        return -log_mass.mean()
    w = weights.to(log_mass.dtype)
    return -(w * log_mass).sum() / w.sum().clamp(min=1e-12)


class DistributionTrainer(Trainer):
    """A ``transformers.Trainer`` whose loss is the forward KL to the items' target distributions.

    The collated batch must hold ``targets`` (``[B, K]`` float), ``option_mask``
    (``[B, K]`` bool) and optionally ``item_weights`` (``[B]``); everything else is passed
    to ``model(**inputs)``, which returns the option scores (a tensor, or an object with an
    ``option_scores`` attribute).

    Only :meth:`compute_loss` changes the training logic. :meth:`save_model` additionally
    writes just the *trainable* parameters of a plain ``nn.Module`` (LoRA adapters, τ, or
    the whole encoder when fully fine-tuned) instead of its full state dict: checkpoints
    stay small and models with tied weights can be saved; resuming loads them back
    non-strictly, as the Trainer already does.
    """

    #: ``compute_loss`` returns a per-batch mean, so the Trainer divides by the number of
    #: gradient-accumulation steps itself.
    loss_is_scaled_for_ga = False

    def __init__(
        self, *args: Any, loss: str = "forward_kl", format_loss_weight: float = 0.0,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        self.loss_fn = get_loss(loss)
        self.format_loss_weight = format_loss_weight
        super().__init__(*args, **kwargs)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """The configured loss (forward KL by default) between the model's option
        distribution and ``inputs["targets"]``."""
        inputs = dict(inputs)
        try:
            targets = inputs.pop("targets")
            option_mask = inputs.pop("option_mask")
        except KeyError as exc:
            raise ModelError(
                f"the training batch lacks {exc}: the collator must return 'targets' and "
                "'option_mask' beside the model inputs"
            ) from None
        weights = inputs.pop("item_weights", None)
        outputs = model(**inputs)
        scores = outputs if torch.is_tensor(outputs) else outputs.option_scores
        mask = option_mask.to(scores.device)
        w = None if weights is None else weights.to(scores.device)
        loss = self.loss_fn(scores, targets.to(scores.device), mask, w)
        if self.format_loss_weight > 0 and model.training:
            loss = loss + self.format_loss_weight * format_loss(
                scores, mask, inputs.get("option_offsets"), w
            )
        return (loss, outputs) if return_outputs else loss

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save as ``Trainer`` does; a plain ``nn.Module`` writes only its trainable
        parameters (see the class docstring)."""
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        if _is_hf_savable(model) or self.is_fsdp_enabled or self.is_deepspeed_enabled:
            super().save_model(output_dir, _internal_call)
            return
        if not self.args.should_save:
            return
        from safetensors.torch import save_file
        from transformers.trainer import TRAINING_ARGS_NAME
        from transformers.utils import SAFE_WEIGHTS_NAME

        output_dir = cast(str, output_dir or self.args.output_dir)  # set by TrainingArguments
        os.makedirs(output_dir, exist_ok=True)
        trainable = {
            name: p.detach().to("cpu").contiguous().clone()
            for name, p in model.named_parameters()
            if p.requires_grad
        }
        save_file(trainable, os.path.join(output_dir, SAFE_WEIGHTS_NAME), metadata={"format": "pt"})
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))


def _is_hf_savable(model: nn.Module) -> bool:
    if isinstance(model, PreTrainedModel):
        return True
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


@dataclass
class TrainOutput:
    """What a fine-tuning run returns.

    Attributes:
        global_step: Optimiser steps taken (in total, counting a resumed run's earlier steps).
        training_loss: Mean training loss of this call to ``train``.
        log_history: The Trainer's log entries (``{"loss": ..., "step": ...}`` and the final
            summary), as ``trainer.state.log_history``.
        metrics: The Trainer's final metrics (runtime, samples/s...).
        output_dir: Where checkpoints were written.
        seconds: Wall-clock seconds of the run.
        items_per_second: Training items processed per second (all epochs).
        best_step: With a validation set: the step whose state was restored (0 = the start).
        best_validation_loss: Its validation loss.
        initial_validation_loss: The validation loss before any training.
    """

    global_step: int
    training_loss: float
    log_history: list[dict[str, Any]]
    metrics: dict[str, Any] = field(default_factory=dict)
    output_dir: str = ""
    seconds: float = 0.0
    items_per_second: float = 0.0
    best_step: int | None = None
    best_validation_loss: float | None = None
    initial_validation_loss: float | None = None

    @property
    def losses(self) -> list[float]:
        """The logged step losses, in order."""
        return [float(e["loss"]) for e in self.log_history if "loss" in e]

    def curves(self) -> list[dict[str, Any]]:
        """Train and validation loss curves as tidy rows ``{step, epoch, split, loss}``;
        the validation curve starts with the untrained state's loss at step 0."""
        rows = []
        if self.initial_validation_loss is not None:
            rows.append({"step": 0, "epoch": 0.0, "split": "validation",
                         "loss": float(self.initial_validation_loss)})  # fmt: skip
        for e in self.log_history:
            for key, split in (("loss", "train"), ("eval_loss", "validation")):
                if key in e:
                    rows.append({"step": int(e.get("step", 0)), "epoch": float(e.get("epoch", 0)),
                                 "split": split, "loss": float(e[key])})  # fmt: skip
        return rows

    @property
    def improved(self) -> bool | None:
        """Whether training lowered the validation loss below its starting value (``None``
        without a validation set)."""
        if self.best_validation_loss is None or self.initial_validation_loss is None:
            return None
        return self.best_validation_loss < self.initial_validation_loss - 1e-6


def train_option_model(
    module: nn.Module,
    train_dataset: torch.utils.data.Dataset,
    data_collator: Any,
    config: FineTuneConfig | dict[str, Any] | None,
    output_dir: str | Path,
    *,
    eval_dataset: torch.utils.data.Dataset | None = None,
    resume_from_checkpoint: str | bool | None = None,
    callbacks: Sequence[TrainerCallback] | None = None,
    trainer_class: type[DistributionTrainer] | None = None,
    trainer_kwargs: dict[str, Any] | None = None,
    **training_overrides: Any,
) -> TrainOutput:
    """Fine-tune an option scorer with the configured loss (see module docstring).

    With an ``eval_dataset`` (the model's inner validation split) the validation loss is
    measured before training and ``config.evaluations_per_epoch`` times per epoch (at
    least :data:`MIN_EVAL_STEPS` steps apart);
    training stops after ``config.early_stopping_patience`` evaluations without
    improvement and the best state is restored (SubPOP and Cao et al. keep the best
    validation checkpoint). A scorer that starts at the training marginal therefore
    ends no worse than the marginal on validation.

    Args:
        module: Maps a collated batch (minus ``targets``/``option_mask``/``item_weights``)
            to option scores ``[B, K]``. Parameters whose name contains
            ``"log_temperature"`` get ``config.temperature_lr`` when that is set.
        train_dataset: A ``torch.utils.data.Dataset`` of per-item dicts.
        data_collator: Turns a list of those dicts into the batch of tensors.
        eval_dataset: Validation items in the same form, or ``None``.
        config: The fine-tuning settings (a :class:`FineTuneConfig`, a mapping or ``None``).
        output_dir: Checkpoints go to ``output_dir/checkpoint-<step>``.
        resume_from_checkpoint: A checkpoint folder, or ``True`` for the latest one in
            ``output_dir`` (the model, optimiser, scheduler and RNG states are restored, so
            the run ends exactly where an uninterrupted one would).
        callbacks: Extra ``TrainerCallback`` objects.
        trainer_class: A :class:`DistributionTrainer` subclass (DSA's stage 2).
        trainer_kwargs: Extra keyword arguments of the trainer class.
        **training_overrides: Extra ``TrainingArguments`` fields.

    Returns:
        A :class:`TrainOutput` with the loss history (and validation curve).

    Raises:
        ModelError: a module with no trainable parameter, or an empty dataset.
        ConfigError: invalid settings, or ``resume_from_checkpoint=True`` with no checkpoint.
    """
    config = parse_config(config)
    if not any(p.requires_grad for p in module.parameters()):
        raise ModelError("the model has no trainable parameters (all are frozen)")
    if len(train_dataset) == 0:  # type: ignore[arg-type]
        raise ModelError("no training items: every item needs a known target to fine-tune on")
    output_dir = Path(output_dir)
    if resume_from_checkpoint is True:  # the latest *complete* one (a kill mid-save)
        resume_from_checkpoint = str(last_checkpoint(output_dir) or "")
        if not resume_from_checkpoint:
            raise ConfigError(f"file '{output_dir}': no checkpoint to resume from")
    validating = eval_dataset is not None and len(eval_dataset) > 0  # type: ignore[arg-type]
    if validating:
        per_epoch = _steps_per_epoch(len(train_dataset), config)  # type: ignore[arg-type]
        # at least MIN_EVAL_STEPS optimiser steps between evaluations, so that on a small
        # sample (one step an epoch) patience counts real training, not single steps
        every = max(MIN_EVAL_STEPS, per_epoch // config.evaluations_per_epoch)
        total = config.max_steps or max(1, int(per_epoch * config.epochs))
        every = min(every, total)  # a short run is still evaluated (at its end)
        training_overrides = {"eval_strategy": "steps", "eval_steps": every,
                              "label_names": ["targets"], "prediction_loss_only": True,
                              **training_overrides}  # fmt: skip
    if config.format_loss_weight > 0 and not getattr(module, "scores_are_vocabulary_log_probs",
                                                     False):  # fmt: skip
        raise ConfigError(f"format_loss_weight is for causal LMs: {type(module).__name__}'s "
                          "option scores are not vocabulary log-probabilities")
    args = config.to_training_arguments(output_dir, **training_overrides)
    best = BestStateCallback(config.early_stopping_patience) if validating else None
    trainer = (trainer_class or DistributionTrainer)(
        model=module,
        args=args,
        data_collator=data_collator,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if validating else None,
        callbacks=[*(callbacks or []), *([best] if best is not None else []),
                   CheckpointMarker()],  # the marker last: written after the others' state
        loss=config.loss,
        format_loss_weight=config.format_loss_weight,
        **(trainer_kwargs or {}),
    )
    if config.temperature_lr is not None or config.head_lr is not None:
        trainer.optimizer = _optimizer_with_parameter_groups(trainer, module, config)
    if args.disable_tqdm:  # quiet: no progress bar and no printed log lines
        trainer.remove_callback(PrinterCallback)
    start_step = _StartStep()
    trainer.add_callback(start_step)
    if best is not None and resume_from_checkpoint:
        best.load(resume_from_checkpoint)
    elif best is not None:  # the start (for a head: the marginal)
        best.initial_loss = float(trainer.evaluate()["eval_loss"])
    initial = None if best is None else best.initial_loss
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    seconds = time.perf_counter() - start
    steps_run = trainer.state.global_step - start_step.step
    processed: float
    if args.max_steps > 0 or not trainer.state.max_steps:
        processed = steps_run * args.train_batch_size * args.gradient_accumulation_steps
        processed *= args.world_size
    else:  # epochs-based: count items exactly (the last batch of an epoch may be short)
        seen = len(train_dataset) * args.num_train_epochs  # type: ignore[arg-type]
        processed = seen * steps_run / trainer.state.max_steps
    return TrainOutput(
        global_step=int(result.global_step),
        training_loss=float(result.training_loss),
        log_history=list(trainer.state.log_history),
        metrics=dict(result.metrics),
        output_dir=str(output_dir),
        seconds=seconds,
        items_per_second=processed / seconds if seconds > 0 else 0.0,
        best_step=None if best is None else best.best_step,
        best_validation_loss=None if best is None else best.best_loss,
        initial_validation_loss=initial,
    )


def _steps_per_epoch(n: int, config: FineTuneConfig) -> int:
    per_step = config.batch_size * config.gradient_accumulation_steps
    return max(1, -(-n // per_step))


class BestStateCallback(TrainerCallback):
    """Keep the trainable parameters of the best validation evaluation in memory, stop
    after ``patience`` evaluations without improvement, and restore the best at the end.

    Only public ``TrainerCallback`` hooks are used. The state lives in memory, so a
    small head trains without checkpoint I/O; when the run saves checkpoints, it is
    written beside each (:meth:`on_save`) and read back on resume (:meth:`load`). An
    evaluation before training counts, so the restored state is never worse on
    validation than the starting one.
    """

    def __init__(self, patience: int | None = 3, min_delta: float = 1e-6) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best_loss: float | None = None
        self.best_step: int | None = None
        #: The validation loss before training (kept with the state, for resuming).
        self.initial_loss: float | None = None
        self._best: dict[str, torch.Tensor] = {}
        self._bad = 0

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        loss = (kwargs.get("metrics") or {}).get("eval_loss")
        model = kwargs.get("model")
        if loss is None or model is None:
            return
        if self.best_loss is None or loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_step, self._bad = float(loss), int(state.global_step), 0
            # on the CPU: a full fine-tune's copy would otherwise double its GPU memory
            self._best = {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters()
                          if p.requires_grad}  # fmt: skip
        else:
            self._bad += 1
            if self.patience is not None and self._bad >= self.patience:
                control.should_training_stop = True

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Write the early-stopping state beside the checkpoint just saved, for resuming."""
        from safetensors.torch import save_file

        from surveylm.training.checkpoints import BEST_STATE, checkpoint_folder

        folder = checkpoint_folder(args.output_dir, state.global_step)
        if not state.is_world_process_zero or not folder.is_dir():
            return
        info = {"best_loss": self.best_loss, "best_step": self.best_step, "bad": self._bad,
                "initial_loss": self.initial_loss}  # fmt: skip
        (folder / f"{BEST_STATE}.json").write_text(json.dumps(info), encoding="utf-8")
        if self._best:
            tensors = {n: t.contiguous() for n, t in self._best.items()}
            save_file(tensors, str(folder / f"{BEST_STATE}.safetensors"))

    def load(self, folder: str | Path) -> None:
        """Read back the state :meth:`on_save` wrote into checkpoint ``folder``.

        Raises:
            ModelError: the checkpoint has no early-stopping state (not written by a
                validating run).
        """
        from safetensors.torch import load_file

        from surveylm.training.checkpoints import BEST_STATE

        folder = Path(folder)
        try:
            info = json.loads((folder / f"{BEST_STATE}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"file '{folder}': checkpoint without early-stopping state "
                             f"({exc}); it cannot be resumed") from None  # fmt: skip
        self.best_loss, self.best_step = info["best_loss"], info["best_step"]
        self._bad, self.initial_loss = int(info["bad"]), info["initial_loss"]
        weights = folder / f"{BEST_STATE}.safetensors"
        self._best = load_file(str(weights)) if weights.is_file() else {}

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs.get("model")
        if model is None or not self._best:
            return
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in self._best:
                    p.copy_(self._best[n].to(p.device))


class _StartStep(TrainerCallback):
    """Records the step a (possibly resumed) run starts from, to measure its speed."""

    step = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.step = int(state.global_step)


def _optimizer_with_parameter_groups(
    trainer: Trainer, module: nn.Module, config: FineTuneConfig
) -> torch.optim.Optimizer:
    """The Trainer's default optimiser, with temperature parameters (``temperature_lr``)
    and head parameters (``head_lr``) in their own groups."""
    decay = set(trainer.get_decay_parameter_names(module))
    groups: dict[str, dict[str, Any]] = {
        "decay": {"params": [], "weight_decay": config.weight_decay},
        "no_decay": {"params": [], "weight_decay": 0.0},
        "temperature": {"params": [], "weight_decay": 0.0,
                        "lr": config.temperature_lr or config.learning_rate},
        "head": {"params": [], "weight_decay": config.weight_decay,
                 "lr": config.head_lr or config.learning_rate},
    }  # fmt: skip
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        if TEMPERATURE_PARAM in name:
            key = "temperature"
        elif name.startswith(HEAD_PREFIX) and config.head_lr is not None:
            key = "head"
        else:
            key = "decay" if name in decay else "no_decay"
        groups[key]["params"].append(p)
    # HF reads only the model's parameter names here; a plain nn.Module (a head) does as well.
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(trainer.args, module)  # type: ignore[arg-type]
    return cls([g for g in groups.values() if g["params"]], **kwargs)


# -- top-layer tuning -------------------------------------------------------------------
_LAYER_LIST_NAMES = ("layers", "layer", "h", "blocks", "block")


def find_layer_list(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's stack of transformer layers: the longest ``nn.ModuleList`` named like one.

    Works for Llama/Qwen/Mistral (``model.layers``), BERT (``encoder.layer``), GPT-2
    (``transformer.h``) and most others.

    Raises:
        ModelError: when no such list exists.
    """
    best: tuple[str, nn.ModuleList] | None = None
    for name, mod in model.named_modules():
        named_like_layers = name.rsplit(".", 1)[-1] in _LAYER_LIST_NAMES
        if (
            isinstance(mod, nn.ModuleList)
            and named_like_layers
            and (best is None or len(mod) > len(best[1]))
        ):
            best = (name, mod)
    if best is None:
        raise ModelError(
            f"cannot find the transformer layers of {type(model).__name__} (looked for a "
            f"ModuleList named one of {list(_LAYER_LIST_NAMES)})"
        )
    return best


def freeze_all_but_top_layers(model: nn.Module, n: int) -> list[str]:
    """Freeze every parameter except those of the top ``n`` transformer layers.

    Args:
        model: A transformer (or a module containing one).
        n: How many of the last layers stay trainable.

    Returns:
        The names of the parameters left trainable.

    Raises:
        ConfigError: ``n`` is not between 1 and the number of layers.
        ModelError: the layer stack cannot be found.
    """
    name, layers = find_layer_list(model)
    if not 1 <= n <= len(layers):
        raise ConfigError(f"train_top_layers must be between 1 and {len(layers)}, got {n}")
    prefixes = tuple(f"{name}.{i}." for i in range(len(layers) - n, len(layers)))
    trainable = []
    for pname, p in model.named_parameters():
        keep = pname.startswith(prefixes)
        p.requires_grad_(keep)
        if keep:
            trainable.append(pname)
    return trainable
