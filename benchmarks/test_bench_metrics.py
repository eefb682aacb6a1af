"""Evaluation cost at full Market-1501 size (3,368 queries x 15,913 gallery) on synthetic data.

Run with `pytest benchmarks/test_bench_metrics.py --benchmark-only`.
"""

from __future__ import annotations

import numpy as np
import pytest

from reid_export.evaluation.distances import pairwise_distance
from reid_export.evaluation.protocol import evaluate_ranking

NUM_QUERY = 3368  # Market-1501 query set
NUM_GALLERY = 15913  # Market-1501 gallery (bounding_box_test)
NUM_IDS = 750  # test identities
NUM_CAMS = 6
NUM_DISTRACTORS = 2793  # pid 0
NUM_JUNK = 600  # pid -1
FEATURE_DIM = 2048  # ResNet-50 pooled features
SEED = 0


@pytest.fixture(scope="module")
def market_sized_ranking():
    """A random float32 distance matrix with Market-like pids/cameras; positives sit a bit closer."""
    rng = np.random.default_rng(SEED)
    q_pids = rng.integers(1, NUM_IDS + 1, NUM_QUERY)
    q_cams = rng.integers(0, NUM_CAMS, NUM_QUERY)
    num_people = NUM_GALLERY - NUM_DISTRACTORS - NUM_JUNK
    g_pids = np.concatenate(
        [rng.integers(1, NUM_IDS + 1, num_people), np.zeros(NUM_DISTRACTORS, int), np.full(NUM_JUNK, -1)]
    )
    rng.shuffle(g_pids)
    g_cams = rng.integers(0, NUM_CAMS, NUM_GALLERY)
    distmat = rng.random((NUM_QUERY, NUM_GALLERY), dtype=np.float32)
    distmat -= 0.5 * (q_pids[:, None] == g_pids[None, :])  # a weak but real signal
    return distmat, q_pids, g_pids, q_cams, g_cams


def test_bench_evaluate_ranking_market_size(benchmark, market_sized_ranking):
    result = benchmark.pedantic(evaluate_ranking, args=market_sized_ranking, rounds=3, iterations=1)
    assert result["num_valid_queries"] > 0.9 * NUM_QUERY
    assert 0.0 < result["mAP"] < 100.0


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_bench_pairwise_distance_market_size(benchmark, metric):
    rng = np.random.default_rng(SEED)
    query = rng.standard_normal((NUM_QUERY, FEATURE_DIM), dtype=np.float32)
    gallery = rng.standard_normal((NUM_GALLERY, FEATURE_DIM), dtype=np.float32)
    dist = benchmark.pedantic(pairwise_distance, args=(query, gallery, metric), rounds=3, iterations=1)
    assert dist.shape == (NUM_QUERY, NUM_GALLERY) and dist.dtype == np.float32
