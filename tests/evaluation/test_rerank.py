"""k-reciprocal re-ranking against a dense formulation of the reference code's conventions.

`_dense_reference` is written here, independently of `reid_export.evaluation.rerank`: full (P, P)
float64 matrices, Python sets for the neighbourhoods, the conventions spelled out one per line. The
blockwise sparse implementation must give the same distances and, on random and on real model
embeddings, metrics within 0.01 points.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from blas_blocks import blocks_are_bit_identical
from reid_export.data.market1501 import load_market1501
from reid_export.evaluation.blocks import METRICS
from reid_export.evaluation.distances import pairwise_distance
from reid_export.evaluation.protocol import evaluate_ranking
from reid_export.evaluation.rerank import k_reciprocal_rerank
from reid_export.images import decode_images
from reid_export.runtimes import infer_images
from reid_export.runtimes.torch import TorchRuntime


def _dense_reference(q_emb, g_emb, k1=20, k2=6, lambda_value=0.3, metric="cosine", strict=True, paper_jaccard=False):
    """The reference conventions, dense. `strict=False` / `paper_jaccard=True` switch one convention
    to the paper-text reading, to show the tests would notice."""
    x = np.concatenate([q_emb, g_emb]).astype(np.float64)
    if metric == "cosine":
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
    else:
        d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2))
    squared = d**2
    dist = (squared / squared.max(axis=0)).T  # each column by its maximum, then transposed
    order = np.argsort(dist, axis=1, kind="stable")
    total, num_query = len(x), len(q_emb)

    @functools.cache
    def reciprocal(i, k):
        return frozenset(int(j) for j in order[i, : k + 1] if i in order[j, : k + 1])

    half = int(np.around(k1 / 2))
    weights = np.zeros((total, total))
    for i in range(total):
        neighbours = reciprocal(i, k1)
        expanded = set(neighbours)  # R*(i, k1)
        for candidate in neighbours:
            theirs = reciprocal(candidate, half)
            shared = len(theirs & neighbours)
            if (shared > 2 / 3 * len(theirs)) if strict else (shared >= 2 / 3 * len(theirs)):
                expanded |= theirs
        members = sorted(expanded)
        kernel = np.exp(-dist[i, members])
        weights[i, members] = kernel / kernel.sum()  # each row sums to 1
    if k2 > 1:
        weights = np.stack([weights[order[i, :k2]].mean(axis=0) for i in range(total)])
    query, gallery = weights[:num_query], weights[num_query:]
    jaccard = np.empty((num_query, len(gallery)))
    for p in range(num_query):  # one query at a time: (G, P) at most
        minima = np.minimum(query[p], gallery).sum(axis=1)
        if paper_jaccard:
            jaccard[p] = 1.0 - minima / np.maximum(query[p], gallery).sum(axis=1)
        else:
            jaccard[p] = 1.0 - minima / (2.0 - minima)
    return (1.0 - lambda_value) * jaccard + lambda_value * dist[:num_query, num_query:]


def _clustered(seed: int, ids=30, per_id=8, dim=32, noise=1.0):
    """Two queries per identity (cameras 0 and 1), `per_id` gallery images on random cameras."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, dim))
    q_pids, q_cams = np.repeat(np.arange(1, ids + 1), 2), np.tile([0, 1], ids)
    g_pids, g_cams = np.repeat(np.arange(1, ids + 1), per_id), rng.integers(0, 4, ids * per_id)
    q_emb = centres[q_pids - 1] + noise * rng.standard_normal((q_pids.size, dim))
    g_emb = centres[g_pids - 1] + noise * rng.standard_normal((g_pids.size, dim))
    return q_emb.astype(np.float32), g_emb.astype(np.float32), q_pids, g_pids, q_cams, g_cams


