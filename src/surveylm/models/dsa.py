"""DSA answer model: forward-KL fine-tuning, then shift alignment (Huang, Li, Shao 2025).

Stage 1 fine-tunes a backend (the sentence ``"encoder"`` or a ``"causal-lm"``) with the
forward KL to each group's answer distribution, exactly as the backend's own ``fit``.
Stage 2 continues from there with forward KL + λ × the shift loss of
:func:`surveylm.training.dsa.dsa_shift_loss` (our reading of DSA; the paper's exact loss
is not public), optionally training only the top transformer layers, with batches that
hold several groups of one question. Prediction is the backend's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from surveylm.errors import ConfigError, ModelError
from surveylm.io.atomic import scratch_dir
from surveylm.items import ItemSet
from surveylm.models.base import AnswerModel, Predictions, write_model_json
from surveylm.models.validation import inner_split, warn_no_gain, write_training_curves

__all__ = ["DSAModel", "set_stage2_trainable"]

_BACKENDS = ("encoder", "causal-lm")


def set_stage2_trainable(module: Any, base: Any, top_layers: int | None) -> list[str]:
    """Choose what stage 2 trains; returns the trainable parameter names of ``module``.

    With LoRA adapters in ``base`` only adapter weights train, otherwise all weights; with
    ``top_layers`` only those in the top ``top_layers`` transformer layers of ``base``
    (the encoder's temperature then stays fixed too).
    """
    from surveylm.training.trainer import TEMPERATURE_PARAM, find_layer_list

    module.requires_grad_(False)
    if base is None:  # a head on a frozen encoder: the head is what trains
        module.requires_grad_(True)
        return [n for n, p in module.named_parameters() if p.requires_grad]
    lora = any("lora_" in n for n, _ in base.named_parameters())
    if top_layers is None:
        for n, p in module.named_parameters():
            p.requires_grad_(not lora or "lora_" in n or TEMPERATURE_PARAM in n)
    else:
        name, layers = find_layer_list(base)
        if not 1 <= top_layers <= len(layers):
            raise ConfigError(f"stage2_top_layers must be between 1 and {len(layers)}")
        prefixes = tuple(f"{name}.{i}." for i in range(len(layers) - top_layers, len(layers)))
        for n, p in base.named_parameters():
            p.requires_grad_(n.startswith(prefixes) and (not lora or "lora_" in n))
    return [n for n, p in module.named_parameters() if p.requires_grad]


class DSAModel(AnswerModel):
    """Distribution Shift Alignment on an encoder or causal-LM backend (module docstring).

    Args:
        backend: ``"encoder"`` or ``"causal-lm"``.
        backend_params: Constructor arguments of the backend (its ``fine_tune`` is stage 1).
        shift_weight: λ, weight of the shift loss in stage 2 (0 = stage 2 is plain KL).
        distance: Shift distance, ``"l1"`` or ``"l2"``.
        stage2: Stage-2 :class:`~surveylm.training.config.FineTuneConfig` (mapping);
            ``None`` = the backend's stage-1 settings.
        stage2_top_layers: Train only this many top layers in stage 2 (``None`` = all that
            stage 1 trained; ignored for an encoder head on a frozen encoder).
        per_question: Groups of one question placed together in a batch.
        random_state: Seed of both stages (the back end's ``random_state``).
        verbose: Progress bars.
    """

    name: ClassVar[str] = "dsa"

    def __init__(
        self,
        backend: str = "encoder",
        backend_params: dict[str, Any] | None = None,
        shift_weight: float = 1.0,
        distance: str = "l1",
        stage2: dict[str, Any] | None = None,
        stage2_top_layers: int | None = None,
        per_question: int = 4,
        random_state: int | None = 0,
        verbose: bool = True,
    ) -> None:
        self.backend = backend
        self.backend_params = backend_params
        self.shift_weight = shift_weight
        self.distance = distance
        self.stage2 = stage2
        self.stage2_top_layers = stage2_top_layers
        self.per_question = per_question
        self.random_state = random_state
        self.verbose = verbose

    def _make_backend(self) -> Any:
        if self.backend not in _BACKENDS:
            raise ConfigError(f"DSA backend must be one of {list(_BACKENDS)}, got {self.backend!r}")
        from surveylm.models import make_model

        params = dict(self.backend_params or {})
        params.setdefault("verbose", self.verbose)
        params.setdefault("random_state", self.random_state)
        return make_model(self.backend, **params)

    def _stage2_config(self, backend: Any) -> Any:
        from surveylm.training.config import parse_config

        if self.stage2 is not None:
            cfg = parse_config(self.stage2, context="DSA stage2: ")
        elif hasattr(backend, "fine_tune_config"):  # the encoder's and causal LM's defaults
            cfg = backend.fine_tune_config()
        else:
            cfg = parse_config(backend.fine_tune)
        return cfg

    def fit(self, items: ItemSet) -> DSAModel:
        """Stage 1 (the backend's forward-KL ``fit``), then stage 2 (KL + λ·shift)."""
        from surveylm.training.dsa import train_shift_stage

        train = items.subset(items.has_target)
        if len(train) == 0:
            raise ModelError("no items with a known target to fine-tune on")
        backend = self._make_backend().fit(train)
        parts = backend.training_parts(train)  # the back-end boundary: no private state
        cfg = self._stage2_config(backend).model_copy(
            update={"save_every_epoch": False, "max_forward_batch": None}
        )  # the shift loss pairs the groups of a question within one forward pass
        if not (isinstance(self.stage2, dict) and "seed" in self.stage2):
            cfg = cfg.model_copy(update={"seed": parts.split_seed})
        self.trainable_ = set_stage2_trainable(parts.module, parts.base, self.stage2_top_layers)
        codes = {q: k for k, q in enumerate(train.question_ids)}
        qindex = np.array([codes[q] for q in train.frame["question_id"]])
        # the back end's own inner split (same function, same seed): stage 2 validates on
        # the items stage 1 never trained on
        fit_pos, val_pos = inner_split(train, cfg.validation_fraction, parts.split_seed)
        rows = [parts.dataset[i] for i in range(len(parts.dataset))]
        overrides: dict[str, Any] = {"disable_tqdm": not self.verbose}
        if getattr(backend, "device", None) == "cpu":
            overrides["use_cpu"] = True
        parts.module.train()
        try:
            with scratch_dir("surveylm-dsa-") as tmp:
                out = train_shift_stage(
                    parts.module, [rows[i] for i in fit_pos], parts.collator,
                    qindex[fit_pos].tolist(), cfg, tmp,
                    shift_weight=self.shift_weight, distance=self.distance,
                    per_question=self.per_question, eval_dataset=[rows[i] for i in val_pos],
                    eval_question_index=qindex[val_pos].tolist(), **overrides,
                )  # fmt: skip
        finally:
            parts.module.eval()
            backend.end_training(self.trainable_)
        self.backend_ = backend
        self.stage2_output_ = out
        self.history_ = out.losses
        self.curves_ = out.curves()
        self.stage2_improved_ = out.improved
        if out.improved is False:
            warn_no_gain(f"DSA stage 2 (shift weight {self.shift_weight})",
                         out.best_validation_loss, "stage 1's", out.initial_validation_loss,
                         "the stage-1 (forward-KL) model is kept")  # fmt: skip
        return self

    def predict(self, items: ItemSet) -> Predictions:
        """The fine-tuned backend's predictions (model name ``"dsa"``)."""
        self._check_fitted()
        pred = self.backend_.predict(items)
        return pred.renamed(self.name, stage2_improved=self.stage2_improved_)

    def save(self, directory: str | Path) -> Path:
        """The backend in ``backend/`` and the DSA settings in ``model.json`` (last, atomic)."""

        self._check_fitted()
        directory = Path(directory)
        self.backend_.save(directory / "backend")
        write_training_curves(directory, self.curves_)
        state = {"history": self.history_, "curves": self.curves_,
                 "stage2_improved": self.stage2_improved_}  # fmt: skip
        write_model_json(self, directory, self.get_params(), state)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> DSAModel:
        """Restore a model written by :meth:`save`."""
        from surveylm.models import model_class

        directory = Path(directory)
        model, state = cls._from_saved(directory)
        model.backend_ = model_class(model.backend).load(directory / "backend")
        model.history_ = state.get("history", [])
        model.curves_ = state.get("curves", [])
        model.stage2_improved_ = state.get("stage2_improved")
        return model
