"""Ranking: distances, the order keys, top-k, evaluation from embeddings, devices, re-ranking, benchmark rows."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import torch

from blas_blocks import blocks_are_bit_identical
from reid_export.bench.scaling import faiss_topk, scaling_benchmark
from reid_export.errors import RuntimeUnavailable
from reid_export.evaluation import blocks, distances_torch, protocol
from reid_export.evaluation.blocks import METRICS, split_keys
from reid_export.evaluation.distances import normalise_rows, pairwise_distance, stable_argsort, topk
from reid_export.evaluation.embeddings import evaluate_embeddings
from reid_export.evaluation.protocol import evaluate_ranking, order_keys
from reid_export.evaluation.rerank import k_reciprocal_rerank


@pytest.fixture
def features():
    rng = np.random.default_rng(0)
    return rng.standard_normal((7, 16)).astype(np.float32), rng.standard_normal((11, 16)).astype(np.float32)


def test_cosine_matches_direct_formula(features):
    q, g = features
    expected = np.array(
        [[1.0 - np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)) for b in g.astype(np.float64)]
         for a in q.astype(np.float64)]
    )
    got = pairwise_distance(q, g, metric="cosine")
    assert got.dtype == np.float32 and got.shape == (7, 11)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_cosine_is_the_default_and_ignores_scale(features):
    q, g = features
    np.testing.assert_allclose(pairwise_distance(q, g), pairwise_distance(3.0 * q, 0.5 * g), atol=1e-6)


def test_euclidean_matches_direct_formula(features):
    q, g = features
    expected = np.linalg.norm(q.astype(np.float64)[:, None, :] - g.astype(np.float64)[None, :, :], axis=2)
    got = pairwise_distance(q, g, metric="euclidean")
    assert got.dtype == np.float32 and got.shape == (7, 11)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_euclidean_of_identical_rows_is_zero_not_nan():
    # the GEMM trick can round |x|^2 + |x|^2 - 2 x.x slightly below 0; it must be clipped, not
    # turned into NaN by the sqrt. (Its float32 cancellation error is ~sqrt(eps) * |x|, hence atol.)
    x = np.random.default_rng(1).standard_normal((50, 64)).astype(np.float32)
    d = pairwise_distance(x, x, metric="euclidean")
    assert not np.isnan(d).any() and (d >= 0).all()
    np.testing.assert_allclose(np.diag(d), 0.0, atol=1e-2)


def test_float64_inputs_still_return_float32(features):
    q, g = features
    got = pairwise_distance(q.astype(np.float64), g.astype(np.float64), metric="euclidean")
    assert got.dtype == np.float32


@pytest.mark.filterwarnings("error")
def test_zero_rows_are_safe_for_cosine():
    q = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    g = np.array([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [-1.0, 0.0, 0.0]], dtype=np.float32)
    d = pairwise_distance(q, g, metric="cosine")
    # a zero vector has similarity 0 to everything: distance 1
    np.testing.assert_allclose(d, [[1.0, 1.0, 1.0], [1.0, 1.0, 2.0]], atol=1e-6)


def test_dimension_mismatch_raises():
    with pytest.raises(ValueError, match=r"dimensions differ.*\(2, 3\).*\(4, 5\)"):
        pairwise_distance(np.zeros((2, 3)), np.zeros((4, 5)))


def test_unknown_metric_lists_the_allowed_values():
    with pytest.raises(ValueError, match="manhattan.*cosine, euclidean"):
        pairwise_distance(np.zeros((2, 3)), np.zeros((4, 3)), metric="manhattan")
    assert METRICS == ("cosine", "euclidean")


def test_non_2d_input_raises():
    with pytest.raises(ValueError, match=r"query must be 2-D.*\(3,\)"):
        pairwise_distance(np.zeros(3), np.zeros((4, 3)))


# -- order keys and the packed sort -----------------------------------------------------


def _awkward_rows(seed: int) -> np.ndarray:
    """float32 rows full of ties, negatives, -0.0 / 0.0, infinities and subnormals."""
    rng = np.random.default_rng(seed)
    pool = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, np.inf, -np.inf, 1e-45, -1e-45, 3.4e38, -3.4e38],
                    dtype=np.float32)
    rows = rng.choice(pool, size=(6, 300))
    rows[:3, ::7] = rng.standard_normal((3, 43)).astype(np.float32)
    return rows


@pytest.mark.parametrize("seed", range(5))
def test_packed_sort_equals_stable_argsort(seed):
    rows = _awkward_rows(seed)
    expected = np.argsort(rows, axis=1, kind="stable")
    keys = order_keys(rows)
    keys.sort(axis=1)
    np.testing.assert_array_equal(keys & 0xFFFFFFFF, expected)
    np.testing.assert_array_equal(stable_argsort(rows), expected)
    np.testing.assert_array_equal(stable_argsort(rows[0]), expected[0])


def test_negative_zero_ties_with_zero():
    # the plain bit trick puts -0.0 before 0.0; numpy (and evaluate_ranking) treat them as equal
    row = np.array([[0.0, -0.0, 0.0, -0.0]], dtype=np.float32)
    np.testing.assert_array_equal(stable_argsort(row), [[0, 1, 2, 3]])
    assert len(set(order_keys(row)[0] >> 32)) == 1


def test_order_keys_round_trip_to_distances_and_indices():
    rows = _awkward_rows(0)
    indices, distances = split_keys(order_keys(rows, index=np.arange(300) + 7))
    np.testing.assert_array_equal(indices, np.broadcast_to(np.arange(300) + 7, rows.shape))
    np.testing.assert_array_equal(distances, rows + np.float32(0.0))  # -0.0 comes back as 0.0


def test_stable_argsort_keeps_float64_unrounded():
    row = np.array([1.0 + 1e-12, 1.0])  # equal once rounded to float32
    np.testing.assert_array_equal(stable_argsort(row), [1, 0])


def test_order_keys_rejects_other_dtypes():
    with pytest.raises(ValueError, match="float32"):
        order_keys(np.zeros((2, 3)))


# -- topk --------------------------------------------------------------------------------


def _tied_embeddings(seed: int, num_query=40, num_gallery=300, dim=6):
    """Small-integer embeddings: exact GEMMs and many exactly tied distances."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-2, 3, (num_query, dim)).astype(np.float32),
            rng.integers(-2, 3, (num_gallery, dim)).astype(np.float32))


