"""Re-ID evaluation metrics: CMC, mAP and mINP under the official Market-1501 protocol.

Plain numpy, no I/O. `evaluate_ranking` takes a query x gallery distance matrix and the
person / camera ids of both sides; `reid_export.ranking.pairwise_distance` builds that matrix.

The protocol, per query:

* gallery images with pid -1 (junk) are ignored;
* gallery images with the query's pid *and* the query's camera are ignored (the same person
  seen by the same camera is too easy a match);
* everything else stays, distractors (pid 0, "0000" in file names) included, and counts as a
  negative unless its pid equals the query's pid;
* positions ("ranks") are counted in that filtered list, 1-based.

AP is the non-interpolated average precision of torchreid / fast-reid: the mean, over the
query's positives, of the precision at each positive's rank. (The original Market-1501
MATLAB kit interpolates precision between neighbouring recall points, so its mAP differs
from this one by a small fraction of a percent.)
"""

from __future__ import annotations

import numpy as np

__all__ = ["evaluate_ranking"]

_JUNK_PID = -1
_NEGATIVE, _POSITIVE, _IGNORED = 0, 1, 2
_CHUNK_ELEMENTS = 1 << 22  # distance-matrix entries ranked at once: bounds working memory (~70 MB)


def evaluate_ranking(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
) -> dict:
    """Rank the gallery for every query and score the rankings (Market-1501 protocol).

    Args:
        distmat: distances of shape (num_query, num_gallery); smaller means closer. Any real
            dtype; NaN is rejected, +/-inf is allowed.
        q_pids, g_pids: person ids of the queries and the gallery images; -1 marks junk
            gallery images, 0 marks distractors.
        q_camids, g_camids: camera ids of the queries and the gallery images.
        max_rank: length of the returned CMC curve. When a query's filtered gallery is shorter,
            the curve is padded: a hit stays a hit up to `max_rank`.

    Ties: equal distances are ranked by gallery order, the lower gallery index first
    (a stable sort, `np.argsort(kind="stable")`), so results are deterministic and do not
    depend on the sorting algorithm numpy picks.

    Queries with no positive left after filtering are skipped and counted in
    `num_skipped_queries`; they do not enter any average.

    Returns:
        A dict with `rank1`, `rank5`, `rank10`, `mAP`, `mINP` (percent, 0-100 floats),
        `cmc` (float64 array of length `max_rank`, percent; `cmc[k - 1]` is rank-k accuracy),
        `num_valid_queries` and `num_skipped_queries`.

    Raises:
        ValueError: on mismatched shapes, NaN distances, a non-positive `max_rank`, or when
            no query has a valid positive in the gallery.
    """
    distmat, q_pids, g_pids, q_camids, g_camids = _check_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids, max_rank
    )
    num_query, num_gallery = distmat.shape
    chunk = max(1, _CHUNK_ELEMENTS // max(1, num_gallery))

    first, last, ap, num_pos = [], [], [], []
    for start in range(0, num_query, chunk):
        stop = min(start + chunk, num_query)
        stats = _rank_chunk(
            distmat[start:stop], q_pids[start:stop], q_camids[start:stop], g_pids, g_camids
        )
        for acc, value in zip((first, last, ap, num_pos), stats):
            acc.append(value)
    first_rank = np.concatenate(first)
    last_rank = np.concatenate(last)
    ap_all = np.concatenate(ap)
    num_pos_all = np.concatenate(num_pos)

    valid = num_pos_all > 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError(
            f"no query has a valid match: all {num_query} queries lack a gallery image with the same "
            "pid from a different camera (after dropping junk pid -1); check that q_pids/g_pids and "
            "q_camids/g_camids come from the same data set split and are not swapped"
        )
    first_rank = first_rank[valid]
    inp = num_pos_all[valid] / last_rank[valid]

    def rank_k(k: int) -> float:
        return float(np.mean(first_rank <= k) * 100.0)

    ks = np.arange(1, max_rank + 1)
    cmc = (first_rank[None, :] <= ks[:, None]).mean(axis=1) * 100.0
    return {
        "rank1": rank_k(1),
        "rank5": rank_k(5),
        "rank10": rank_k(10),
        "mAP": float(ap_all[valid].mean() * 100.0),
        "mINP": float(inp.mean() * 100.0),
        "cmc": cmc,
        "num_valid_queries": num_valid,
        "num_skipped_queries": num_query - num_valid,
    }


# -- private helpers -------------------------------------------------------------------


def _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    distmat = np.asarray(distmat)
    if distmat.ndim != 2:
        raise ValueError(
            f"distmat must be 2-D (num_query, num_gallery), got shape {distmat.shape}"
        )
    if not (np.issubdtype(distmat.dtype, np.floating) or np.issubdtype(distmat.dtype, np.integer)):
        raise ValueError(f"distmat must hold real numbers, got dtype {distmat.dtype}")
    num_query, num_gallery = distmat.shape
    ids = {}
    for name, value, n, side in (
        ("q_pids", q_pids, num_query, "rows (queries)"),
        ("q_camids", q_camids, num_query, "rows (queries)"),
        ("g_pids", g_pids, num_gallery, "columns (gallery)"),
        ("g_camids", g_camids, num_gallery, "columns (gallery)"),
    ):
        arr = np.asarray(value)
        if arr.shape != (n,):
            raise ValueError(
                f"{name} must have shape ({n},) to match the {side} of distmat with shape "
                f"{distmat.shape}, got shape {arr.shape}"
            )
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must hold integer ids, got dtype {arr.dtype}")
        ids[name] = arr
    if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
    if np.issubdtype(distmat.dtype, np.floating) and np.isnan(distmat).any():
        bad = int(np.isnan(distmat).sum())
        raise ValueError(
            f"distmat contains {bad} NaN value(s) out of {distmat.size}; NaN cannot be ranked - "
            "check the embeddings for NaN (e.g. a diverged model or a zero-norm division)"
        )
    return distmat, ids["q_pids"], ids["g_pids"], ids["q_camids"], ids["g_camids"]


def _rank_chunk(distmat, q_pids, q_camids, g_pids, g_camids):
    """Per-query first/last positive rank, AP and positive count for a block of queries.

    Invalid gallery entries are masked, not removed, so every row keeps the same length and
    the work stays vectorised; ranks are counted over the valid entries only.
    """
    # status of each gallery entry for each query, in gallery order
    same_pid = g_pids[None, :] == q_pids[:, None]
    ignored = (g_pids[None, :] == _JUNK_PID) | (same_pid & (g_camids[None, :] == q_camids[:, None]))
    status = np.where(same_pid, np.int8(_POSITIVE), np.int8(_NEGATIVE))
    status[ignored] = _IGNORED

    order = np.argsort(distmat, axis=1, kind="stable")
    status = np.take_along_axis(status, order, axis=1)
    del order

    # 1-based position of each entry among the valid entries of its row
    valid_rank = np.cumsum(status != _IGNORED, axis=1, dtype=np.int32)
    rows, cols = np.nonzero(status == _POSITIVE)  # row-major: positives of a row in rank order
    pos_rank = valid_rank[rows, cols].astype(np.float64)

    num_rows = distmat.shape[0]
    num_pos = np.bincount(rows, minlength=num_rows)
    row_start = np.concatenate(([0], np.cumsum(num_pos)[:-1]))
    # the j-th positive of a row (1-based) has j positives at or above it: precision = j / rank
    nth = np.arange(rows.size) - row_start[rows] + 1
    ap = np.bincount(rows, weights=nth / pos_rank, minlength=num_rows).astype(np.float64)

    has_pos = num_pos > 0
    ap[has_pos] /= num_pos[has_pos]
    first = np.zeros(num_rows)
    last = np.ones(num_rows)
    first[has_pos] = pos_rank[row_start[has_pos]]
    last[has_pos] = pos_rank[row_start[has_pos] + num_pos[has_pos] - 1]
    return first, last, ap, num_pos
