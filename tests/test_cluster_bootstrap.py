"""Cluster bootstrap: items that share a question are resampled together."""

from __future__ import annotations

import numpy as np

from surveylm.metrics.bootstrap import bootstrap_means


def test_clusters_move_together_and_widen_the_interval() -> None:
    v = np.r_[np.full(10, 0.1), np.full(10, 0.5)][:, None]
    q = np.repeat(["A", "B"], 10)
    seed = np.random.SeedSequence(0)
    point, lo, hi, n = bootstrap_means(v, np.ones(20), seed, 400, 0.95)
    _, clo, chi, _ = bootstrap_means(v, np.ones(20), seed, 400, 0.95, clusters=q)
    assert np.isclose(point[0], 0.3) and n[0] == 20
    assert 0.15 < lo[0] < 0.3 < hi[0] < 0.45  # 20 "independent" items
    # Two questions: a resample holds A twice, B twice or one each.
    assert np.isclose(clo[0], 0.1) and np.isclose(chi[0], 0.5)


def test_no_clusters_equals_one_cluster_per_item() -> None:
    rng = np.random.default_rng(1)
    v = rng.random((30, 3))
    seed = np.random.SeedSequence(4)
    a = bootstrap_means(v, np.ones(30), seed, 200, 0.9)
    b = bootstrap_means(v, np.ones(30), seed, 200, 0.9, clusters=np.arange(30))
    for x, y in zip(a, b, strict=True):
        assert np.allclose(x, y)