def _expected_topk(query, gallery, k, metric):
    dist = pairwise_distance(query, gallery, metric)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(dist, order, axis=1)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("seed", range(3))
def test_topk_equals_a_full_stable_argsort(metric, seed):
    query, gallery = _tied_embeddings(seed)
    for k in (1, 17, 100, 300):
        indices, distances = topk(query, gallery, k, metric=metric)
        expected_indices, expected_distances = _expected_topk(query, gallery, k, metric)
        assert indices.dtype == np.int64 and distances.dtype == np.float32 and indices.shape == (40, k)
        np.testing.assert_array_equal(indices, expected_indices)
        np.testing.assert_array_equal(distances, expected_distances)


def test_topk_on_continuous_embeddings():
    rng = np.random.default_rng(5)
    query, gallery = rng.standard_normal((30, 64)), rng.standard_normal((2000, 64))
    indices, distances = topk(query.astype(np.float32), gallery.astype(np.float32), 50)
    expected_indices, expected_distances = _expected_topk(query.astype(np.float32), gallery.astype(np.float32), 50, "cosine")
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(distances, expected_distances)


@pytest.mark.parametrize("chunk_bytes", [600, 1 << 20])
def test_topk_on_a_gallery_normalised_once_is_bit_identical(chunk_bytes):
    """What a served gallery does: normalise once, then search many times with the same result."""
    rng = np.random.default_rng(11)
    query = rng.standard_normal((9, 32)).astype(np.float32)
    gallery = (rng.standard_normal((700, 32)) * rng.uniform(0.1, 30, (700, 1))).astype(np.float32)
    gallery[5] = 0.0  # an all-zero row: distance 1 to everything, either way
    expected = topk(query, gallery, 40, chunk_bytes=chunk_bytes)
    got = topk(query, normalise_rows(gallery), 40, chunk_bytes=chunk_bytes, gallery_normalised=True)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    with pytest.raises(ValueError, match="gallery_normalised=True is for metric='cosine'"):
        topk(query, gallery, 5, metric="euclidean", gallery_normalised=True)


def test_topk_all_tied_returns_the_lowest_indices():
    query, gallery = np.ones((3, 4), np.float32), np.ones((500, 4), np.float32)
    indices, distances = topk(query, gallery, 20)
    np.testing.assert_array_equal(indices, np.broadcast_to(np.arange(20), (3, 20)))
    np.testing.assert_array_equal(distances, 0.0)


