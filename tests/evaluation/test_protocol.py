"""evaluate_ranking: hand-worked examples, protocol rules, and a per-query reference on random inputs."""

from __future__ import annotations

import numpy as np
import pytest

from reid_export.evaluation import protocol as metrics
from reid_export.evaluation.protocol import evaluate_ranking

# -- hand-worked examples --------------------------------------------------------------


def test_positives_at_ranks_2_and_4():
    # query pid 1, camera 0. Gallery by distance: neg, pos, neg, pos.
    # positives at ranks 2 and 4: AP = (1/2 + 2/4) / 2 = 0.5, INP = 2 positives / rank 4 = 0.5,
    # first hit at rank 2: rank1 = 0, rank2 onwards = 100.
    res = _eval([[0.1, 0.2, 0.3, 0.4]], q=[(1, 0)], g=[(2, 1), (1, 1), (3, 1), (1, 2)], max_rank=5)
    assert res["mAP"] == pytest.approx(50.0)
    assert res["mINP"] == pytest.approx(50.0)
    assert res["rank1"] == 0.0
    assert res["rank5"] == 100.0
    np.testing.assert_allclose(res["cmc"], [0, 100, 100, 100, 100])
    assert res["num_valid_queries"] == 1 and res["num_skipped_queries"] == 0


def test_two_queries_are_averaged():
    # query A (pid 1, cam 0): positives at ranks 1, 2, 5.
    #   AP = (1/1 + 2/2 + 3/5) / 3 = 2.6 / 3, INP = 3/5 = 0.6, first hit at rank 1.
    # query B (pid 2, cam 0): its one positive (gallery index 5) sits at rank 3.
    #   AP = 1/3, INP = 1/3, first hit at rank 3.
    # mAP = (2.6/3 + 1/3) / 2 = 3.6/6 = 0.6; mINP = (0.6 + 1/3) / 2 = 7/15; rank1 = 50; rank5 = 100.
    g = [(1, 1), (1, 2), (3, 1), (4, 1), (1, 3), (2, 1)]
    d = [
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        [0.1, 0.2, 0.6, 0.7, 0.8, 0.3],
    ]
    res = _eval(d, q=[(1, 0), (2, 0)], g=g, max_rank=3)
    assert res["mAP"] == pytest.approx(60.0)
    assert res["mINP"] == pytest.approx(100 * 7 / 15)
    assert res["rank1"] == 50.0
    assert res["rank5"] == 100.0
    np.testing.assert_allclose(res["cmc"], [50, 50, 100])


def test_junk_images_are_ignored():
    # a junk image (pid -1) closest to the query must not take rank 1; without it the list is
    # the ranks-2-and-4 example: AP = 0.5 (counting the junk would give (1/3 + 2/5) / 2).
    res = _eval(
        [[0.0, 0.1, 0.2, 0.3, 0.4]], q=[(1, 0)], g=[(-1, 1), (2, 1), (1, 1), (3, 1), (1, 2)]
    )
    assert res["mAP"] == pytest.approx(50.0)
    assert res["mINP"] == pytest.approx(50.0)


def test_junk_with_the_query_pid_is_still_junk():
    # pid -1 never counts as a match, even for a (pathological) query with pid -1 ... and a query
    # whose only gallery entries are junk has no valid match at all.
    with pytest.raises(ValueError, match="no query has a valid match"):
        _eval([[0.1, 0.2]], q=[(-1, 0)], g=[(-1, 1), (-1, 2)])


def test_same_camera_same_pid_images_are_ignored():
    # gallery: same pid + same camera at distance 0 (ignored), a negative, then the true positive
    # from another camera -> the positive is at rank 2: AP = 1/2, rank1 = 0.
    res = _eval([[0.0, 0.1, 0.2]], q=[(1, 0)], g=[(1, 0), (2, 1), (1, 1)])
    assert res["mAP"] == pytest.approx(50.0)
    assert res["rank1"] == 0.0


def test_same_camera_other_pid_is_a_negative():
    # only the pid-and-camera pair is dropped; another person in the query's camera stays a negative.
    res = _eval([[0.0, 0.1]], q=[(1, 0)], g=[(2, 0), (1, 1)])
    assert res["mAP"] == pytest.approx(50.0)


def test_distractors_count_as_negatives():
    # a distractor (pid 0) closest to the query pushes the positive to rank 2: AP = 1/2, INP = 1/2.
    res = _eval([[0.1, 0.2]], q=[(1, 0)], g=[(0, 1), (1, 1)])
    assert res["mAP"] == pytest.approx(50.0)
    assert res["mINP"] == pytest.approx(50.0)
    assert res["rank1"] == 0.0


