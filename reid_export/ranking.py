"""Query-to-gallery distances, top-k and ranking metrics, in blocks under a memory cap, on CPU or GPU.

* `pairwise_distance`: the full distance matrix, the input of `metrics.evaluate_ranking`.
* `topk`: the k closest gallery entries of every query, never holding the whole matrix.
* `evaluate_embeddings`: the Market-1501 metrics straight from embeddings: one query block at a
  time, distances (a GEMM), then each query's same-pid gallery entries placed in its ranking of
  the whole gallery (`metrics.RankingAccumulator`), so only one block of the matrix exists.
* `stable_argsort`: `np.argsort(kind="stable")` of float32 rows, through a plain integer sort.

Order and ties: by distance, equal distances by gallery index (lower first), -0.0 equal to 0.0;
the order of `evaluate_ranking`. Both devices carry it in `metrics.order_keys` integers (distance
bits above the gallery index), so CPU and GPU break ties the same way. (Their GEMMs round
differently, so near-equal distances can still come out in another order on another device.)

Devices: "cpu" runs numpy (and its BLAS); "cuda" / "cuda:N" runs torch (`ranking_torch`,
imported only then) in float32, or with `half=True` an FP16 GEMM (about 3 significant digits
per distance). Blocks on the CPU use the same arithmetic as `pairwise_distance`, and OpenBLAS
gives a block of at least two rows and columns bit-identical distances (the tests check it),
so `evaluate_embeddings` equals `evaluate_ranking(pairwise_distance(...))` exactly and `topk`
does not depend on `chunk_bytes` (a one-row block would run GEMV, which rounds differently:
blocks never have one row or column unless the input does).
"""

from __future__ import annotations

import time

import numpy as np

from .errors import RuntimeUnavailable
from .metrics import _MAX_KEY, RankingAccumulator, evaluate_ranking, order_keys

__all__ = ["pairwise_distance", "topk", "evaluate_embeddings", "stable_argsort", "METRICS", "DEFAULT_CHUNK_BYTES"]

METRICS = ("cosine", "euclidean")
DEFAULT_CHUNK_BYTES = 256 << 20  # working memory of one block: distances, order keys, masks
_MIN_BLOCK = 2  # rows / columns per block: one would switch BLAS from GEMM to GEMV (other rounding)
_GEMM_ROWS = 256  # query rows per block once the gallery has to be split: keeps the GEMM efficient
_SAMPLE_STRIDE = 16  # top-k: every 16th distance of a row sets its candidate threshold
_EVAL_ROWS = 1024  # query rows per block in evaluate_embeddings: big enough for the GEMM, small in cache
_TORCH_ENTRY_BYTES = 40  # GPU bytes per block entry: distances, keys, sorted keys and sort indices


