"""Tests of the forward-KL training objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax as np_log_softmax
from scipy.special import rel_entr

from surveylm.errors import DistributionError
from surveylm.training.losses import forward_kl, masked_log_softmax


def _reference_kl(scores: np.ndarray, p: np.ndarray) -> float:
    """KL(p || softmax(scores)) with scipy (rel_entr gives 0 * log 0 = 0)."""
    q = np.exp(np_log_softmax(scores))
    return float(rel_entr(p, q).sum())


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(2, 7),
    batch=st.integers(1, 5),
    seed=st.integers(0, 10_000),
    sparse=st.booleans(),
)
def test_forward_kl_matches_scipy(k: int, batch: int, seed: int, sparse: bool) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.normal(scale=3.0, size=(batch, k))
    p = rng.dirichlet(np.ones(k), size=batch)
    if sparse:  # exact zeros exercise 0 * log 0 = 0
        p[:, 0] = 0.0
        p /= p.sum(axis=1, keepdims=True)
    mask = torch.ones(batch, k, dtype=torch.bool)
    got = forward_kl(torch.tensor(scores), torch.tensor(p), mask, reduction="none")
    want = [_reference_kl(scores[i], p[i]) for i in range(batch)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    mean = forward_kl(torch.tensor(scores), torch.tensor(p), mask)
    assert mean.item() == pytest.approx(np.mean(want), rel=1e-5, abs=1e-6)


def test_one_hot_target_is_cross_entropy() -> None:
    torch.manual_seed(0)
    scores = torch.randn(6, 4)
    labels = torch.tensor([0, 3, 1, 2, 2, 0])
    targets = torch.nn.functional.one_hot(labels, 4).float()
    mask = torch.ones(6, 4, dtype=torch.bool)
    got = forward_kl(scores, targets, mask)
    want = torch.nn.functional.cross_entropy(scores, labels)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_padded_options_are_ignored() -> None:
    """Scores on padded options (even huge ones) change neither the loss nor q."""
    scores = torch.tensor([[1.0, 2.0, 0.5, 0.0], [0.3, -1.0, 0.0, 0.0]])
    targets = torch.tensor([[0.2, 0.5, 0.3, 0.0], [1.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    base = forward_kl(scores, targets, mask, reduction="none")
    noisy = scores.clone()
    noisy[0, 3] = 1e4
    noisy[1, 2:] = torch.tensor([-50.0, 80.0])
    np.testing.assert_allclose(forward_kl(noisy, targets, mask, reduction="none"), base)
    want0 = _reference_kl(scores[0, :3].numpy(), targets[0, :3].numpy())
    want1 = _reference_kl(scores[1, :2].numpy(), targets[1, :2].numpy())
    np.testing.assert_allclose(base.numpy(), [want0, want1], rtol=1e-5)
    log_q = masked_log_softmax(noisy, mask)
    assert torch.all(log_q[~mask] == 0)
    np.testing.assert_allclose(log_q.exp().masked_fill(~mask, 0).sum(-1), [1.0, 1.0], rtol=1e-6)


def test_gradient_is_finite_and_zero_on_padding() -> None:
    scores = torch.tensor([[0.0, 1.0, 5.0]], requires_grad=True)
    targets = torch.tensor([[0.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    forward_kl(scores, targets, mask).backward()
    assert torch.isfinite(scores.grad).all()
    assert scores.grad[0, 2] == 0
    # d/ds of -log softmax: q - p over valid options
    q = torch.softmax(torch.tensor([0.0, 1.0]), -1)
    np.testing.assert_allclose(
        scores.grad[0, :2].numpy(), (q - torch.tensor([0.0, 1.0])).numpy(), rtol=1e-5
    )


def test_weights_give_weighted_mean() -> None:
    torch.manual_seed(1)
    scores = torch.randn(3, 3)
    targets = torch.softmax(torch.randn(3, 3), -1)
    mask = torch.ones(3, 3, dtype=torch.bool)
    per = forward_kl(scores, targets, mask, reduction="none")
    w = torch.tensor([1.0, 0.0, 3.0])
    got = forward_kl(scores, targets, mask, w)
    assert got.item() == pytest.approx(((per * w).sum() / w.sum()).item(), rel=1e-6)
    assert got.item() != pytest.approx(per.mean().item(), rel=1e-3)


def test_zero_when_model_matches_target_and_bf16_scores() -> None:
    p = torch.tensor([[0.1, 0.6, 0.3]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    assert forward_kl(p.log(), p, mask).item() == pytest.approx(0.0, abs=1e-6)
    out = forward_kl(p.log().to(torch.bfloat16), p, mask)
    assert out.dtype == torch.float32 and out.item() < 1e-3


@pytest.mark.parametrize(
    ("scores", "targets", "mask", "weights", "message"),
    [
        (torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3, dtype=torch.bool), None, "must"),
        (
            torch.zeros(1, 2),
            torch.tensor([[1.0, 0.0]]),
            torch.tensor([[False, False]]),
            None,
            "at least one valid option",
        ),
        (
            torch.zeros(1, 3),
            torch.tensor([[0.5, 0.0, 0.5]]),
            torch.tensor([[True, True, False]]),
            None,
            "padded",
        ),
        (
            torch.zeros(2, 2),
            torch.tensor([[1.0, 0.0]] * 2),
            torch.ones(2, 2, dtype=torch.bool),
            torch.tensor([-1.0, 1.0]),
            "non-negative",
        ),
    ],
)
def test_bad_input_raises(scores, targets, mask, weights, message) -> None:
    with pytest.raises(DistributionError, match=message):
        forward_kl(scores, targets, mask, weights)