def _embed(root):
    """Query and gallery embeddings of a Market-1501 folder by a (random-init) tiny ResNet-18, with their ids."""
    from tiny_models import make_tiny_model

    data = load_market1501(root, splits=("query", "gallery"), progress=False)
    samples = data.query + data.gallery
    with TorchRuntime(make_tiny_model()) as runtime:
        images = decode_images([s.path for s in samples], runtime.contract, progress=False)
        emb = infer_images(runtime, images, batch_size=32, progress=False)["embedding"]
    nq = len(data.query)
    pids, cams = np.array([s.pid for s in samples]), np.array([s.camid for s in samples])
    return emb[:nq], emb[nq:], pids[:nq], pids[nq:], cams[:nq], cams[nq:]


@pytest.fixture(scope="module")
def model_embeddings(tiny_market):
    return _embed(tiny_market)


def _assert_metrics_close(got: dict, expected: dict, points=0.01):
    for key in ("rank1", "rank5", "rank10", "mAP", "mINP"):
        assert abs(got[key] - expected[key]) < points, (key, got[key], expected[key])


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("k1, k2, lambda_value", [(20, 6, 0.3), (10, 3, 0.3), (6, 1, 0.5), (20, 6, 0.0)])
def test_distances_equal_the_dense_reference(metric, k1, k2, lambda_value):
    q_emb, g_emb, *_ = _clustered(0, noise=1.2)
    got = k_reciprocal_rerank(q_emb, g_emb, k1, k2, lambda_value, metric=metric)
    np.testing.assert_allclose(got, _dense_reference(q_emb, g_emb, k1, k2, lambda_value, metric), atol=2e-5)


@pytest.mark.parametrize("seed", range(4))
def test_metrics_on_random_embeddings_equal_the_reference_within_a_hundredth_of_a_point(seed):
    q_emb, g_emb, *ids = _clustered(seed, noise=1.2 + 0.2 * seed)
    got = evaluate_ranking(k_reciprocal_rerank(q_emb, g_emb), *ids)
    _assert_metrics_close(got, evaluate_ranking(_dense_reference(q_emb, g_emb).astype(np.float32), *ids))


def test_metrics_on_model_embeddings_equal_the_reference_within_a_hundredth_of_a_point(model_embeddings):
    q_emb, g_emb, *ids = model_embeddings
    k1 = min(20, len(q_emb) + len(g_emb) - 1)
    got = k_reciprocal_rerank(q_emb, g_emb, k1=k1)
    expected = _dense_reference(q_emb, g_emb, k1=k1)
    np.testing.assert_allclose(got, expected, atol=2e-5)
    _assert_metrics_close(evaluate_ranking(got, *ids), evaluate_ranking(expected.astype(np.float32), *ids))


@pytest.mark.slow
def test_on_the_demos_data_set_the_metrics_equal_the_reference_within_a_hundredth_of_a_point(tmp_path):
    # the demo's synthetic set (its test split: 100 ids, seed 0), embedded by a model, at the paper's parameters
    from reid_export.data.synthetic import generate_market1501

    generate_market1501(tmp_path / "demo", train_ids=1, test_ids=100, seed=0, progress=False)
    q_emb, g_emb, *ids = _embed(tmp_path / "demo")
    got = k_reciprocal_rerank(q_emb, g_emb)
    expected = _dense_reference(q_emb, g_emb)
    _assert_metrics_close(evaluate_ranking(got, *ids), evaluate_ranking(expected.astype(np.float32), *ids))
    # float32 against float64 can swap near-tied neighbours of a few images; the rest agree to rounding
    differ = np.abs(got - expected) > 1e-4
    assert differ.mean() < 0.01, (differ.mean(), np.abs(got - expected).max())


