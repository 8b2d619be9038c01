"""Distribution Shift Alignment (DSA; Huang, Li, Shao 2025): the shift loss and its trainer.

DSA fine-tunes in two stages. Stage 1 is the usual forward-KL alignment of each group's
predicted answer distribution ``q_g`` to the observed one ``p_g`` (SubPOP, Suh et al.
2025). Stage 2 additionally aligns how answers *shift between backgrounds*: for two groups
``g`` and ``h`` answering the same question, the predicted shift ``q_g − q_h`` should equal
the observed shift ``p_g − p_h``.

The paper's exact stage-2 loss is not public in code. **This module implements our
reading of it**: the mean, over all pairs of items of one question that meet in a batch,
of a distance between the two shift vectors (:func:`dsa_shift_loss`), added to the forward
KL with a configurable weight λ. Pairs only exist within a batch, so
:class:`QuestionGroupedSampler` orders the training items such that several groups of one
question land in the same batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from surveylm.errors import ConfigError, DistributionError, ModelError
from surveylm.training.config import FineTuneConfig
from surveylm.training.losses import masked_log_softmax
from surveylm.training.trainer import DistributionTrainer, TrainOutput, train_option_model

__all__ = [
    "PAIR_KEY",
    "DSATrainer",
    "QuestionGroupedSampler",
    "ShiftKeyedCollator",
    "ShiftKeyedDataset",
    "dsa_shift_loss",
    "train_shift_stage",
]

#: Batch key holding each row's question (pair) index; removed before the model is called.
PAIR_KEY = "dsa_question"


def dsa_shift_loss(
    option_scores: torch.Tensor,
    targets: torch.Tensor,
    option_mask: torch.Tensor,
    question_index: torch.Tensor | Sequence[int],
    *,
    distance: str = "l1",
) -> torch.Tensor:
    """DSA stage-2 shift loss (our reading of Huang, Li, Shao 2025; the exact loss is not public).

    For every pair of rows ``(i, j)``, ``i < j``, with the same ``question_index`` (two
    groups answering one question), with ``q = softmax(scores)`` over each row's valid
    options and ``p`` the targets::

        d_ij = (q_i − q_j) − (p_i − p_j)
        l1:  ‖d_ij‖₁ = Σ_k |d_ij,k|        l2:  ‖d_ij‖₂² = Σ_k d_ij,k²

    and the loss is the mean over pairs. It is zero exactly when every predicted shift
    equals the target shift (e.g. when ``q = p``, or when all groups of a question are
    off by the same vector). ``l2`` is the *squared* Euclidean distance, which has a
    gradient everywhere. Rows of one question must list their options in the same order.

    Args:
        option_scores: ``[B, K]`` option scores (logits / log-probabilities), padded.
        targets: ``[B, K]`` target distributions (zero on padding).
        option_mask: ``[B, K]`` booleans, true on real options.
        question_index: ``[B]`` integers; rows sharing a value form pairs.
        distance: ``"l1"`` or ``"l2"``.

    Returns:
        A float32 scalar; ``0`` (still attached to the graph) when the batch has no pair.

    Raises:
        DistributionError: mismatched shapes, or rows of one question with different masks.
        ConfigError: an unknown distance.
    """
    if distance not in ("l1", "l2"):
        raise ConfigError(f"DSA shift distance must be 'l1' or 'l2', got {distance!r}")
    if option_scores.dim() != 2 or option_scores.shape != targets.shape:
        raise DistributionError(
            f"option scores {tuple(option_scores.shape)} and targets {tuple(targets.shape)} "
            "must both be [batch, options]"
        )
    if option_mask.shape != option_scores.shape:
        raise DistributionError("the option mask must match the scores")
    idx = torch.as_tensor(question_index, device=option_scores.device).reshape(-1)
    if idx.shape[0] != option_scores.shape[0]:
        raise DistributionError(
            f"{idx.shape[0]} question indices for {option_scores.shape[0]} rows"
        )
    mask = option_mask.to(torch.bool)
    q = masked_log_softmax(option_scores, mask).exp().masked_fill(~mask, 0.0)
    p = targets.to(q.device, torch.float32).masked_fill(~mask, 0.0)
    i, j = torch.triu_indices(len(idx), len(idx), offset=1, device=q.device)
    same = idx[i] == idx[j]
    i, j = i[same], j[same]
    if i.numel() == 0:
        return option_scores.float().sum() * 0.0
    if not bool((mask[i] == mask[j]).all()):
        raise DistributionError("rows of one question must have the same valid options")
    d = (q[i] - q[j]) - (p[i] - p[j])
    per_pair = d.abs().sum(-1) if distance == "l1" else d.pow(2).sum(-1)
    return per_pair.mean()


class QuestionGroupedSampler(torch.utils.data.Sampler[int]):
    """Orders items so that several groups of one question share a batch.

    Each epoch, every question's items are shuffled and cut into chunks of
    ``per_question`` items; the chunks are shuffled and laid end to end. With
    ``per_question`` dividing the batch size most batches hold whole chunks, so each chunk
    yields ``per_question·(per_question−1)/2`` shift pairs.

    Args:
        question_keys: One key per dataset item (items with equal keys form pairs).
        per_question: Items of one question per chunk (≥ 2).
        seed: Base seed; the epoch is added so every epoch has its own order.
    """

    def __init__(self, question_keys: Sequence[Any], per_question: int = 4, seed: int = 0) -> None:
        if per_question < 2:
            raise ConfigError(f"per_question must be at least 2, got {per_question}")
        self.keys = list(question_keys)
        self.per_question = int(per_question)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for this epoch (called by the Trainer / accelerate)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        by_key: dict[Any, list[int]] = {}
        for pos, key in enumerate(self.keys):
            by_key.setdefault(key, []).append(pos)
        chunks = []
        for positions in by_key.values():
            perm = rng.permutation(positions)
            chunks += [
                perm[s : s + self.per_question] for s in range(0, len(perm), self.per_question)
            ]
        for c in rng.permutation(len(chunks)):
            yield from (int(x) for x in chunks[c])


class ShiftKeyedDataset(torch.utils.data.Dataset):
    """Adds each item's question index (:data:`PAIR_KEY`) to the rows of another dataset."""

    def __init__(self, base: Any, question_index: Sequence[int]) -> None:
        if len(base) != len(question_index):
            raise ModelError(f"{len(question_index)} question indices for {len(base)} items")
        self.base = base
        self.question_index = [int(k) for k in question_index]

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**self.base[i], PAIR_KEY: self.question_index[i]}


