"""DSA answer model: forward-KL fine-tuning, then shift alignment (Huang, Li, Shao 2025).

Stage 1 fine-tunes a backend (the sentence ``"encoder"`` or a ``"causal-lm"``) with the
forward KL to each group's answer distribution, exactly as the backend's own ``fit``.
Stage 2 continues from there with forward KL + λ × the shift loss of
:func:`surveylm.training.dsa.dsa_shift_loss` (our reading of DSA; the paper's exact loss
is not public), optionally training only the top transformer layers, with batches that
hold several groups of one question. Prediction is the backend's.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from surveylm.errors import ConfigError, ModelError, where
from surveylm.items import ItemSet
from surveylm.models.base import AnswerModel, Predictions, read_model_json, write_model_json

__all__ = ["DSAModel", "set_stage2_trainable"]

_BACKENDS = ("encoder", "causal-lm")


def set_stage2_trainable(module: Any, base: Any, top_layers: int | None) -> list[str]:
    """Choose what stage 2 trains; returns the trainable parameter names of ``module``.

    With LoRA adapters in ``base`` only adapter weights train, otherwise all weights; with
    ``top_layers`` only those in the top ``top_layers`` transformer layers of ``base``
    (the encoder's temperature then stays fixed too).
    """
    from surveylm.training.trainer import TEMPERATURE_PARAM, find_layer_list

    lora = any("lora_" in n for n, _ in base.named_parameters())
    module.requires_grad_(False)
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
            stage 1 trained).
        per_question: Groups of one question placed together in a batch.
        progress: Show the Trainer's progress bar.
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
        progress: bool = False,
    ) -> None:
        self.backend = backend
        self.backend_params = backend_params
        self.shift_weight = shift_weight
        self.distance = distance
        self.stage2 = stage2
        self.stage2_top_layers = stage2_top_layers
        self.per_question = per_question
        self.progress = progress

    def _make_backend(self) -> Any:
        if self.backend not in _BACKENDS:
            raise ConfigError(f"DSA backend must be one of {list(_BACKENDS)}, got {self.backend!r}")
        from surveylm.models import make_model

        params = dict(self.backend_params or {})
        if self.backend == "encoder":
            params.setdefault("progress", self.progress)
        return make_model(self.backend, **params)

    def _stage2_config(self, backend: Any) -> Any:
        from surveylm.training.config import parse_config

        if self.stage2 is not None:
            return parse_config(self.stage2, context="DSA stage2: ")
        if self.backend == "encoder":
            return backend.fine_tune_config()
        return parse_config(backend.fine_tune)

    def fit(self, items: ItemSet) -> DSAModel:
        """Stage 1 (the backend's forward-KL ``fit``), then stage 2 (KL + λ·shift)."""
        from surveylm.training.dsa import train_shift_stage

        train = items.subset(items.has_target)
        if len(train) == 0:
            raise ModelError("no items with a known target to fine-tune on")
        backend = self._make_backend().fit(train)
        cfg = self._stage2_config(backend).model_copy(update={"save_every_epoch": False})
        module, base, dataset, collator = self._stage2_parts(backend, train)
        self.trainable_ = set_stage2_trainable(module, base, self.stage2_top_layers)
        codes = {q: k for k, q in enumerate(train.question_ids)}
        qindex = [codes[q] for q in train.frame["question_id"]]
        overrides: dict[str, Any] = {"disable_tqdm": not self.progress}
        if getattr(backend, "device", None) == "cpu":
            overrides["use_cpu"] = True
        module.train()
        try:
            with tempfile.TemporaryDirectory(prefix="surveylm-dsa-") as tmp:
                out = train_shift_stage(
                    module, dataset, collator, qindex, cfg, tmp,
                    shift_weight=self.shift_weight, distance=self.distance,
                    per_question=self.per_question, **overrides,
                )  # fmt: skip
        finally:
            module.eval()
            if self.backend == "causal-lm":
                backend._trained_names = list(self.trainable_) if not backend._trained_names \
                    else backend._trained_names  # fmt: skip
                backend._lm.requires_grad_(False).eval()
            else:
                backend._option_cache = {}
        self.backend_ = backend
        self.stage2_output_ = out
        self.history_ = out.losses
        return self

    def _stage2_parts(self, backend: Any, train: ItemSet) -> tuple[Any, Any, Any, Any]:
        """(module, base transformer, dataset, collator) of the backend for stage 2."""
        if self.backend == "encoder":
            from surveylm.models.encoder import _Collator, _ItemDataset

            scorer = backend._scorer
            option_ids = {
                q: backend._tokenize(backend._option_texts(train, q)) for q in train.question_ids
            }
            collator = _Collator(option_ids, backend._tokenizer.pad_token_id or 0)
            return scorer, scorer.encoder, _ItemDataset(backend._rows(train)), collator
        from surveylm.models.option_tokens import (
            CausalLMOptionScorer,
            OptionCollator,
            OptionItemDataset,
        )

        lm = backend._lm
        dataset = OptionItemDataset(backend._encode(train, 1))  # codebook order: shifts align
        return CausalLMOptionScorer(lm), lm, dataset, OptionCollator(backend._pad)

    def predict(self, items: ItemSet) -> Predictions:
        """The fine-tuned backend's predictions (model name ``"dsa"``)."""
        self._check_fitted()
        if self.backend == "causal-lm":
            pred = self.backend_.predict(items, show_progress=self.progress)
        else:
            pred = self.backend_.predict(items)
        return Predictions(
            pred.item_ids,
            [np.asarray(d) for d in pred.distributions],
            self.name,
            pred.format_mass,
        )

    def save(self, directory: str | Path) -> Path:
        """The backend in ``backend/`` and the DSA settings in ``model.json`` (last, atomic)."""

        self._check_fitted()
        directory = Path(directory)
        self.backend_.save(directory / "backend")
        write_model_json(self, directory, self.get_params(), {"history": self.history_})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> DSAModel:
        """Restore a model written by :meth:`save`."""
        from surveylm.models import model_class

        directory = Path(directory)
        payload = read_model_json(directory)
        try:
            model = cls(**payload["params"])
        except TypeError as exc:
            path = directory / "model.json"
            raise ModelError(f"{where(file=path)}not a saved DSA model ({exc})") from None
        model.backend_ = model_class(model.backend).load(directory / "backend")
        model.history_ = payload["state"].get("history", [])
        return model
