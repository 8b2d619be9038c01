"""Shared-prefix reuse at predict time: the keys and values of a prefix that several
prompts share are computed once and reused (prefix caching, as in vLLM's automatic
prefix caching and SGLang's RadixAttention, Zheng et al. 2024).

Survey prompts share a lot: the same instructions, the same group context, the same
first profile lines. Prompts sorted lexicographically by token ids put common prefixes
next to each other; :func:`partition` cuts the sorted prompts into runs of neighbours
(dynamic programming on the tokens computed), and :func:`plan_batch` makes each run a
two-level prefix tree: the prefix the whole run shares, and per *group* of neighbours
that share more, the group's extra tokens (its segment). :func:`run_plans` then runs
a window of trees:

1. all trees' shared prefixes in one call (decoder only, ``use_cache=True``);
2. all groups' segments in one call, each after its tree's cache rows;
3. the rest of every prompt, sorted by length (least padding) in batches, each prompt
   after its group's cache row, through the usual scorer.

Rows of different lengths are left-padded *inside* their stage: the attention mask is
the prefix mask, then the segment mask, then the prompt mask, and the position ids
count real tokens only (``cumsum(mask) - 1``), so every real token sees exactly the
tokens of its own prompt at the positions it has in the plain forward, and every prompt
ends at the last position, where the answer is read (so
:mod:`surveylm.models.last_position` works unchanged). The numbers equal the plain
forward's up to float rounding. The model class must accept a cache (``cache`` in
transformers 5, ``past_key_values`` in 4) and ``position_ids`` and use a cache with
``layers`` and ``batch_select_indices`` (transformers' ``DynamicCache``);
:func:`prefix_is_exact` checks a model once against the plain forward (a
sliding-window cache, say, would differ) so that callers can fall back.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from surveylm.models.hf_compat import base_model, cache_keyword, output_cache
from surveylm.models.last_position import scores_agree

if TYPE_CHECKING:  # pragma: no cover
    from surveylm.models.option_scoring import CausalLMOptionScorer

__all__ = [
    "PrefixPlan",
    "accepts_prefix_cache",
    "partition",
    "plan_batch",
    "positions_run",
    "prefix_is_exact",
    "run_plans",
]


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Number of leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass
class PrefixPlan:
    """One batch as a two-level prefix tree (see module docstring).

    ``prefix`` is shared by every prompt, ``segments[g]`` follows it in every prompt of
    group ``g`` (possibly empty), ``group[i]`` is prompt ``i``'s group and
    ``suffixes[i]`` the rest of prompt ``i`` (at least one token).
    """

    prefix: list[int]
    segments: list[list[int]]
    group: list[int]
    suffixes: list[list[int]]

    @property
    def tokens_run(self) -> int:
        """Real tokens the plan feeds through the model."""
        return len(self.prefix) + sum(map(len, self.segments)) + sum(map(len, self.suffixes))


def _tree(
    lengths: Sequence[int], pairs: Sequence[int], min_prefix: int, min_segment: int
) -> tuple[int, list[int], list[int]] | None:
    """The shape of a batch's two-level tree from its prompt lengths and the common
    prefix lengths of neighbours: ``(shared prefix length, group bounds, group prefix
    lengths)``, or ``None`` when the batch shares fewer than ``min_prefix`` tokens."""
    if len(lengths) < 2:
        return None
    p = min(min(pairs), min(lengths) - 1)  # every prompt keeps a token to read the answer at
    if p < min_prefix:
        return None
    bounds = [0] + [i + 1 for i, n in enumerate(pairs) if n - p < min_segment] + [len(lengths)]
    qs = []
    for lo, hi in pairwise(bounds):
        qs.append(p if hi - lo == 1 else min(min(pairs[lo : hi - 1]), min(lengths[lo:hi]) - 1))
    return p, bounds, qs


def plan_batch(
    seqs: Sequence[Sequence[int]], *, min_prefix: int = 16, min_segment: int = 8
) -> PrefixPlan | None:
    """Plan a batch of prompts, best sorted lexicographically so that prompts sharing
    more are neighbours.

    Neighbours whose common prefix exceeds the batch's by at least ``min_segment``
    tokens form a group. Returns ``None`` when the batch shares fewer than
    ``min_prefix`` tokens (or has one prompt): then the plain forward is cheaper.
    """
    pairs = [common_prefix_length(a, b) for a, b in pairwise(seqs)]
    tree = _tree([len(s) for s in seqs], pairs, min_prefix, min_segment)
    if tree is None:
        return None
    p, bounds, qs = tree
    segments, group, suffixes = [], [], []
    for g, ((lo, hi), q) in enumerate(zip(pairwise(bounds), qs, strict=True)):
        segments.append(list(seqs[lo][p:q]))
        for s in seqs[lo:hi]:
            group.append(g)
            suffixes.append(list(s[q:]))
    return PrefixPlan(list(seqs[0][:p]), segments, group, suffixes)


def partition(
    seqs: Sequence[Sequence[int]],
    *,
    max_rows: int,
    min_prefix: int = 16,
    min_segment: int = 8,
    plan_cost: int = 16,
) -> list[tuple[int, int, bool]]:
    """Split prompts sorted lexicographically into runs ``(start, stop, shared)`` of at
    most ``max_rows`` prompts that minimise the tokens computed; ``shared`` says whether
    the run is a prefix tree (:func:`plan_batch`, costing its tree's tokens plus
    ``plan_cost`` for the padding it adds to the prefix stages) or plain prompts (their
    tokens). Dynamic programming over run ends: boundaries fall where the shared
    prefixes change."""
    n = len(seqs)
    lengths = [len(s) for s in seqs]
    pairs = [common_prefix_length(a, b) for a, b in pairwise(seqs)]
    best = [0.0] + [float("inf")] * n
    choice: list[tuple[int, bool]] = [(0, False)] * (n + 1)
    for j in range(1, n + 1):
        for i in range(max(0, j - max_rows), j):
            cost = sum(lengths[i:j])
            shared = False
            tree = _tree(lengths[i:j], pairs[i : j - 1], min_prefix, min_segment)
            if tree is not None:
                p, bounds, qs = tree
                segment = max(q - p for q in qs)
                shared_tokens = sum((hi - lo) * q for (lo, hi), q in zip(pairwise(bounds), qs,
                                                                         strict=True))  # fmt: skip
                tree_cost = plan_cost + p + len(qs) * segment + cost - shared_tokens
                if tree_cost < cost:
                    cost, shared = tree_cost, True
            if best[i] + cost < best[j]:
                best[j], choice[j] = best[i] + cost, (i, shared)
    out = []
    j = n
    while j > 0:
        i, shared = choice[j]
        out.append((i, j, shared))
        j = i
    return out[::-1]


def _left_pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, r in enumerate(rows):
        if r:
            ids[j, width - len(r) :] = torch.as_tensor(r, dtype=torch.long)
            mask[j, width - len(r) :] = 1
    return ids, mask


def accepts_prefix_cache(model: nn.Module) -> bool:
    """Whether the model's forward takes a key/value cache (``cache`` or
    ``past_key_values``, :func:`~surveylm.models.hf_compat.cache_keyword`) and
    ``position_ids``."""
    params = inspect.signature(base_model(model).forward).parameters
    return cache_keyword(model) is not None and "position_ids" in params


def _decoder(model: nn.Module) -> nn.Module:
    """The model without its LM head (a peft model's adapters stay injected in it): the
    prefix stages need keys and values, not logits."""
    base = base_model(model)
    return base.get_decoder() if hasattr(base, "get_decoder") else base


def _extend(decoder: nn.Module, ids: torch.Tensor, mask: torch.Tensor, cache: Any) -> Any:
    """Run ``ids`` after the cached tokens; returns the grown cache."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1] :]
    keyword = cache_keyword(decoder) or "past_key_values"
    out = decoder(input_ids=ids, attention_mask=mask, position_ids=positions,
                  use_cache=True, **{keyword: cache})  # fmt: skip
    return output_cache(out)


def _select(cache: Any, rows: torch.Tensor) -> Any:
    """A cache holding the given batch rows of ``cache`` (left as it is): shallow copies
    of the cache and its layers, whose ``batch_select_indices`` rebinds new tensors."""
    out = copy.copy(cache)
    out.layers = [copy.copy(layer) for layer in cache.layers]
    out.batch_select_indices(rows)
    return out


def _stack_options(options: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-prompt option token ids ``[K_i, V_i]`` as one ``[N, K, V]`` tensor, -1 padded."""
    k = max(o.shape[0] for o in options)
    v = max(o.shape[1] for o in options)
    out = torch.full((len(options), k, v), -1, dtype=torch.long, device=options[0].device)
    for j, o in enumerate(options):
        out[j, : o.shape[0], : o.shape[1]] = o
    return out


def positions_run(plans: Sequence[PrefixPlan], batch_size: int) -> int:
    """Positions :func:`run_plans` computes for ``plans``, padding included."""
    positions = len(plans) * max(len(p.prefix) for p in plans)
    segments = [len(s) for p in plans for s in p.segments]
    positions += len(segments) * max(segments)
    suffixes = sorted((len(s) for p in plans for s in p.suffixes), reverse=True)
    return positions + sum(suffixes[s] * len(suffixes[s : s + batch_size])
                           for s in range(0, len(suffixes), batch_size))  # fmt: skip


def run_plans(
    scorer: CausalLMOptionScorer,
    plans: Sequence[PrefixPlan],
    option_token_ids: Sequence[torch.Tensor],
    pad_id: int,
    batch_size: int,
) -> list[torch.Tensor]:
    """Option log-probabilities ``[B, K]`` of each plan's prompts, in their order, from a
    :class:`~surveylm.models.option_scoring.CausalLMOptionScorer`
    (``option_token_ids[b]`` is plan ``b``'s ``[B, K, V]``).

    The plans' shared prefixes run in one call and all their groups' segments in one
    call (without the LM head), so that short prefixes still make large matrix
    products; then the suffixes of all plans, sorted by length (least padding) in
    batches of ``batch_size``, each with the cache rows of its group.
    """
    decoder = _decoder(scorer.model)
    device = option_token_ids[0].device
    ids, mask = (t.to(device) for t in _left_pad([p.prefix for p in plans], pad_id))
    cache = _extend(decoder, ids, mask, None)
    owner = torch.as_tensor([b for b, p in enumerate(plans) for _ in p.segments], device=device)
    cache.batch_select_indices(owner)  # one cache row per group
    mask = mask[owner]
    segments = [s for p in plans for s in p.segments]
    if any(segments):
        ids, seg_mask = (t.to(device) for t in _left_pad(segments, pad_id))
        mask = torch.cat([mask, seg_mask], dim=1)
        cache = _extend(decoder, ids, mask, cache)
    rows = []  # (plan, prompt in plan, cache row)
    first = 0
    for b, plan in enumerate(plans):
        rows += [(b, i, first + g) for i, g in enumerate(plan.group)]
        first += len(plan.segments)
    rows.sort(key=lambda r: -len(plans[r[0]].suffixes[r[1]]))
    out = [torch.empty(0)] * len(plans)
    for s in range(0, len(rows), batch_size):
        chunk = rows[s : s + batch_size]
        ids, suffix_mask = (
            t.to(device) for t in _left_pad([plans[b].suffixes[i] for b, i, _ in chunk], pad_id)
        )
        index = torch.as_tensor([c for _, _, c in chunk], dtype=torch.long, device=device)
        options = _stack_options([option_token_ids[b][i] for b, i, _ in chunk])
        scores = scorer(ids, torch.cat([mask[index], suffix_mask], dim=1), options,
                        past_key_values=_select(cache, index))  # fmt: skip
        for (b, i, _), row in zip(chunk, scores, strict=True):
            if out[b].numel() == 0:
                out[b] = torch.empty(option_token_ids[b].shape[:2], dtype=row.dtype, device=device)
            out[b][i] = row[: option_token_ids[b].shape[1]]
    return out


def prefix_is_exact(
    plain: Callable[[], torch.Tensor], shared: Callable[[], torch.Tensor], *, dtype: torch.dtype
) -> bool:
    """Whether the shared-prefix scores ``shared()`` equal the plain forward's ``plain()``
    on real prompts (tolerance as :func:`~surveylm.models.last_position.scores_agree`); a
    shared-prefix forward that raises counts as not exact."""
    reference = plain()
    try:
        other = shared()
    except (RuntimeError, ValueError, IndexError, TypeError, AttributeError):
        return False
    return scores_agree(other, reference, dtype=dtype)