@pytest.mark.parametrize("chunk_bytes", [1, 600, 5_000, 40_000, 1 << 20])
def test_topk_is_invariant_to_the_memory_cap(chunk_bytes):
    query, gallery = _tied_embeddings(7, num_query=33, num_gallery=500)
    expected = topk(query, gallery, 30, metric="euclidean")
    got = topk(query, gallery, 30, metric="euclidean", chunk_bytes=chunk_bytes)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_topk_rows_whose_sampled_threshold_is_too_low_are_ranked_whole():
    # every 16th gallery entry is the closest: the sample then sets a threshold that lets through
    # fewer than k entries, and the row must be ranked in full
    gallery = np.arange(1, 2001, dtype=np.float32)[:, None]
    gallery[::16] = np.arange(1, 126, dtype=np.float32)[:, None] * 1e-3
    query = np.zeros((2, 1), np.float32)
    indices, distances = topk(query, gallery, 200, metric="euclidean")
    expected_indices, expected_distances = _expected_topk(query, gallery, 200, "euclidean")
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(distances, expected_distances)


def test_topk_blocks_respect_the_memory_cap(monkeypatch):
    seen = _record_blocks(monkeypatch)
    query, gallery = _tied_embeddings(1, num_query=64, num_gallery=3000, dim=8)
    cap = 64 * 1024
    topk(query, gallery, 10, chunk_bytes=cap)
    entry = blocks.entry_bytes(np.float32, keys=True)
    assert len(seen) > 1 and max(r * (c * entry + 8 * 10) for r, c in seen) <= cap
    assert max(c for _, c in seen) < 3000  # the gallery had to be split


@pytest.mark.parametrize("k", [0, 301, 2.0, True])
def test_topk_rejects_a_bad_k(k):
    query, gallery = _tied_embeddings(0)
    with pytest.raises(ValueError, match="k must be an integer from 1 to the gallery size 300"):
        topk(query, gallery, k)