def test_the_comparison_would_notice_the_paper_text_conventions():
    # on this data the conventions the reference code fixes (strict 2/3 test, 2 - m denominator)
    # change the distances, so the tests above would fail on the paper-text reading
    q_emb, g_emb, *_ = _clustered(0, noise=1.2)
    reference = _dense_reference(q_emb, g_emb, 10, 3)
    assert np.abs(_dense_reference(q_emb, g_emb, 10, 3, strict=False) - reference).max() > 1e-3
    # rows summing to 1 make 2 - m equal sum max up to rounding; the denominators agree
    np.testing.assert_allclose(_dense_reference(q_emb, g_emb, 10, 3, paper_jaccard=True), reference, atol=1e-9)


def test_blocks_do_not_change_the_result():
    q_emb, g_emb, *_ = _clustered(2)
    small, whole = k_reciprocal_rerank(q_emb, g_emb, chunk_bytes=20_000), k_reciprocal_rerank(q_emb, g_emb)
    if blocks_are_bit_identical():
        np.testing.assert_array_equal(small, whole)
    else:  # this BLAS rounds small blocks differently (tests/blas_blocks.py): the same up to that rounding
        np.testing.assert_allclose(small, whole, atol=1e-3)
        assert (small.argmin(axis=1) == whole.argmin(axis=1)).mean() >= 0.95


def test_rerank_does_not_hurt_and_usually_improves_map():
    gains = []
    for seed in range(6):
        q_emb, g_emb, *ids = _clustered(seed, noise=1.2)
        before = evaluate_ranking(pairwise_distance(q_emb, g_emb), *ids)["mAP"]
        after = evaluate_ranking(k_reciprocal_rerank(q_emb, g_emb), *ids)["mAP"]
        gains.append(after - before)
    assert min(gains) > -1.0 and sum(gain > 0 for gain in gains) >= 5, gains


@pytest.mark.parametrize("metric", METRICS)
def test_rerank_output_is_a_non_negative_distance_matrix(metric):
    q_emb, g_emb, *_ = _clustered(0)
    dist = k_reciprocal_rerank(q_emb, g_emb, k1=10, k2=3, metric=metric)
    assert dist.shape == (60, 240) and dist.dtype == np.float32
    assert np.isfinite(dist).all() and (dist >= 0).all()


def test_identical_embeddings_give_finite_distances():
    same = np.ones((6, 4), np.float32)
    assert np.isfinite(k_reciprocal_rerank(same[:2], same[2:], k1=3, k2=2)).all()


def test_rerank_with_lambda_one_is_the_normalised_squared_distance_and_ranks_as_it():
    q_emb, g_emb, *ids = _clustered(1)
    got = k_reciprocal_rerank(q_emb, g_emb, lambda_value=1.0)
    original = pairwise_distance(q_emb, g_emb)
    scale = np.concatenate([pairwise_distance(q_emb, q_emb), pairwise_distance(g_emb, q_emb)]).max(axis=0) ** 2
    np.testing.assert_allclose(got, original**2 / scale[:, None], rtol=1e-5)
    assert evaluate_ranking(got, *ids)["mAP"] == pytest.approx(evaluate_ranking(original, *ids)["mAP"], abs=1e-9)
    np.testing.assert_allclose(k_reciprocal_rerank(q_emb, g_emb, lambda_value=0.999999), got, atol=1e-5)


def test_rerank_refuses_more_images_than_its_cap():
    q_emb, g_emb, *_ = _clustered(0)
    with pytest.raises(ValueError, match=r"60 \+ 240 = 300 images.*max_images=299"):
        k_reciprocal_rerank(q_emb, g_emb, max_images=299)


@pytest.mark.parametrize("kwargs, message", [
    ({"k1": 0}, "k1 must be an integer"), ({"k2": 300}, "k2 must be an integer"),
    ({"lambda_value": 1.5}, "lambda_value must be in"), ({"metric": "dot"}, "unknown metric"),
])
def test_rerank_rejects_bad_parameters(kwargs, message):
    q_emb, g_emb, *_ = _clustered(0)
    with pytest.raises(ValueError, match=message):
        k_reciprocal_rerank(q_emb, g_emb, **kwargs)
