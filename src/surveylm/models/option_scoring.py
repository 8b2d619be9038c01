"""The torch side of first-token option scoring: the scorer module that reads option
log-probabilities off a causal LM's last position, and the dataset/collator that turn
encoded items (:mod:`surveylm.models.option_tokens`) into its inputs.

The answer is read off the next-token distribution at the end of the prompt (Cao et al.
2025; SubPOP, Suh et al. 2025): one forward pass, logits at the last position only, and
only the rows of the option tokens. No generation.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from surveylm.models.hf_compat import base_model, cache_keyword
from surveylm.models.last_position import contiguous_head
from surveylm.models.option_tokens import EncodedItem

__all__ = ["CausalLMOptionScorer", "OptionCollator", "OptionItemDataset"]

#: Score of an absent token variant: exp(-1e4) is 0 in float32, but it stays finite so
#: that padded entries carry no NaN into gradients.
_ABSENT = -1e4


class CausalLMOptionScorer(nn.Module):
    """Wrap a causal LM so that ``forward`` returns option log-probabilities ``[B, K]``.

    ``scores[b, k] = log Σ_v p(token_v | prompt_b)`` over the token variants of option
    ``k`` at the last position, in float32, normalised over the *whole* vocabulary (so
    ``logsumexp`` over an item's options is the log format mass). Padded options score
    about ``-1e4`` (finite, so no NaN reaches a gradient).
    """

    #: Scores are log-probabilities over the whole vocabulary, so ``-logsumexp`` over the
    #: options is the ``-log`` format mass (:func:`surveylm.training.trainer.format_loss`).
    scores_are_vocabulary_log_probs = True

    #: Read by ``Trainer`` when resuming from a checkpoint that holds only the trainable
    #: parameters (the frozen base weights are "missing" from it, by design).
    _keys_to_ignore_on_save = None

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        params = inspect.signature(base_model(model).forward).parameters
        self._keep_last = "logits_to_keep" in params
        self._positions = "position_ids" in params
        self._cache_keyword = cache_keyword(model)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        option_token_ids: torch.Tensor,
        past_key_values: Any = None,
        option_offsets: torch.Tensor | None = None,
        **_: Any,
    ) -> torch.Tensor:
        """Option log-probabilities at the last (left-padded) position.

        Args:
            input_ids: ``[B, T]`` left-padded prompts.
            attention_mask: ``[B, T]``, 0 on padding; with ``past_key_values`` ``[B, C + T]``
                (the cached positions first).
            option_token_ids: ``[B, K, V]`` token ids of each option's variants, -1 padded.
            past_key_values: A cache of the tokens before ``input_ids``
                (:mod:`surveylm.models.prefix_cache`).
            option_offsets: ``[B, K]`` added to the scores (the marginal start while
                training); ``None`` = the LM's own log-probabilities (and format mass).
        """
        kwargs: dict[str, Any] = {"use_cache": past_key_values is not None}
        if past_key_values is not None:
            if self._cache_keyword is None:
                raise TypeError(f"{type(base_model(self.model)).__name__} takes no key/value cache")
            kwargs[self._cache_keyword] = past_key_values
        if self._positions:  # padding: positions count real tokens only, from 0
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
            kwargs["position_ids"] = positions[:, -input_ids.shape[1] :]
        if self._keep_last:
            kwargs["logits_to_keep"] = 1
        with contiguous_head(self.model):  # one matrix product for the head, not a bmm
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        logits = out.logits[:, -1, :].float()
        log_norm = torch.logsumexp(logits, dim=-1, keepdim=True)  # [B, 1]
        b, k, v = option_token_ids.shape
        valid = option_token_ids >= 0
        picked = logits.gather(1, option_token_ids.clamp(min=0).reshape(b, k * v)).reshape(b, k, v)
        picked = picked.masked_fill(~valid, _ABSENT)
        scores = torch.logsumexp(picked, dim=-1) - log_norm
        if option_offsets is not None:
            scores = scores + option_offsets.to(scores.dtype)
        return scores


class OptionItemDataset(torch.utils.data.Dataset):
    """A plain ``Dataset`` of dicts over encoded items (for ``transformers.Trainer``)."""

    def __init__(self, encoded: Sequence[EncodedItem]) -> None:
        self.encoded = list(encoded)

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> dict[str, Any]:
        e = self.encoded[i]
        row: dict[str, Any] = {"input_ids": e.input_ids, "option_token_ids": e.option_ids}
        if e.target is not None:
            row["targets"] = e.target
        if e.offset is not None:
            row["option_offsets"] = e.offset
        return row


@dataclass
class OptionCollator:
    """Left-pad prompts and pad options: ``input_ids``, ``attention_mask``,
    ``option_token_ids`` ``[B, K, V]`` (-1 padded), ``option_mask`` ``[B, K]`` and, when
    the rows have them, ``targets`` and ``option_offsets`` ``[B, K]`` (0 padded).

    Left padding puts every prompt's last token at the last position, so one slice reads
    all answers.
    """

    pad_token_id: int

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        b = len(rows)
        t = max(len(r["input_ids"]) for r in rows)
        k = max(len(r["option_token_ids"]) for r in rows)
        v = max(len(ids) for r in rows for ids in r["option_token_ids"])
        input_ids = torch.full((b, t), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((b, t), dtype=torch.long)
        options = torch.full((b, k, v), -1, dtype=torch.long)
        mask = torch.zeros((b, k), dtype=torch.bool)
        for j, r in enumerate(rows):
            n = len(r["input_ids"])
            input_ids[j, t - n :] = torch.as_tensor(r["input_ids"], dtype=torch.long)
            attention[j, t - n :] = 1
            for kk, ids in enumerate(r["option_token_ids"]):
                options[j, kk, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            mask[j, : len(r["option_token_ids"])] = True
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention,
            "option_token_ids": options,
            "option_mask": mask,
        }
        for key in ("targets", "option_offsets"):
            if rows and all(key in r for r in rows):
                values = torch.zeros((b, k), dtype=torch.float32)
                for j, r in enumerate(rows):
                    values[j, : len(r[key])] = torch.as_tensor(r[key], dtype=torch.float32)
                batch[key] = values
        return batch