def test_ties_are_broken_by_gallery_order():
    # equal distances: the earlier gallery index ranks first.
    first = _eval([[0.5, 0.5]], q=[(1, 0)], g=[(1, 1), (2, 1)])
    second = _eval([[0.5, 0.5]], q=[(1, 0)], g=[(2, 1), (1, 1)])
    assert first["rank1"] == 100.0 and first["mAP"] == pytest.approx(100.0)
    assert second["rank1"] == 0.0 and second["mAP"] == pytest.approx(50.0)


def test_ties_are_broken_by_gallery_order_in_long_rows():
    # numpy's default quicksort is not stable beyond small sizes; 500 equal distances with the
    # one positive at gallery index 337 must put it at rank 338 -> AP = INP = 1/338.
    g = [(2, 1)] * 500
    g[337] = (1, 1)
    res = _eval(np.zeros((1, 500), dtype=np.float32), q=[(1, 0)], g=g)
    assert res["mAP"] == pytest.approx(100 / 338)
    assert res["mINP"] == pytest.approx(100 / 338)


def test_float64_distances_are_not_rounded():
    # 1 + 1e-12 and 1 would tie in float32; in float64 the positive (index 1) is strictly closer.
    res = _eval(np.array([[1.0 + 1e-12, 1.0]]), q=[(1, 0)], g=[(2, 1), (1, 1)])
    assert res["rank1"] == 100.0


def test_queries_without_a_valid_match_are_skipped():
    # query B's only same-pid image is in its own camera: skipped. Query A alone: AP = 1.
    res = _eval([[0.1, 0.2], [0.1, 0.2]], q=[(1, 0), (2, 0)], g=[(1, 1), (2, 0)])
    assert res["num_valid_queries"] == 1
    assert res["num_skipped_queries"] == 1
    assert res["mAP"] == pytest.approx(100.0)
    assert res["rank1"] == 100.0


def test_cmc_is_padded_when_gallery_is_shorter_than_max_rank():
    # 3 gallery images, positive at rank 2, max_rank 50: cmc = [0, 100, 100, ..., 100].
    res = _eval([[0.1, 0.2, 0.3]], q=[(1, 0)], g=[(2, 1), (1, 1), (3, 1)], max_rank=50)
    assert res["cmc"].shape == (50,)
    assert res["cmc"][0] == 0.0
    assert np.all(res["cmc"][1:] == 100.0)
    assert res["rank10"] == 100.0


def test_rank10_is_reported_even_when_max_rank_is_smaller():
    res = _eval([[0.1, 0.2, 0.3]], q=[(1, 0)], g=[(2, 1), (3, 1), (1, 1)], max_rank=1)
    assert res["cmc"].shape == (1,)
    assert res["rank1"] == 0.0 and res["rank5"] == 100.0 and res["rank10"] == 100.0


def test_result_types():
    res = _eval([[0.1, 0.2]], q=[(1, 0)], g=[(1, 1), (2, 1)], max_rank=2)
    for key in ("rank1", "rank5", "rank10", "mAP", "mINP"):
        assert type(res[key]) is float
    assert isinstance(res["cmc"], np.ndarray)
    assert type(res["num_valid_queries"]) is int and type(res["num_skipped_queries"]) is int


# -- invalid inputs --------------------------------------------------------------------


def test_shape_mismatch_names_the_shapes():
    d = np.zeros((2, 3))
    ok_q, ok_g = np.array([1, 2]), np.array([1, 2, 3])
    with pytest.raises(ValueError, match=r"g_pids.*\(3,\).*\(2, 3\).*\(4,\)"):
        evaluate_ranking(d, ok_q, np.arange(4), ok_q, ok_g)
    with pytest.raises(ValueError, match=r"q_camids.*\(2,\).*\(2, 3\).*\(1,\)"):
        evaluate_ranking(d, ok_q, ok_g, np.array([0]), ok_g)
    with pytest.raises(ValueError, match=r"2-D.*\(3,\)"):
        evaluate_ranking(np.zeros(3), ok_q, ok_g, ok_q, ok_g)


def test_nan_distances_raise():
    d = np.array([[0.1, np.nan]])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_ranking(d, np.array([1]), np.array([1, 2]), np.array([0]), np.array([1, 1]))


@pytest.mark.parametrize("max_rank", [0, -3, 2.5, True])
def test_bad_max_rank_raises(max_rank):
    with pytest.raises(ValueError, match="max_rank"):
        _eval([[0.1, 0.2]], q=[(1, 0)], g=[(1, 1), (2, 1)], max_rank=max_rank)


def test_non_integer_ids_raise():
    with pytest.raises(ValueError, match="q_pids.*integer"):
        evaluate_ranking(np.zeros((1, 1)), np.array(["a"]), np.array([1]), np.array([0]), np.array([1]))


def test_no_valid_query_raises():
    with pytest.raises(ValueError, match="no query has a valid match"):
        _eval([[0.1, 0.2]], q=[(1, 0)], g=[(2, 1), (1, 0)])