def pairwise_distance(query: np.ndarray, gallery: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Distance from every query row to every gallery row; smaller means closer.

    Args:
        query: embeddings of shape (num_query, dim).
        gallery: embeddings of shape (num_gallery, dim).
        metric: "cosine" (1 - cosine similarity, in [0, 2]; rows are L2-normalised here, and an
            all-zero row has similarity 0 to everything, i.e. distance 1) or "euclidean"
            (plain L2 distance, via |q|^2 + |g|^2 - 2 q.g clipped at 0 before the square root).

    Returns:
        float32 array of shape (num_query, num_gallery). float64 inputs are computed in float64
        and rounded at the end; everything else is computed in float32.

    Raises:
        ValueError: for an unknown metric, inputs that are not 2-D real arrays, or a feature
            dimension that differs between query and gallery.
    """
    _check_metric(metric)
    query, gallery = _check_features(query, gallery)
    return _distance_block(_prepare(query, metric), _prepare(gallery, metric), metric)


def topk(
    query: np.ndarray,
    gallery: np.ndarray,
    k: int = 100,
    *,
    metric: str = "cosine",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    device: str = "cpu",
    half: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The k closest gallery entries of every query, closest first (ties: lower gallery index first).

    Blocks of queries x gallery are computed so that one block's working memory stays under
    `chunk_bytes` (13 bytes per float32 entry on the CPU, 40 on a GPU); the gallery is split only
    when fewer than 256 full query rows fit, and then read once. The k smallest of each block row
    are found exactly - a threshold sampled from every 16th distance lets about 3k candidates
    through, which get order keys and are sorted (`torch.topk` on a GPU) - then merged with the
    k best of the earlier gallery blocks; ties at the k-th place are resolved by gallery index.
    On top of the blocks: a normalised copy of the queries and of one gallery block, and (Q, k).

    Args:
        query, gallery: embeddings, (num_query, dim) and (num_gallery, dim).
        k: entries per query, 1 <= k <= num_gallery.
        metric, device, half: see the module docstring and `pairwise_distance`.
        chunk_bytes: working-memory cap of one block; never below a 2 x 2 block.

    Returns:
        `(indices, distances)`: int64 and float32, shape (num_query, k); the distances are those
        of `pairwise_distance` (on the CPU bit for bit, -0.0 returned as 0.0).

    Raises:
        ValueError: bad metric, device, k or inputs, or NaN distances.
        RuntimeUnavailable: device "cuda" without a CUDA device.
    """
    _check_metric(metric)
    query, gallery = _check_features(query, gallery)
    num_query, num_gallery = query.shape[0], gallery.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= num_gallery:
        raise ValueError(f"k must be an integer from 1 to the gallery size {num_gallery}, got {k!r}")
    torch_device = _torch_device(device, half)
    entry_bytes = _TORCH_ENTRY_BYTES if torch_device else _entry_bytes(query.dtype, keys=True)
    rows, cols = _plan(num_query, num_gallery, k, entry_bytes, chunk_bytes)
    if torch_device:
        from .ranking_torch import topk_keys

        return _split_keys(topk_keys(query, gallery, k, metric, rows, cols, torch_device, half))
    q = _prepare(query, metric)
    best = np.full((num_query, k), _MAX_KEY, np.int64)
    q_spans, g_spans = _spans(num_query, rows), _spans(num_gallery, cols)
    # one buffer for every block: mapping fresh pages for each block costs more than its work
    distances = np.empty((max(b - a for a, b in q_spans), max(b - a for a, b in g_spans)), np.float32)
    normalised = np.empty((distances.shape[1], gallery.shape[1]), gallery.dtype) if metric == "cosine" else None
    for g0, g1 in g_spans:  # gallery outside: each gallery block is read from memory once
        g = _prepare(gallery[g0:g1], metric, out=normalised)
        for q0, q1 in q_spans:
            block = _distance_block(_take(q, q0, q1), g, metric, out=distances[: q1 - q0, : g1 - g0])
            _reject_nan(block)
            found = _smallest_keys(block, k, np.arange(g0, g1))
            if len(g_spans) > 1:  # merge with the k best of the earlier gallery blocks
                found = np.sort(np.concatenate([best[q0:q1], found], axis=1), axis=1)[:, :k]
            best[q0:q1] = found
    return _split_keys(best)


def evaluate_embeddings(
    q_emb: np.ndarray,
    g_emb: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    *,
    metric: str = "cosine",
    device: str = "cpu",
    rerank: bool = False,
    max_rank: int = 50,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    half: bool = False,
) -> dict:
    """Market-1501 metrics from embeddings; equal to `evaluate_ranking(pairwise_distance(...))`.

    One block of queries at a time, each row against the whole gallery (at most 1024 rows and
    `chunk_bytes` at 4 bytes per entry on the CPU - 12 for float64 - and 40 on a GPU; never
    fewer than two rows): GEMM, then `metrics.RankingAccumulator` finds where each query's
    same-pid gallery entries land in its ranking of the whole gallery (by counting the order
    keys ahead of them; a full sort on a GPU) and keeps only that. Exact: no top-k cut-off.
    On top of the block: normalised copies of both inputs and O(rows x gallery) bytes of
    per-query temporaries.

    Args:
        q_emb, g_emb: embeddings, (num_query, dim) and (num_gallery, dim).
        q_pids, g_pids, q_camids, g_camids, max_rank: as for `metrics.evaluate_ranking`.
        metric, device, half, chunk_bytes: as for `topk`.
        rerank: rank by `rerank.k_reciprocal_rerank` distances (default parameters; it builds
            the full (num_query, num_gallery) matrix and costs far more: see `rerank_seconds`).

    Returns:
        The dict of `evaluate_ranking`, plus `seconds` (wall time of the call) and, with
        `rerank`, `rerank_seconds` (the re-ranking alone).
    """
    start_time = time.perf_counter()
    _check_metric(metric)
    query, gallery = _check_features(q_emb, g_emb)
    for name, ids, emb_name, emb in (("q_pids", q_pids, "q_emb", query), ("q_camids", q_camids, "q_emb", query),
                                     ("g_pids", g_pids, "g_emb", gallery), ("g_camids", g_camids, "g_emb", gallery)):
        if np.shape(ids) != (emb.shape[0],):
            raise ValueError(f"{name} must have shape ({emb.shape[0]},) to match {emb_name} with shape "
                             f"{emb.shape}, got shape {np.shape(ids)}")
    if rerank:
        from .rerank import k_reciprocal_rerank

        _torch_device(device, half)  # reject a bad device even though re-ranking runs on the CPU
        distmat = k_reciprocal_rerank(query, gallery, metric=metric)
        rerank_seconds = time.perf_counter() - start_time
        result = evaluate_ranking(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank)
        return {**result, "seconds": time.perf_counter() - start_time, "rerank_seconds": rerank_seconds}
    if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
    accumulator = RankingAccumulator(q_pids, g_pids, q_camids, g_camids)
    torch_device = _torch_device(device, half)
    num_query, num_gallery = query.shape[0], gallery.shape[0]
    entry_bytes = _TORCH_ENTRY_BYTES if torch_device else _entry_bytes(query.dtype, keys=False)
    rows = max(_MIN_BLOCK, chunk_bytes // max(1, num_gallery * entry_bytes))
    if torch_device:
        from .ranking_torch import evaluate_blocks

        evaluate_blocks(query, gallery, accumulator, metric, rows, torch_device, half)
    else:
        q, g = _prepare(query, metric), _prepare(gallery, metric)
        spans = _spans(num_query, min(rows, _EVAL_ROWS))
        # one buffer for every block: mapping fresh pages for each block costs more than its sort
        buffer = np.empty((max(b - a for a, b in spans), num_gallery), np.float32) if spans else None
        for q0, q1 in spans:
            block = _distance_block(_take(q, q0, q1), g, metric, out=buffer[: q1 - q0])
            _reject_nan(block)
            accumulator.add(block, q0)
    return {**accumulator.result(max_rank), "seconds": time.perf_counter() - start_time}


def stable_argsort(distances: np.ndarray) -> np.ndarray:
    """`np.argsort(distances, axis=-1, kind="stable")` for 1-D or 2-D distances, NaN rejected.

    float32 (and float16) rows are sorted as `metrics.order_keys` integers, a plain `np.sort`
    several times faster than numpy's stable argsort; other dtypes use the stable argsort.
    """
    distances = np.asarray(distances)
    if distances.ndim not in (1, 2):
        raise ValueError(f"stable_argsort takes 1-D or 2-D distances, got shape {distances.shape}")
    _reject_nan(distances)
    if distances.dtype not in (np.float32, np.float16):
        return np.argsort(distances, axis=-1, kind="stable")
    keys = order_keys(np.atleast_2d(distances).astype(np.float32, copy=False))
    keys.sort(axis=1)
    return (keys & 0xFFFFFFFF).reshape(distances.shape)


# -- private helpers -------------------------------------------------------------------


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of: {', '.join(METRICS)}")


def _check_features(query, gallery) -> tuple[np.ndarray, np.ndarray]:
    query, gallery = np.asarray(query), np.asarray(gallery)
    for name, arr in (("query", query), ("gallery", gallery)):
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D (num_samples, dim), got shape {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query and gallery feature dimensions differ: query has shape {query.shape}, gallery "
            f"has shape {gallery.shape}; embed both with the same model"
        )
    dtype = np.float64 if np.float64 in (query.dtype, gallery.dtype) else np.float32
    return query.astype(dtype, copy=False), gallery.astype(dtype, copy=False)


def _prepare(x: np.ndarray, metric: str, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows as the GEMM needs them: L2-normalised (cosine; into `out[:len(x)]` if given), or with
    their squared norms (euclidean)."""
    squares = np.einsum("ij,ij->i", x, x)  # no (rows, dim) temporary, unlike np.linalg.norm
    if metric == "cosine":
        norms = np.maximum(np.sqrt(squares), np.finfo(x.dtype).tiny)[:, None]
        return np.divide(x, norms, out=None if out is None else out[: len(x)]), None
    return x, squares


def _take(prepared, start: int, stop: int):
    x, sq = prepared
    return x[start:stop], None if sq is None else sq[start:stop]


def _distance_block(q, g, metric: str, out: np.ndarray | None = None) -> np.ndarray:
    """float32 distances between prepared rows; the one formula behind every function here.

    `out`: a float32 buffer of the block's shape to reuse (float32 inputs only).
    """
    (qx, q_sq), (gx, g_sq) = q, g
    dist = np.matmul(qx, gx.T, out=out if qx.dtype == np.float32 else None)
    if metric == "cosine":
        np.subtract(1.0, dist, out=dist)
        np.clip(dist, 0.0, 2.0, out=dist)  # rounding can step just outside [0, 2]
    else:
        dist *= -2.0
        dist += q_sq[:, None]
        dist += g_sq[None, :]
        np.maximum(dist, 0.0, out=dist)  # the GEMM trick can round a little below 0
        np.sqrt(dist, out=dist)
    return dist.astype(np.float32, copy=False)


def _reject_nan(distances: np.ndarray) -> None:
    # min() propagates NaN: one pass, no temporary array
    if np.issubdtype(distances.dtype, np.floating) and distances.size and np.isnan(distances.min()):
        raise ValueError(
            f"{int(np.isnan(distances).sum())} distance(s) are NaN; NaN cannot be ranked - check the "
            "embeddings for NaN or inf (e.g. a diverged model)"
        )


def _entry_bytes(dtype, keys: bool) -> int:
    """CPU bytes per block entry: distances (+ their float32 copy), order key and a temporary."""
    itemsize = np.dtype(dtype).itemsize
    return itemsize + (4 if itemsize > 4 else 0) + (9 if keys else 0)


def _plan(num_query: int, num_gallery: int, k: int, entry_bytes: int, cap: int) -> tuple[int, int]:
    """Query rows and gallery columns per block, with rows * (cols * entry_bytes + 8 k) <= cap."""
    whole_rows = cap // (num_gallery * entry_bytes + 8 * k)
    if whole_rows >= min(num_query, _GEMM_ROWS):
        return max(_MIN_BLOCK, whole_rows), num_gallery
    rows = min(num_query, _GEMM_ROWS)
    while rows > _MIN_BLOCK and cap // rows < 8 * k + _MIN_BLOCK * entry_bytes:
        rows = max(_MIN_BLOCK, rows // 2)
    return rows, max(_MIN_BLOCK, (cap // rows - 8 * k) // entry_bytes)


def _spans(total: int, size: int) -> list[tuple[int, int]]:
    """`total` split into near-equal (start, stop) spans of at most `size`, none of one item."""
    count = max(1, -(-total // max(1, size)))
    if count > 1 and total // count < _MIN_BLOCK:
        count = max(1, total // _MIN_BLOCK)
    edges = [total * i // count for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _smallest_keys(block: np.ndarray, k: int, index: np.ndarray) -> np.ndarray:
    """The k smallest order keys of each row of a float32 block, sorted; padded with `_MAX_KEY`.

    Exact, and cheaper than partitioning every row: the 3k/16-th smallest of every 16th entry is
    a threshold that lets through about 3k entries of a row (fewer than k in well under 1% of
    rows, which then get their exact k-th distance instead); only those entries get keys and
    are sorted.
    """
    num_rows, num_cols = block.shape
    if num_cols <= 4 * k:  # small block: key and sort everything
        keys = order_keys(block, index)
        keys.sort(axis=1)
        return np.pad(keys[:, :k], ((0, 0), (0, max(0, k - num_cols))), constant_values=_MAX_KEY)
    rank = 3 * k // _SAMPLE_STRIDE
    threshold = np.partition(block[:, ::_SAMPLE_STRIDE], rank, axis=1)[:, rank]
    rows, cols = np.divmod(np.flatnonzero(block <= threshold[:, None]), num_cols)
    counts = np.bincount(rows, minlength=num_rows)
    short = counts < k
    if short.any():  # the sample misled these rows: use their exact k-th smallest distance
        threshold[short] = np.partition(block[short], k - 1, axis=1)[:, k - 1]
        rows, cols = np.divmod(np.flatnonzero(block <= threshold[:, None]), num_cols)
        counts = np.bincount(rows, minlength=num_rows)
    slot = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)  # place within its row
    keys = np.full((num_rows, counts.max()), _MAX_KEY, np.int64)
    keys[rows, slot] = order_keys(block[rows, cols][None, :], index[cols])[0]
    keys.sort(axis=1)
    return keys[:, :k]


def _split_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order keys back to (gallery index, float32 distance): the inverse of `order_keys`."""
    high = (keys >> 32).astype(np.int32)
    bits = np.where(high < 0, np.negative(high) | np.int32(-(1 << 31)), high)
    return keys & 0xFFFFFFFF, bits.view(np.float32)


def _torch_device(device: str, half: bool):
    """None for numpy on the CPU, else the torch device (CUDA checked)."""
    if device == "cpu":
        if half:
            raise ValueError("half=True (an FP16 GEMM) needs device='cuda'; on the CPU distances are float32")
        return None
    if not isinstance(device, str) or not (device == "cuda" or device.startswith("cuda:")):
        raise ValueError(f"unknown device {device!r}; use 'cpu' or 'cuda' (or 'cuda:N')")
    import torch

    if not torch.cuda.is_available():
        raise RuntimeUnavailable(
            f"ranking on {device!r}: no CUDA device (torch.cuda.is_available() is False); use device='cpu'"
        )
    return torch.device(device)