def test_topk_rejects_nan_distances():
    query, gallery = _tied_embeddings(0)
    query[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        topk(query, gallery, 5)


# -- evaluate_embeddings ----------------------------------------------------------------


def _market_like(seed: int, num_query=60, num_gallery=400, dim=16, ids=12, dtype=np.float32):
    """Embeddings near per-identity centres, with distractors (pid 0) and junk (pid -1)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids + 1, dim))
    q_pids = rng.integers(1, ids + 1, num_query)
    g_pids = rng.choice(np.arange(-1, ids + 1), num_gallery)
    q_cams, g_cams = rng.integers(0, 4, num_query), rng.integers(0, 4, num_gallery)
    q_emb = centres[q_pids] + rng.standard_normal((num_query, dim))
    g_emb = centres[np.maximum(g_pids, 0)] + rng.standard_normal((num_gallery, dim))
    if seed % 2:  # coarse values: many exactly tied distances
        q_emb, g_emb = np.round(q_emb), np.round(g_emb)
    return q_emb.astype(dtype), g_emb.astype(dtype), q_pids, g_pids, q_cams, g_cams


def _assert_same_metrics(got, expected):
    for key, value in expected.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got[key], value)
        else:
            assert got[key] == value, key


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("seed", range(4))
def test_evaluate_embeddings_equals_evaluate_ranking_of_pairwise_distance(metric, seed):
    q_emb, g_emb, *ids = _market_like(seed)
    expected = evaluate_ranking(pairwise_distance(q_emb, g_emb, metric), *ids)
    got = evaluate_embeddings(q_emb, g_emb, *ids, metric=metric)
    _assert_same_metrics(got, expected)
    assert got["seconds"] > 0


@pytest.mark.parametrize("chunk_bytes", [1, 10_000, 50_000])
def test_evaluate_embeddings_is_invariant_to_the_memory_cap(chunk_bytes):
    q_emb, g_emb, *ids = _market_like(1)
    expected = evaluate_ranking(pairwise_distance(q_emb, g_emb), *ids, max_rank=20)
    got = evaluate_embeddings(q_emb, g_emb, *ids, max_rank=20, chunk_bytes=chunk_bytes)
    if blocks_are_bit_identical():
        _assert_same_metrics(got, expected)
    else:  # this BLAS rounds small blocks differently (tests/blas_blocks.py): near-ties may swap
        for key in ("rank1", "mAP", "mINP"):
            assert abs(got[key] - expected[key]) < 0.05, key


def test_evaluate_embeddings_in_float64():
    q_emb, g_emb, *ids = _market_like(2, dtype=np.float64)
    expected = evaluate_ranking(pairwise_distance(q_emb, g_emb), *ids)
    _assert_same_metrics(evaluate_embeddings(q_emb, g_emb, *ids), expected)


def test_queries_with_many_positives_are_sorted_not_counted(monkeypatch):
    q_emb, g_emb, *ids = _market_like(3, ids=3)  # about 130 positives per query
    expected = evaluate_ranking(pairwise_distance(q_emb, g_emb), *ids)
    monkeypatch.setattr(protocol, "_COUNT_MAX_PAIRS", 0)
    _assert_same_metrics(evaluate_embeddings(q_emb, g_emb, *ids), expected)
    _assert_same_metrics(evaluate_ranking(pairwise_distance(q_emb, g_emb), *ids), expected)


def test_evaluate_embeddings_blocks_respect_the_memory_cap(monkeypatch):
    seen = _record_blocks(monkeypatch)
    q_emb, g_emb, *ids = _market_like(0, num_query=200, num_gallery=1000)
    cap = 40_000
    evaluate_embeddings(q_emb, g_emb, *ids, chunk_bytes=cap)
    assert len(seen) > 1 and all(c == 1000 and r * c * 4 <= cap for r, c in seen)


def test_evaluate_embeddings_never_holds_the_full_matrix():
    q_emb, g_emb, *ids = _market_like(0, num_query=1000, num_gallery=4000, ids=100)  # ~40 images per id
    cap = 256 * 1024
    evaluate_embeddings(q_emb, g_emb, *ids, chunk_bytes=cap)  # warm caches and imports
    tracemalloc.start()
    try:
        evaluate_embeddings(q_emb, g_emb, *ids, chunk_bytes=cap)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    normalised_copies = q_emb.nbytes + g_emb.nbytes
    # beyond the block: bookkeeping of the same-pid pairs (O(block rows x pairs)) and the
    # comparisons that place one query's pairs (at most pairs x gallery bytes)
    assert peak < cap + normalised_copies + (1 << 20) < 1000 * 4000 * 4 / 4  # the full matrix: 16 MB


def test_evaluate_embeddings_checks_ids_against_embeddings():
    q_emb, g_emb, q_pids, g_pids, q_cams, g_cams = _market_like(0)
    with pytest.raises(ValueError, match=r"g_camids must have shape \(400,\).*g_emb.*\(399,\)"):
        evaluate_embeddings(q_emb, g_emb, q_pids, g_pids, q_cams, g_cams[:-1])
    with pytest.raises(ValueError, match="q_pids must be a 1-D array of integer ids"):
        evaluate_embeddings(q_emb, g_emb, q_pids.astype(float), g_pids, q_cams, g_cams)


def test_evaluate_embeddings_rejects_nan_embeddings():
    q_emb, g_emb, *ids = _market_like(0)
    g_emb[5, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluate_embeddings(q_emb, g_emb, *ids)


def test_evaluate_embeddings_with_rerank_reports_its_cost():
    q_emb, g_emb, *ids = _market_like(0)
    got = evaluate_embeddings(q_emb, g_emb, *ids, rerank=True)
    _assert_same_metrics(got, evaluate_ranking(k_reciprocal_rerank(q_emb, g_emb), *ids))
    assert 0 < got["rerank_seconds"] <= got["seconds"]


# -- devices -----------------------------------------------------------------------------

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@needs_no_cuda
def test_cuda_without_a_device_raises_runtime_unavailable():
    q_emb, g_emb, *ids = _market_like(0)
    with pytest.raises(RuntimeUnavailable, match="no CUDA device.*device='cpu'"):
        topk(q_emb, g_emb, 5, device="cuda")
    with pytest.raises(RuntimeUnavailable, match="no CUDA device"):
        evaluate_embeddings(q_emb, g_emb, *ids, device="cuda:0")


def test_unknown_device_and_cpu_half_are_rejected():
    q_emb, g_emb, *_ = _market_like(0)
    with pytest.raises(ValueError, match="unknown device 'mps'; use 'cpu' or 'cuda'"):
        topk(q_emb, g_emb, 5, device="mps")
    with pytest.raises(ValueError, match="half=True.*needs device='cuda'"):
        topk(q_emb, g_emb, 5, half=True)


@pytest.mark.parametrize("chunk_bytes", [2_000, 1 << 20])
def test_torch_path_matches_numpy_on_exact_data(chunk_bytes):
    # the GPU code run by torch on the CPU: exact GEMMs on small integers, so any difference is logic
    query, gallery = _tied_embeddings(4)
    rows, cols = blocks.plan(40, 300, 25, blocks.TORCH_ENTRY_BYTES, chunk_bytes)
    keys = distances_torch.topk_keys(query, gallery, 25, "euclidean", rows, cols, torch.device("cpu"), False)
    expected = topk(query, gallery, 25, metric="euclidean")
    np.testing.assert_array_equal(blocks.split_keys(keys)[0], expected[0])
    np.testing.assert_array_equal(blocks.split_keys(keys)[1], expected[1])

    q_emb, g_emb, *ids = _market_like(1)
    accumulator = protocol.RankingAccumulator(*ids)
    distances_torch.evaluate_blocks(q_emb, g_emb, accumulator, "euclidean", 7, torch.device("cpu"), False)
    _assert_same_metrics(accumulator.result(), evaluate_ranking(pairwise_distance(q_emb, g_emb, "euclidean"), *ids))


@pytest.mark.cuda
@needs_cuda
def test_cuda_topk_and_evaluation_match_the_cpu():
    rng = np.random.default_rng(0)
    query, gallery = rng.standard_normal((200, 64), dtype=np.float32), rng.standard_normal((5000, 64), dtype=np.float32)
    cpu, gpu = topk(query, gallery, 20), topk(query, gallery, 20, device="cuda", chunk_bytes=1 << 20)
    assert (cpu[0] == gpu[0]).mean() > 0.99  # GEMMs round differently: near-ties may swap
    np.testing.assert_allclose(cpu[1], gpu[1], atol=1e-5)
    exact = _tied_embeddings(2)
    np.testing.assert_array_equal(topk(*exact, 30, metric="euclidean", device="cuda")[0],
                                  topk(*exact, 30, metric="euclidean")[0])
    q_emb, g_emb, *ids = _market_like(1)  # integer-valued: exact on both devices
    _assert_same_metrics(evaluate_embeddings(q_emb, g_emb, *ids, metric="euclidean", device="cuda", chunk_bytes=50_000),
                         evaluate_embeddings(q_emb, g_emb, *ids, metric="euclidean"))
    half = evaluate_embeddings(*_market_like(0), device="cuda", half=True)
    assert abs(half["mAP"] - evaluate_embeddings(*_market_like(0))["mAP"]) < 1.0


# -- k-reciprocal re-ranking: tests/evaluation/test_rerank.py ------------------------------


# -- scaling benchmark and faiss ----------------------------------------------------------------


def test_scaling_benchmark_rows():
    rows = scaling_benchmark((500, 3), dim=8, queries=20, k=5, faiss=False)
    first, failed = rows
    assert first["gallery_size"] == 500 and first["queries"] == 20 and first["dim"] == 8
    for key in ("seconds", "queries_per_sec", "gemm_seconds", "peak_alloc_mb", "peak_rss_mb", "gallery_mb"):
        assert first[key] >= 0, key
    assert "error" not in first and "k must be" in failed["error"]  # a failed size is a row


def test_faiss_is_optional(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        faiss_topk(np.zeros((2, 4), np.float32), np.ones((9, 4), np.float32), 3)
    assert "faiss-cpu" in scaling_benchmark((50,), dim=4, queries=3, k=2)[0]["faiss_error"]


def test_faiss_agrees_with_topk():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    query, gallery = rng.standard_normal((20, 32), dtype=np.float32), rng.standard_normal((1000, 32), dtype=np.float32)
    indices, distances, seconds = faiss_topk(query, gallery, 10)
    expected = topk(query, gallery, 10)
    assert (indices == expected[0]).mean() > 0.99 and seconds >= 0
    np.testing.assert_allclose(distances, expected[1], atol=1e-5)


def test_ranking_modules_import_without_torch():
    code = ("import sys, reid_export.evaluation, reid_export.evaluation.rerank, reid_export.bench.scaling; "
            "assert 'torch' not in sys.modules and 'faiss' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- helpers -------------------------------------------------------------------------------


def _record_blocks(monkeypatch) -> list[tuple[int, int]]:
    """Record the (rows, cols) of every distance block the CPU path computes."""
    seen, original = [], blocks.distance_block

    def recording(q, g, metric, out=None):
        seen.append((q[0].shape[0], g[0].shape[0]))
        return original(q, g, metric, out=out)

    monkeypatch.setattr(blocks, "distance_block", recording)
    return seen