class ShiftKeyedCollator:
    """Wraps a collator: strips :data:`PAIR_KEY` from the rows and adds it as a tensor."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        keys = [r[PAIR_KEY] for r in rows]
        batch = self.base([{k: v for k, v in r.items() if k != PAIR_KEY} for r in rows])
        batch[PAIR_KEY] = torch.tensor(keys, dtype=torch.long)
        return batch


class DSATrainer(DistributionTrainer):
    """Stage 2 of DSA: forward KL + ``shift_weight`` × :func:`dsa_shift_loss`.

    Only :meth:`compute_loss` (and the loader's order, so pairs meet in batches) differ from
    :class:`~surveylm.training.trainer.DistributionTrainer`.

    Args:
        shift_weight: λ, the weight of the shift term.
        distance: ``"l1"`` or ``"l2"`` (see :func:`dsa_shift_loss`).
        per_question: Items of one question per chunk of the sampler.
        **kwargs: Passed to ``transformers.Trainer``.
    """

    def __init__(
        self,
        *args: Any,
        shift_weight: float = 1.0,
        distance: str = "l1",
        per_question: int = 4,
        shift_history: list[float] | None = None,
        **kwargs: Any,
    ) -> None:
        if distance not in ("l1", "l2"):
            raise ConfigError(f"DSA shift distance must be 'l1' or 'l2', got {distance!r}")
        if shift_weight < 0:
            raise ConfigError(f"shift_weight must be non-negative, got {shift_weight}")
        super().__init__(*args, **kwargs)
        self.shift_weight = float(shift_weight)
        self.distance = distance
        self.per_question = per_question
        self.shift_history: list[float] = [] if shift_history is None else shift_history

    def get_train_dataloader(self) -> torch.utils.data.DataLoader:
        """The Trainer's loader, but ordered by :class:`QuestionGroupedSampler` so that
        groups of one question meet in a batch (``Trainer``'s public hook for a custom
        loader; nothing private is overridden)."""
        keys = getattr(self.train_dataset, "question_index", None)
        if keys is None:
            return super().get_train_dataloader()
        loader = torch.utils.data.DataLoader(
            cast("torch.utils.data.Dataset[Any]", self.train_dataset),  # it has question_index
            batch_size=self.args.train_batch_size,
            sampler=QuestionGroupedSampler(keys, self.per_question, seed=self.args.seed),
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            drop_last=self.args.dataloader_drop_last,
        )
        return self.accelerator.prepare(loader)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Forward KL (as the parent) plus λ times the shift loss of the batch's pairs."""
        inputs = dict(inputs)
        pairs = inputs.pop(PAIR_KEY, None)
        if pairs is None:
            raise ModelError(f"the DSA batch lacks '{PAIR_KEY}' (wrap the collator)")
        kl, outputs = super().compute_loss(model, inputs, return_outputs=True)
        scores = outputs if torch.is_tensor(outputs) else outputs.option_scores
        shift = dsa_shift_loss(
            scores,
            inputs["targets"].to(scores.device),
            inputs["option_mask"].to(scores.device),
            pairs.to(scores.device),
            distance=self.distance,
        )
        if model.training:
            self.shift_history.append(float(shift.detach()))
        loss = kl + self.shift_weight * shift
        return (loss, outputs) if return_outputs else loss


def train_shift_stage(
    module: nn.Module,
    dataset: Any,
    collator: Any,
    question_index: Sequence[int],
    config: FineTuneConfig | dict[str, Any] | None,
    output_dir: str | Path,
    *,
    shift_weight: float = 1.0,
    distance: str = "l1",
    per_question: int = 4,
    eval_dataset: Any = None,
    eval_question_index: Sequence[int] | None = None,
    **training_overrides: Any,
) -> TrainOutput:
    """Run DSA stage 2 on an option scorer through the one training entry point
    (:func:`~surveylm.training.trainer.train_option_model` with :class:`DSATrainer`).

    Args:
        module: The option scorer (its trainable parameters are what stage 2 trains).
        dataset: Per-item dicts as the backend's collator expects.
        collator: The backend's collator.
        question_index: One integer per item; items of one question share it.
        config: Stage-2 fine-tuning settings.
        output_dir: Checkpoint folder.
        shift_weight: λ.
        distance: ``"l1"`` or ``"l2"``.
        per_question: Groups of one question per sampler chunk.
        eval_dataset: Validation items (early stopping on KL + λ·shift, best state kept).
        eval_question_index: Their question indices.
        **training_overrides: Extra ``TrainingArguments`` fields.

    Returns:
        A :class:`TrainOutput`; ``metrics["shift_loss_first"]`` / ``["shift_loss_last"]``
        hold the shift loss of the first and last training batches.
    """
    if len(dataset) == 0:
        raise ModelError("no training items for DSA stage 2")
    history: list[float] = []
    evaluation = None
    if eval_dataset is not None and len(eval_dataset) > 0:
        evaluation = ShiftKeyedDataset(eval_dataset, eval_question_index or [])
    out = train_option_model(
        module, ShiftKeyedDataset(dataset, question_index), ShiftKeyedCollator(collator),
        config, output_dir, eval_dataset=evaluation, trainer_class=DSATrainer,
        trainer_kwargs={"shift_weight": shift_weight, "distance": distance,
                        "per_question": per_question, "shift_history": history},
        **training_overrides,
    )  # fmt: skip
    if history:
        out.metrics["shift_loss_first"] = history[0]
        out.metrics["shift_loss_last"] = history[-1]
    return out
