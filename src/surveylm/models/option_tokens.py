"""Option token ids and prompt encoding for first-token scoring with a causal LM.

Torch-free: this module needs a tokenizer and nothing else, so that a back end other than
transformers (vLLM, llama.cpp) can reuse the same ids and prompts. The torch side (the
scorer module, the dataset and collator) is :mod:`surveylm.models.option_scoring`.

The answer is read off the next-token distribution at the end of the prompt, which ends
where the option letter comes (Cao et al. 2025; SubPOP, Suh et al. 2025): one forward
pass, logits at the last position only, and only the rows of the option tokens. No
generation. For each letter the variants with and without a leading space are both
looked up and their probabilities summed (SubPOP's inference); the probability mass on
all option tokens before renormalising is the *format mass* (DESIGN.md, "Reading an
answer off a causal LM").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from surveylm.errors import DataError, ModelError, where
from surveylm.items import feature_labels
from surveylm.prompts import PromptFormat, apply_chat_template, option_labels, render_prompt

__all__ = [
    "EncodedItem",
    "encode_items",
    "option_token_ids",
    "prompt_option_ids",
]


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


@dataclass
class EncodedItem:
    """One (item, option order) prompt ready for the scorer."""

    index: int
    order: np.ndarray
    input_ids: list[int]
    option_ids: list[list[int]]
    target: np.ndarray | None
    #: Added to the option scores (in ``order``) before the softmax: the causal LM's
    #: marginal start (:class:`~surveylm.models.causal_lm.CausalLMAnswerModel`).
    offset: np.ndarray | None = None


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
    labels_of = feature_labels(items)
    for i, q in enumerate(questions):
        for order in orders[i] if orders is not None else [np.arange(q.n_options)]:
            text = render_prompt(q, contexts[i], formats[i], order, questions=items.questions,
                                 labels=labels_of)  # fmt: skip
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
