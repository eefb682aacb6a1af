"""Ranking cost on synthetic embeddings: top-k, evaluation from embeddings, the packed sort, re-ranking.

    nice -n 5 pytest benchmarks/test_bench_ranking.py --benchmark-only

* top-k (k=100) of 1,000 queries, 512-D (ResNet-18's embedding), galleries of 15,913
  (Market-1501) and 100,000 images;
* `evaluate_embeddings` at full Market-1501 size: 3,368 queries x 15,913 gallery, 2048-D
  (ResNet-50), next to the bare similarity GEMM of the same sizes (the floor it can approach);
* the packed-key sort against numpy's stable argsort, 1,000 x 15,913 float32 distances;
* k-reciprocal re-ranking at a small size: 500 queries + 2,000 gallery, 512-D.

Every benchmark runs one warm-up round (BLAS threads, first-touch of buffers) before 3 timed ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from reid_export.evaluation.distances import stable_argsort, topk
from reid_export.evaluation.embeddings import evaluate_embeddings
from reid_export.evaluation.rerank import k_reciprocal_rerank

NUM_QUERY = 3368  # Market-1501 query set
NUM_GALLERY = 15913  # Market-1501 gallery (bounding_box_test)
NUM_IDS, NUM_CAMS, NUM_DISTRACTORS, NUM_JUNK = 750, 6, 2793, 600
TOPK_QUERIES, TOPK_DIM, K = 1000, 512, 100
SEED = 0


def _pedantic(benchmark, fn, *args, **kwargs):
    return benchmark.pedantic(fn, args=args, kwargs=kwargs, rounds=3, iterations=1, warmup_rounds=1)


@pytest.fixture(scope="module")
def market_embeddings():
    """Market-sized 2048-D embeddings around per-identity centres, with distractors and junk."""
    rng = np.random.default_rng(SEED)
    q_pids, q_cams = rng.integers(1, NUM_IDS + 1, NUM_QUERY), rng.integers(0, NUM_CAMS, NUM_QUERY)
    num_people = NUM_GALLERY - NUM_DISTRACTORS - NUM_JUNK
    g_pids = np.concatenate(
        [rng.integers(1, NUM_IDS + 1, num_people), np.zeros(NUM_DISTRACTORS, int), np.full(NUM_JUNK, -1)]
    )
    rng.shuffle(g_pids)
    g_cams = rng.integers(0, NUM_CAMS, NUM_GALLERY)
    centres = rng.standard_normal((NUM_IDS + 1, 2048), dtype=np.float32)
    q_emb = 0.3 * centres[q_pids] + rng.standard_normal((NUM_QUERY, 2048), dtype=np.float32)
    g_emb = 0.3 * centres[np.maximum(g_pids, 0)] + rng.standard_normal((NUM_GALLERY, 2048), dtype=np.float32)
    return q_emb, g_emb, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("gallery_size", [NUM_GALLERY, 100_000])
def test_bench_topk_512d(benchmark, gallery_size):
    rng = np.random.default_rng(SEED)
    query = rng.standard_normal((TOPK_QUERIES, TOPK_DIM), dtype=np.float32)
    gallery = rng.standard_normal((gallery_size, TOPK_DIM), dtype=np.float32)
    indices, distances = _pedantic(benchmark, topk, query, gallery, K)
    assert indices.shape == (TOPK_QUERIES, K) and (np.diff(distances, axis=1) >= 0).all()


def test_bench_evaluate_embeddings_market_size(benchmark, market_embeddings):
    result = _pedantic(benchmark, evaluate_embeddings, *market_embeddings)
    assert result["num_valid_queries"] > 0.9 * NUM_QUERY and 0.0 < result["mAP"] < 100.0


def test_bench_similarity_gemm_market_size(benchmark, market_embeddings):
    """The floor: the normalised float32 GEMM alone, 3,368 x 2048 @ 2048 x 15,913."""
    q_emb, g_emb = market_embeddings[:2]
    query = q_emb / np.linalg.norm(q_emb, axis=1, keepdims=True)
    gallery = g_emb / np.linalg.norm(g_emb, axis=1, keepdims=True)
    out = np.empty((NUM_QUERY, NUM_GALLERY), np.float32)
    _pedantic(benchmark, np.matmul, query, gallery.T, out=out)


@pytest.mark.parametrize("method", ["packed_keys", "numpy_stable_argsort"])
def test_bench_sort_rows(benchmark, method):
    distances = np.random.default_rng(SEED).random((1000, NUM_GALLERY), dtype=np.float32)
    sort = stable_argsort if method == "packed_keys" else lambda d: np.argsort(d, axis=1, kind="stable")
    order = _pedantic(benchmark, sort, distances)
    assert order.shape == distances.shape


def test_bench_rerank_small(benchmark):
    rng = np.random.default_rng(SEED)
    centres = rng.standard_normal((100, TOPK_DIM), dtype=np.float32)
    q_emb = centres[rng.integers(0, 100, 500)] + rng.standard_normal((500, TOPK_DIM), dtype=np.float32)
    g_emb = centres[rng.integers(0, 100, 2000)] + rng.standard_normal((2000, TOPK_DIM), dtype=np.float32)
    dist = _pedantic(benchmark, k_reciprocal_rerank, q_emb, g_emb)
    assert dist.shape == (500, 2000)
