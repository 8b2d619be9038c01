"""First-token option scoring with a causal LM: option token ids, the scorer module, and
the dataset/collator that turn items into its inputs.

The answer is read off the next-token distribution at the end of the prompt, which ends
where the option letter comes (Cao et al. 2025; SubPOP, Suh et al. 2025): one forward
pass, logits at the last position only, and only the rows of the option tokens. No
generation. For each letter the variants with and without a leading space are both
looked up and their probabilities summed (SubPOP's inference); the probability mass on
all option tokens before renormalising is the *format mass* (DESIGN.md, "Reading an
answer off a causal LM").
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from surveylm.errors import DataError, ModelError, where
from surveylm.models.hf_compat import base_model, cache_keyword
from surveylm.models.last_position import contiguous_head
from surveylm.prompts import PromptFormat, apply_chat_template, option_labels, render_prompt

__all__ = [
    "CausalLMOptionScorer",
    "OptionCollator",
    "OptionItemDataset",
    "encode_items",
    "option_token_ids",
    "prompt_option_ids",
]

#: Score of an absent token variant: exp(-1e4) is 0 in float32, but it stays finite so
#: that padded entries carry no NaN into gradients.
_ABSENT = -1e4


def _single(enc: Sequence[int]) -> int | None:
    return int(enc[0]) if len(enc) == 1 else None


def _variants(label: str) -> tuple[str, str]:
    return label, " " + label


def option_token_ids(
    tokenizer: Any,
    labels: Sequence[str],
    *,
    question: str | None = None,
    prompt: str | None = None,
    first_token: bool = False,
) -> list[list[int]]:
    """Token ids of each option label, with and without a leading space.

    A label's ids are read two ways, and all that are found count (deduplicated):

    * *in context* (with ``prompt``): the token that follows the prompt's own tokens in
      the encoding of ``prompt + label`` and of ``prompt + " " + label``. This is what
      the model sees: a SentencePiece tokenizer encodes ``"A"`` alone as ``▁A`` (its
      dummy prefix) and ``" A"`` alone as two tokens (Phi-3), while ``"Answer:A"`` ends
      in ``A`` and ``"Answer: A"`` in one ``▁A``. A variant counts only when the prompt's
      tokens are a prefix of the longer encoding and (for letters) exactly one token
      follows;
    * *alone* (letters only): ``label`` and ``" " + label`` encoded on their own, where
      that is one token (SubPOP's inference, Suh et al. 2025; e.g. Llama 3's ``A`` after
      ``Answer:``, which its tokenizer would merge into ``:A``). Without ``prompt`` this
      is the only way, also for ``first_token`` labels.

    Args:
        tokenizer: A Hugging Face tokenizer.
        labels: Option labels (``A``, ``B``, ... or ``1``, ``2``, ...), or the options'
            own texts with ``first_token``.
        question: Question id, named in errors.
        prompt: The text (chat template applied, if any) the label follows.
        first_token: Labels are option texts read by their first token (the GLES
            classification set-up of Holtdirk et al. 2025), not single-token letters.

    Returns:
        ``ids[k]`` = the token ids of label ``k``'s variants.

    Raises:
        ModelError: a label with no single-token variant, or two labels sharing a token —
            either would make the option probabilities meaningless.
    """
    if prompt is not None:
        return prompt_option_ids(
            tokenizer, [prompt], [list(labels)], first_token=[first_token], questions=[question]
        )[0]
    found = [_alone_ids(tokenizer, lab, first_token) for lab in labels]
    return _check_ids(tokenizer, labels, found, question, first_token)


def _alone_ids(tokenizer: Any, label: str, first_token: bool) -> list[int]:
    out = []
    for text in _variants(label):
        enc = tokenizer.encode(text, add_special_tokens=False)
        tid = (int(enc[0]) if enc else None) if first_token else _single(enc)
        if tid is not None and tid not in out:
            out.append(tid)
    return out


def _check_ids(
    tokenizer: Any, labels: Sequence[str], found: list[list[int]], question: str | None,
    first_token: bool,
) -> list[list[int]]:  # fmt: skip
    """Refuse a label without ids, and two labels sharing one."""
    owner: dict[int, str] = {}
    for label, ids in zip(labels, found, strict=True):
        if not ids:
            pieces = [
                tokenizer.convert_ids_to_tokens(tokenizer.encode(t, add_special_tokens=False))
                for t in _variants(label)
            ]
            raise ModelError(
                f"{where(question=question)}option label {label!r} is not a single token for "
                f"this tokenizer (it encodes as {pieces[0]} and {label!r} with a leading space "
                f"as {pieces[1]}, also after the prompt); first-token scoring cannot read it"
            )
        for tid in ids:
            if tid in owner and owner[tid] != label:
                what = "option labels" if not first_token else "options"
                fix = "" if not first_token else "; use a lettered prompt format instead"
                raise ModelError(
                    f"{where(question=question)}{what} {owner[tid]!r} and {label!r} map "
                    f"to the same token {tokenizer.convert_ids_to_tokens(tid)!r} (id {tid}); "
                    f"their probabilities cannot be told apart{fix}"
                )
            owner[tid] = label
    return [list(ids) for ids in found]


#: Prompts whose label encodings are computed in one tokenizer call (bounds memory).
_ID_CHUNK = 256


def prompt_option_ids(
    tokenizer: Any,
    prompts: Sequence[str],
    labels: Sequence[Sequence[str]],
    *,
    first_token: Sequence[bool] | None = None,
    questions: Sequence[str | None] | None = None,
) -> list[list[list[int]]]:
    """:func:`option_token_ids` for many prompts at once (batched tokenizer calls).

    ``labels[i]`` are prompt ``i``'s labels in the order shown; returns ``ids[i][k]``.
    """
    n = len(prompts)
    first = list(first_token) if first_token is not None else [False] * n
    qids = list(questions) if questions is not None else [None] * n
    alone: dict[str, list[int]] = {}
    out: list[list[list[int]]] = []
    for lo in range(0, n, _ID_CHUNK):
        hi = min(n, lo + _ID_CHUNK)
        base = tokenizer(list(prompts[lo:hi]), add_special_tokens=False)["input_ids"]
        texts = [prompts[i] + v for i in range(lo, hi) for lab in labels[i] for v in _variants(lab)]
        ext = iter(tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else [])
        for i, prefix in zip(range(lo, hi), base, strict=True):
            found = []
            for lab in labels[i]:
                ids: list[int] = []
                for _ in range(2):
                    enc = next(ext)
                    tail = enc[len(prefix) :]
                    ok = enc[: len(prefix)] == prefix and (
                        len(tail) >= 1 if first[i] else len(tail) == 1
                    )
                    if ok and int(tail[0]) not in ids:
                        ids.append(int(tail[0]))
                if not first[i]:  # an option text's first token alone can be a bare "▁"
                    if lab not in alone:
                        alone[lab] = _alone_ids(tokenizer, lab, False)
                    ids += [t for t in alone[lab] if t not in ids]
                found.append(ids)
            out.append(_check_ids(tokenizer, labels[i], found, qids[i], first[i]))
    return out


class CausalLMOptionScorer(nn.Module):
    """Wrap a causal LM so that ``forward`` returns option log-probabilities ``[B, K]``.

    ``scores[b, k] = log Σ_v p(token_v | prompt_b)`` over the token variants of option
    ``k`` at the last position, in float32, normalised over the *whole* vocabulary (so
    ``logsumexp`` over an item's options is the log format mass). Padded options score
    about ``-1e4`` (finite, so no NaN reaches a gradient).
    """

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
        return torch.logsumexp(picked, dim=-1) - log_norm


@dataclass
class EncodedItem:
    """One (item, option order) prompt ready for the scorer."""

    index: int
    order: np.ndarray
    input_ids: list[int]
    option_ids: list[list[int]]
    target: np.ndarray | None


def encode_items(
    items: Any,
    tokenizer: Any,
    fmt: PromptFormat | Sequence[PromptFormat],
    *,
    chat: bool,
    orders: Sequence[Sequence[np.ndarray]] | None = None,
    max_length: int | None = None,
    system: str | None = None,
) -> list[EncodedItem]:
    """Render and tokenize every item (in each of its option orders).

    Args:
        items: The :class:`~surveylm.items.ItemSet`.
        tokenizer: The model's tokenizer.
        fmt: Prompt format, or one per item.
        chat: Wrap prompts in the chat template (with the generation prompt).
        orders: ``orders[i]`` = the option orders of item ``i`` (default codebook order).
        max_length: Longest prompt allowed, in tokens.
        system: System message for chat models.

    Raises:
        DataError: a prompt longer than ``max_length``.
        ModelError: option labels the tokenizer cannot score (see :func:`option_token_ids`).
    """
    questions = items.item_questions()
    contexts = items.contexts
    targets = items.targets
    texts: list[str] = []
    labels: list[list[str]] = []
    meta: list[tuple[int, np.ndarray, bool]] = []
    formats = [fmt] * len(questions) if isinstance(fmt, PromptFormat) else list(fmt)
    for i, q in enumerate(questions):
        for order in orders[i] if orders is not None else [np.arange(q.n_options)]:
            text = render_prompt(q, contexts[i], formats[i], order, questions=items.questions)
            texts.append(apply_chat_template(tokenizer, text, system=system) if chat else text)
            labels.append(option_labels(q, formats[i], order))
            meta.append((i, np.asarray(order), formats[i].labels == "options"))
    option_ids = prompt_option_ids(
        tokenizer, texts, labels, first_token=[m[2] for m in meta],
        questions=[questions[m[0]].id for m in meta],
    )  # fmt: skip
    ids = tokenizer(texts, add_special_tokens=not chat)["input_ids"] if texts else []
    out = []
    for (i, order, _), opt_ids, input_ids in zip(meta, option_ids, ids, strict=True):
        if max_length is not None and len(input_ids) > max_length:
            raise DataError(
                f"{where(item=items.item_ids[i])}prompt has {len(input_ids)} tokens, more than "
                f"max_length={max_length}; shorten the context or raise max_length"
            )
        target = targets[i]
        out.append(EncodedItem(
            i, order, list(input_ids), opt_ids,
            None if target is None else np.asarray(target, dtype=np.float64)[order],
        ))  # fmt: skip
    return out


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
        return row


@dataclass
class OptionCollator:
    """Left-pad prompts and pad options: ``input_ids``, ``attention_mask``,
    ``option_token_ids`` ``[B, K, V]`` (-1 padded), ``option_mask`` ``[B, K]`` and, when
    the rows have them, ``targets`` ``[B, K]``.

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
        if all("targets" in r for r in rows):
            targets = torch.zeros((b, k), dtype=torch.float32)
            for j, r in enumerate(rows):
                targets[j, : len(r["targets"])] = torch.as_tensor(r["targets"], dtype=torch.float32)
            batch["targets"] = targets
        return batch
