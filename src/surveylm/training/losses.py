"""The training objective shared by every fine-tuned answer model.

Every backend reduces to a module that returns one score per answer option (padded to
the largest number of options in the batch). The loss renormalises those scores over
the item's own options and measures the forward KL divergence ``KL(p ‖ q)`` from the
target distribution ``p`` to the model's distribution ``q``:

* for a **group item** ``p`` is the group's weighted answer distribution — the forward KL
  objective of SubPOP (Suh et al. 2025) and of Cao et al. 2025;
* for a **respondent item** ``p`` is one-hot, and ``KL(p ‖ q) = −log q(answer)`` is the
  cross-entropy used to fine-tune the imputation models of the GLES study (Holtdirk et
  al. 2025).

So one objective serves both simulation and imputation (see DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from surveylm.errors import ConfigError, DistributionError

__all__ = ["LOSSES", "forward_kl", "get_loss", "masked_log_softmax", "ordinal_wasserstein"]


def masked_log_softmax(option_scores: torch.Tensor, option_mask: torch.Tensor) -> torch.Tensor:
    """``log q`` over the valid options of each row; padded options get ``log q = 0``.

    The scores may be logits or log-probabilities over a larger vocabulary: only their
    differences within a row matter, so renormalising over the item's options gives the
    model's distribution restricted to them (first-token option scoring, Cao et al. 2025).

    Args:
        option_scores: ``[B, K]`` scores, any float dtype.
        option_mask: ``[B, K]`` booleans, true for the options the item really has.

    Returns:
        ``[B, K]`` float32 log-probabilities; entries where the mask is false are 0 (so they
        contribute nothing and carry no gradient).
    """
    scores = option_scores.float()
    mask = option_mask.to(torch.bool)
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    log_q = torch.log_softmax(scores, dim=-1)
    return log_q.masked_fill(~mask, 0.0)


def forward_kl(
    option_scores: torch.Tensor,
    targets: torch.Tensor,
    option_mask: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    reduction: str = "mean",
) -> torch.Tensor:
    """Forward KL divergence ``KL(p ‖ q)`` from target ``p`` to the model's option distribution.

    ``q = softmax(option_scores)`` over the valid options of each row (a masked
    log-softmax), and ``KL(p ‖ q) = Σ_k p_k (log p_k − log q_k)`` with ``0 · log 0 = 0``.
    For one-hot ``p`` this is the cross-entropy ``−log q(answer)`` (GLES study, Holtdirk et
    al. 2025); for group distributions it is the SubPOP (Suh et al. 2025) / Cao et al. 2025
    objective. Computed in float32 whatever the score dtype (bf16 logits lose too much
    precision in a log-softmax).

    Args:
        option_scores: ``[B, K]`` option scores (logits or log-probabilities), padded.
        targets: ``[B, K]`` target distributions, zero on padded options.
        option_mask: ``[B, K]`` booleans, true on the options each item really has.
        weights: Optional ``[B]`` non-negative item weights; the mean becomes
            ``Σ w_i KL_i / Σ w_i``.
        reduction: ``"mean"`` (weighted mean over the batch), ``"sum"`` (weighted sum) or
            ``"none"`` (``[B]`` per-item divergences, unweighted).

    Returns:
        A scalar (or ``[B]`` for ``reduction="none"``) float32 tensor, in nats.

    Raises:
        DistributionError: mismatched shapes, a row with no valid option, target mass on a
            padded option, or all-zero weights.
    """
    if option_scores.dim() != 2 or option_scores.shape != targets.shape:
        raise DistributionError(
            f"option scores {tuple(option_scores.shape)} and targets {tuple(targets.shape)} "
            "must both be [batch, options]"
        )
    if option_mask.shape != option_scores.shape:
        raise DistributionError(
            f"option mask {tuple(option_mask.shape)} must match scores {tuple(option_scores.shape)}"
        )
    if reduction not in ("mean", "sum", "none"):
        raise DistributionError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    mask = option_mask.to(torch.bool)
    if not bool(mask.any(dim=-1).all()):
        raise DistributionError("every item needs at least one valid option in the mask")
    p = targets.float()
    if bool((p.masked_fill(mask, 0.0).abs() > 1e-6).any()):
        raise DistributionError("a target puts probability on a padded (masked) option")
    p = p.masked_fill(~mask, 0.0)
    log_q = masked_log_softmax(option_scores, mask)
    positive = p > 0
    log_p = torch.log(torch.where(positive, p, torch.ones_like(p)))
    kl = torch.where(positive, p * (log_p - log_q), torch.zeros_like(p)).sum(dim=-1)
    if reduction == "none":
        return kl
    if weights is None:
        return kl.mean() if reduction == "mean" else kl.sum()
    w = weights.to(kl.device, torch.float32).reshape(-1)
    if w.shape[0] != kl.shape[0]:
        raise DistributionError(f"{w.shape[0]} weights for a batch of {kl.shape[0]} items")
    if bool((w < 0).any()) or not bool(torch.isfinite(w).all()):
        raise DistributionError("item weights must be finite and non-negative")
    total = w.sum()
    if reduction == "sum":
        return (w * kl).sum()
    if float(total) <= 0:
        raise DistributionError("item weights in a batch sum to zero")
    return (w * kl).sum() / total


def ordinal_wasserstein(
    option_scores: torch.Tensor,
    targets: torch.Tensor,
    option_mask: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Ordinal Wasserstein (earth mover's) distance between target and model distributions.

    ``WD = Σ_{i<K} |F_p(i) − F_q(i)| / (K − 1)`` over each item's options in their order
    (unit spacing, normalised to [0, 1]; DESIGN.md's definition): the alternative training
    loss SubPOP (Suh et al. 2025) and Cao et al. 2025 compare with forward KL (both found
    KL better). Rows with one option contribute 0.

    Args:
        option_scores: ``[B, K]`` option scores, padded.
        targets: ``[B, K]`` target distributions, zero on padding.
        option_mask: ``[B, K]`` booleans; each row's valid options must come first.
        weights: Optional ``[B]`` item weights (weighted mean).
    """
    mask = option_mask.to(torch.bool)
    q = masked_log_softmax(option_scores, mask).exp().masked_fill(~mask, 0.0)
    p = targets.float().masked_fill(~mask, 0.0)
    gap = (p.cumsum(-1) - q.cumsum(-1)).abs()[:, :-1]
    k = mask.sum(-1)
    gap = gap.masked_fill(~mask[:, 1:], 0.0)
    wd = gap.sum(-1) / (k - 1).clamp(min=1).float()
    if weights is None:
        return wd.mean()
    w = weights.to(wd.device, torch.float32).reshape(-1)
    return (w * wd).sum() / w.sum().clamp(min=1e-12)


#: Training objectives by name: ``fn(option_scores, targets, option_mask, weights) -> loss``.
#: Adding a loss is one function, one line here and a test.
LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "forward_kl": forward_kl,
    "wasserstein": ordinal_wasserstein,
}


def get_loss(name: str) -> Callable[..., torch.Tensor]:
    """The loss registered under ``name``.

    Raises:
        ConfigError: an unknown name (the known ones are listed).
    """
    try:
        return LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown loss '{name}': expected one of {sorted(LOSSES)}") from None
