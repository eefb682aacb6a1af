"""The Market-1501 metrics straight from embeddings, under a memory cap, on CPU or GPU.

`evaluate_embeddings` takes query and gallery embeddings: one query block at a time, distances (a
GEMM), then each query's same-pid gallery entries placed in its ranking of the whole gallery
(`protocol.RankingAccumulator`), so only one block of the distance matrix exists. It equals
`protocol.evaluate_ranking(distances.pairwise_distance(...))` exactly on the CPU. `split.evaluate` (what
bench, drift, INT8 search and training call) ranks with it.
"""

from __future__ import annotations

import time

import numpy as np

from . import blocks
from .blocks import DEFAULT_CHUNK_BYTES, MIN_BLOCK, TORCH_ENTRY_BYTES
from .protocol import RankingAccumulator, evaluate_ranking

__all__ = ["evaluate_embeddings"]

_EVAL_ROWS = 1024  # query rows per block: big enough for the GEMM, small in cache


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
    fewer than two rows): GEMM, then `protocol.RankingAccumulator` finds where each query's
    same-pid gallery entries land in its ranking of the whole gallery (by counting the order
    keys ahead of them; a full sort on a GPU) and keeps only that. Exact: no top-k cut-off.
    On top of the block: normalised copies of both inputs and O(rows x gallery) bytes of
    per-query temporaries.

    Args:
        q_emb, g_emb: embeddings, (num_query, dim) and (num_gallery, dim).
        q_pids, g_pids, q_camids, g_camids, max_rank: as for `protocol.evaluate_ranking`.
        metric, device, half, chunk_bytes: as for `distances.topk`.
        rerank: rank by `rerank.k_reciprocal_rerank` distances (default parameters; it builds
            the full (num_query, num_gallery) matrix and costs far more: see `rerank_seconds`).

    Returns:
        The dict of `evaluate_ranking`, plus `seconds` (wall time of the call) and, with
        `rerank`, `rerank_seconds` (the re-ranking alone).
    """
    start_time = time.perf_counter()
    blocks.check_metric(metric)
    query, gallery = blocks.check_features(q_emb, g_emb)
    for name, ids, emb_name, emb in (("q_pids", q_pids, "q_emb", query), ("q_camids", q_camids, "q_emb", query),
                                     ("g_pids", g_pids, "g_emb", gallery), ("g_camids", g_camids, "g_emb", gallery)):
        if np.shape(ids) != (emb.shape[0],):
            raise ValueError(f"{name} must have shape ({emb.shape[0]},) to match {emb_name} with shape "
                             f"{emb.shape}, got shape {np.shape(ids)}")
    if rerank:
        from .rerank import k_reciprocal_rerank  # lazy: scipy.sparse only when asked

        blocks.torch_device(device, half)  # reject a bad device even though re-ranking runs on the CPU
        distmat = k_reciprocal_rerank(query, gallery, metric=metric)
        rerank_seconds = time.perf_counter() - start_time
        result = evaluate_ranking(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank)
        return {**result, "seconds": time.perf_counter() - start_time, "rerank_seconds": rerank_seconds}
    if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
    accumulator = RankingAccumulator(q_pids, g_pids, q_camids, g_camids)
    torch_device = blocks.torch_device(device, half)
    num_query, num_gallery = query.shape[0], gallery.shape[0]
    entry_bytes = TORCH_ENTRY_BYTES if torch_device else blocks.entry_bytes(query.dtype, keys=False)
    rows = max(MIN_BLOCK, chunk_bytes // max(1, num_gallery * entry_bytes))
    if torch_device:
        from .distances_torch import evaluate_blocks  # lazy: torch only for a GPU

        evaluate_blocks(query, gallery, accumulator, metric, rows, torch_device, half)
    else:
        q, g = blocks.prepare(query, metric), blocks.prepare(gallery, metric)
        spans = blocks.spans(num_query, min(rows, _EVAL_ROWS))
        # one buffer for every block: mapping fresh pages for each block costs more than its sort
        buffer = np.empty((max(b - a for a, b in spans), num_gallery), np.float32) if spans else None
        for q0, q1 in spans:
            block = blocks.distance_block(blocks.take(q, q0, q1), g, metric, out=buffer[: q1 - q0])
            blocks.reject_nan(block)
            accumulator.add(block, q0)
    return {**accumulator.result(max_rank), "seconds": time.perf_counter() - start_time}


