"""Compute only what the last position needs: the top layer's output projection and
feed-forward block at the last token, and a contiguous input for the LM head.

First-token option scoring reads one position per prompt (Cao et al. 2025; SubPOP, Suh et
al. 2025). Every layer but the top one must run at every position, because later
positions attend to their keys and values; the top layer's keys and values are needed
too, but its attention output projection and its feed-forward block only matter at the
last position — the same observation behind ``logits_to_keep=1`` for the LM head, pushed
one layer down. For the hidden sizes of small and mid-sized models the feed-forward block
is about two thirds of a layer's weights, so a model with L layers saves close to 1/L of
the per-token work.

The trim works with forward pre-hooks, so no model code is copied: a pre-hook on the top
layer's attention output projection (``o_proj``, ``out_proj``, ``dense`` or ``c_proj``)
and on its feed-forward block (``mlp``, ``feed_forward``, ``block_sparse_moe`` or
``ffn``) slices the input to the last position. The residual additions then broadcast
``[B, 1, H]`` against ``[B, T, H]``: the last position is exact, the others hold values
nobody reads (the final norm is per position and the LM head reads the last one). Where a
model's top layer does something that is not per position after those modules, the
numbers would change — so :class:`LastPositionTrim` is checked once per model against the
plain forward on real prompts and falls back to the plain forward when the two differ or
the trimmed forward fails (see :func:`trim_is_exact`).

A second, independent fix: with ``logits_to_keep=1`` Hugging Face models pass
``hidden[:, -1:, :]`` (a non-contiguous view) to the LM head, and ``torch.matmul`` then runs
a batched matmul against the head weight expanded per row instead of one matrix product —
on CPU about eight times slower for a 32k vocabulary. :func:`contiguous_head` makes that
input contiguous (a copy of B × H numbers); the numbers are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

__all__ = ["LastPositionTrim", "contiguous_head", "scores_agree", "trim_is_exact"]

#: Names of the top layer's feed-forward block, in the model families we know.
FEED_FORWARD_NAMES = ("mlp", "feed_forward", "block_sparse_moe", "ffn")
#: Names of an attention module's output projection.
OUTPUT_PROJECTION_NAMES = ("o_proj", "out_proj", "dense", "c_proj")
#: Names of a decoder layer's self-attention module.
ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention")


def _last_position_pre_hook(_module: nn.Module, args: tuple[Any, ...], kwargs: dict) -> Any:
    """Slice the first input (positional or ``hidden_states=``) to the last position."""
    if args and torch.is_tensor(args[0]):
        x = args[0]
        if x.dim() == 3 and x.shape[1] > 1:
            return (x[:, -1:, :], *args[1:]), kwargs
    elif torch.is_tensor(kwargs.get("hidden_states")):
        x = kwargs["hidden_states"]
        if x.dim() == 3 and x.shape[1] > 1:
            return args, {**kwargs, "hidden_states": x[:, -1:, :]}
    return None


def _contiguous_pre_hook(_module: nn.Module, args: tuple[Any, ...]) -> Any:
    if args and torch.is_tensor(args[0]) and not args[0].is_contiguous():
        return (args[0].contiguous(), *args[1:])
    return None


@contextmanager
def _hooks(targets: list[tuple[nn.Module, Callable[..., Any], bool]]) -> Iterator[None]:
    handles = [m.register_forward_pre_hook(fn, with_kwargs=kw) for m, fn, kw in targets]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def contiguous_head(model: nn.Module) -> Any:
    """Context manager: the model's LM head gets a contiguous input (same numbers, one
    matrix product instead of a batched one). A no-op for models without
    ``get_output_embeddings``."""
    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if getter is not None else None
    return _hooks([] if head is None else [(head, _contiguous_pre_hook, False)])


def _child(module: nn.Module, names: tuple[str, ...]) -> nn.Module | None:
    for name in names:
        child = getattr(module, name, None)
        if isinstance(child, nn.Module):
            return child
    return None


class LastPositionTrim:
    """Hooks that run the top decoder layer's output projection and feed-forward block at
    the last position only (see module docstring).

    ``LastPositionTrim(model).applicable`` (never for ``model=None``, the plain
    forward) says whether the top layer has a recognisable
    feed-forward block; :meth:`active` installs the hooks for a ``with`` block (and
    removes them after, also on error). Use only for inference on left-padded prompts
    whose answer is read at the last position, and check once with
    :func:`trim_is_exact`.
    """

    def __init__(self, model: nn.Module | None) -> None:
        from surveylm.errors import ModelError
        from surveylm.training.trainer import find_layer_list

        self.targets: list[nn.Module] = []
        if model is None:  # the plain forward
            return
        try:
            _, layers = find_layer_list(model)
        except ModelError:
            return
        if len(layers) == 0:
            return
        top = layers[-1]
        ffn = _child(top, FEED_FORWARD_NAMES)
        if ffn is None:
            return
        attn = _child(top, ATTENTION_NAMES)
        proj = None if attn is None else _child(attn, OUTPUT_PROJECTION_NAMES)
        self.targets = [m for m in (proj, ffn) if m is not None]

    @property
    def applicable(self) -> bool:
        """Whether the top layer has a feed-forward block the trim can slice."""
        return bool(self.targets)

    def active(self) -> Any:
        """Context manager that installs the hooks (nothing when not applicable)."""
        return _hooks([(m, _last_position_pre_hook, True) for m in self.targets])


def trim_is_exact(
    score: Callable[[], torch.Tensor], trim: LastPositionTrim, *, dtype: torch.dtype
) -> bool:
    """Whether ``score()`` gives the same numbers with the trim as without it.

    ``score`` runs the model on a few real prompts and returns their option
    log-probabilities. The tolerance (log-probability units) is 1e-4 for a model in
    float32/float64 (``dtype``) and 0.1 in half precision, where matrix products of a
    different shape may round differently; a structural mismatch (an operation after the
    sliced modules that mixes positions) changes the scores by far more. A trimmed forward
    that raises counts as not exact.
    """
    if not trim.applicable:
        return False
    plain = score()
    try:
        with trim.active():
            trimmed = score()
    except (RuntimeError, ValueError, IndexError, TypeError):
        return False
    return scores_agree(trimmed, plain, dtype=dtype)


def scores_agree(a: torch.Tensor, b: torch.Tensor, *, dtype: torch.dtype) -> bool:
    """Whether two computations of the same option log-probabilities agree: same shape,
    within 1e-4 for a model in float32/float64 (``dtype``) and 0.1 in half precision,
    where matrix products of a different shape may round differently."""
    if a.shape != b.shape:
        return False
    atol = 1e-4 if dtype in (torch.float32, torch.float64) else 0.1
    return bool(torch.allclose(a, b, rtol=0.0, atol=atol))
