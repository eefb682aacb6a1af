"""The two gallery stores (embedded, Milvus through milvus-lite) return the same top-k on the same gallery."""

from __future__ import annotations

import numpy as np
import pytest

from reid_export.evaluation.distances import pairwise_distance
from reid_export.images import decode_images
from reid_export.runtimes import infer_images, make_runtime
from reid_export.serve.gallery import Gallery
from reid_export.serve.stores import EmbeddedStore


@pytest.fixture(scope="module")
def queries(tiny_market, tiny_onnx):
    with make_runtime("onnxruntime", tiny_onnx) as runtime:
        paths = sorted((tiny_market / "query").glob("*.jpg"))
        return infer_images(runtime, decode_images(paths, runtime.contract, progress=False), progress=False)["embedding"]


def _milvus(tmp_path):
    pytest.importorskip("pymilvus", reason='the Milvus store needs pymilvus: pip install "reid-export[milvus]"')
    pytest.importorskip("milvus_lite", reason="milvus-lite runs Milvus in-process for the test")
    from reid_export.serve.store_milvus import MilvusStore

    return MilvusStore(uri=str(tmp_path / "milvus.db"))


def _same_up_to_ties(a: list, b: list, tol: float = 1e-5) -> None:
    """Same ids in the same order, except among entries whose distances are within `tol` of each other."""
    assert len(a) == len(b)
    np.testing.assert_allclose([d for _, d in a], [d for _, d in b], atol=tol)
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and abs(a[j + 1][1] - a[i][1]) <= tol:
            j += 1
        if j == i:
            assert a[i][0] == b[i][0], f"rank {i + 1}: {a[i]} vs {b[i]}"
        else:  # a tie group: same members (unless it runs past k)
            if j + 1 < len(a):
                assert {x for x, _ in a[i:j + 1]} == {x for x, _ in b[i:j + 1]}
        i = j + 1


def test_embedded_store_ranks_as_the_exact_distance_matrix(built_gallery, queries):
    with Gallery.open(built_gallery) as g:
        store = EmbeddedStore()
        store.sync(g.ids, g.embeddings, g.camids())
        hits = store.search(queries, k=7)
        expected = np.argsort(pairwise_distance(queries, g.embeddings), axis=1, kind="stable")[:, :7]
        assert [[h[0] for h in row] for row in hits] == [[g.ids[j] for j in row] for row in expected]


def test_exclude_camera_leaves_out_that_cameras_items(built_gallery, queries):
    with Gallery.open(built_gallery) as g:
        store = EmbeddedStore()
        store.sync(g.ids, g.embeddings, g.camids())
        camera_of = dict(zip(g.ids, g.camids()))
        for row in store.search(queries[:3], k=len(g), exclude_camera=1):
            assert row and all(camera_of[item] != 1 for item, _ in row)
            assert len(row) == int((g.camids() != 1).sum())


def test_milvus_and_embedded_stores_return_the_same_top_k(built_gallery, queries, tmp_path):
    milvus = _milvus(tmp_path)
    try:
        with Gallery.open(built_gallery) as g:
            embedded = EmbeddedStore()
            for store in (embedded, milvus):
                store.sync(g.ids, g.embeddings, g.camids())
            k = 10
            for a, b in zip(embedded.search(queries, k), milvus.search(queries, k)):
                _same_up_to_ties(a, b)
            for a, b in zip(embedded.search(queries, k, exclude_camera=2), milvus.search(queries, k, exclude_camera=2)):
                _same_up_to_ties(a, b)
            # changes reach both the same way
            gone = g.ids[:5]
            for store in (embedded, milvus):
                store.remove(gone)
            assert len(milvus) == len(embedded) == len(g) - 5
            for a, b in zip(embedded.search(queries, k), milvus.search(queries, k)):
                assert not {x for x, _ in b} & set(gone)
                _same_up_to_ties(a, b)
    finally:
        milvus.close()


def test_faiss_ranking_gives_the_same_results(built_gallery, queries):
    pytest.importorskip("faiss", reason='the faiss path needs faiss-cpu: pip install "reid-export[faiss]"')
    with Gallery.open(built_gallery) as g:
        exact, flat = EmbeddedStore(), EmbeddedStore(faiss=True)
        for store in (exact, flat):
            store.sync(g.ids, g.embeddings, g.camids())
        for a, b in zip(exact.search(queries, 10, exclude_camera=3), flat.search(queries, 10, exclude_camera=3)):
            _same_up_to_ties(a, b)


def test_milvus_matches_embedded_on_a_given_gallery(tmp_path):
    """On a real gallery (the demo's: REID_EXPORT_GALLERY=runs/gallery), its first 64 items as queries."""
    import os

    path = os.environ.get("REID_EXPORT_GALLERY")
    if not path:
        pytest.skip("set REID_EXPORT_GALLERY to a gallery folder (e.g. the demo's) to compare the stores on it")
    milvus = _milvus(tmp_path)
    try:
        with Gallery.open(path) as g:
            embedded = EmbeddedStore()
            for store in (embedded, milvus):
                store.sync(g.ids, g.embeddings, g.camids())
            queries = g.embeddings[:64]
            for cam in (None, 1):
                for a, b in zip(embedded.search(queries, 10, exclude_camera=cam),
                                milvus.search(queries, 10, exclude_camera=cam)):
                    _same_up_to_ties(a, b)
    finally:
        milvus.close()


def test_both_stores_start_empty_and_fill_up(tmp_path, built_gallery):
    milvus = _milvus(tmp_path)
    try:
        with Gallery.open(built_gallery) as g:
            for store in (EmbeddedStore(), milvus):
                store.sync([], np.zeros((0, g.dim), np.float32), np.zeros(0, np.int64))
                assert len(store) == 0 and store.search(g.embeddings[:2], 5) == [[], []]
                store.add(g.ids[:3], g.embeddings[:3], g.camids()[:3])
                assert [row[0][0] for row in store.search(g.embeddings[:3], 1)] == g.ids[:3]
    finally:
        milvus.close()