def test_empty_gallery_raises():
    with pytest.raises(ValueError, match="no query has a valid match"):
        evaluate_ranking(np.zeros((1, 0)), [1], [], [0], [])


# -- against an independent per-query reference ----------------------------------------


@pytest.mark.parametrize("seed", range(150))
def test_matches_reference_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    nq, ng = int(rng.integers(1, 10)), int(rng.integers(1, 90))
    max_rank = int(rng.integers(1, 60))  # often longer than the gallery
    q_pids = rng.integers(1, 6, nq)
    q_cams = rng.integers(0, 3, nq)
    g_pids = rng.choice([-1, 0, 1, 2, 3, 4, 5], size=ng, p=[0.1, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15])
    g_cams = rng.integers(0, 3, ng)
    if seed % 2:
        distmat = rng.integers(0, 6, (nq, ng)).astype(np.float32)  # many ties
    else:
        distmat = rng.random((nq, ng)).astype(np.float32)
        distmat[:, rng.random(ng) < 0.3] = 0.5  # whole tied columns
    _assert_matches_reference(distmat, q_pids, g_pids, q_cams, g_cams, max_rank)


def test_chunked_evaluation_matches_reference(monkeypatch):
    # force many small chunks (a few queries each) to exercise the chunk boundaries
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", 200)
    rng = np.random.default_rng(7)
    nq, ng = 40, 70
    distmat = rng.integers(0, 10, (nq, ng)).astype(np.float64)
    q_pids, q_cams = rng.integers(1, 8, nq), rng.integers(0, 4, nq)
    g_pids, g_cams = rng.integers(-1, 8, ng), rng.integers(0, 4, ng)
    _assert_matches_reference(distmat, q_pids, g_pids, q_cams, g_cams, 20)


# -- helpers ---------------------------------------------------------------------------


def _eval(distmat, q, g, max_rank=10):
    """evaluate_ranking with queries/gallery given as lists of (pid, camid)."""
    q_pids, q_cams = (np.array([x[i] for x in q], dtype=np.int64) for i in (0, 1))
    g_pids, g_cams = (np.array([x[i] for x in g], dtype=np.int64) for i in (0, 1))
    return evaluate_ranking(np.asarray(distmat), q_pids, g_pids, q_cams, g_cams, max_rank=max_rank)


def _reference(distmat, q_pids, g_pids, q_cams, g_cams, max_rank):
    """The protocol written straight from its definition, one query at a time."""
    aps, inps, first_hits, cmcs = [], [], [], []
    for i in range(len(q_pids)):
        kept = [
            j
            for j in range(len(g_pids))
            if g_pids[j] != -1 and not (g_pids[j] == q_pids[i] and g_cams[j] == q_cams[i])
        ]
        ranked = sorted(kept, key=lambda j: (distmat[i, j], j))  # ties: earlier gallery index first
        hits = [g_pids[j] == q_pids[i] for j in ranked]
        pos_ranks = [r + 1 for r, hit in enumerate(hits) if hit]  # 1-based positions of positives
        if not pos_ranks:
            continue
        precisions = [(n + 1) / rank for n, rank in enumerate(pos_ranks)]  # precision@k at each positive
        aps.append(sum(precisions) / len(precisions))
        inps.append(len(pos_ranks) / pos_ranks[-1])
        first_hits.append(pos_ranks[0])
        cmcs.append([1.0 if pos_ranks[0] <= k else 0.0 for k in range(1, max_rank + 1)])
    if not aps:
        return None
    return {
        "rank1": 100 * np.mean([r <= 1 for r in first_hits]),
        "rank5": 100 * np.mean([r <= 5 for r in first_hits]),
        "rank10": 100 * np.mean([r <= 10 for r in first_hits]),
        "mAP": 100 * np.mean(aps),
        "mINP": 100 * np.mean(inps),
        "cmc": 100 * np.mean(cmcs, axis=0),
        "num_valid_queries": len(aps),
        "num_skipped_queries": len(q_pids) - len(aps),
    }


def _assert_matches_reference(distmat, q_pids, g_pids, q_cams, g_cams, max_rank):
    expected = _reference(distmat, q_pids, g_pids, q_cams, g_cams, max_rank)
    if expected is None:
        with pytest.raises(ValueError, match="no query has a valid match"):
            evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank)
        return
    got = evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank)
    for key in ("rank1", "rank5", "rank10", "mAP", "mINP"):
        assert got[key] == pytest.approx(expected[key], abs=1e-9), key
    np.testing.assert_allclose(got["cmc"], expected["cmc"], atol=1e-9)
    assert got["num_valid_queries"] == expected["num_valid_queries"]
    assert got["num_skipped_queries"] == expected["num_skipped_queries"]
