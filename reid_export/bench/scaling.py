"""How `evaluation.distances.topk` scales with the gallery: time, memory and, where installed, faiss for comparison.

    python -m reid_export.bench.scaling --sizes 15913 1000000 --dim 512 --queries 1000

Synthetic embeddings (standard normal, float32; generated in blocks so that a 1,000,000 x 512
gallery costs its 2 GB and nothing more). Each size gets one warm-up call on a small slice, then
one measured `topk` call. `faiss-cpu` (`pip install faiss-cpu`) is optional: with it, each row
also times an exact flat inner-product index (`IndexFlatIP`, on L2-normalised rows: the same
cosine ranking) and reports how many of its top-k indices agree with ours.
"""

from __future__ import annotations

import resource
import sys
import time
import tracemalloc

import numpy as np

from ..evaluation.blocks import DEFAULT_CHUNK_BYTES, entry_bytes, plan, prepare, spans
from ..evaluation.distances import topk

__all__ = ["scaling_benchmark", "faiss_topk", "MARKET_GALLERY"]

MARKET_GALLERY = 15913  # Market-1501 bounding_box_test
_GENERATE_ROWS = 65536  # rows drawn at a time when building a synthetic gallery
_MB = 1 << 20


def scaling_benchmark(
    sizes=(MARKET_GALLERY, 100_000, 1_000_000),
    *,
    dim: int = 512,
    queries: int = 1000,
    k: int = 100,
    device: str = "cpu",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    faiss: bool = True,
    gemm_baseline: bool = True,
    seed: int = 0,
    verbose: bool = False,
) -> list[dict]:
    """One row per gallery size; a size that fails gives a row with `error` instead of a crash.

    Row keys: `gallery_size`, `queries`, `dim`, `k`, `device`, `seconds` (the `topk` call),
    `queries_per_sec`, `gemm_seconds` (the bare similarity GEMMs over the same blocks, CPU only:
    the floor `topk` can approach), `gallery_mb` (the input itself), `peak_alloc_mb` (CPU: peak
    numpy memory allocated during the call, by `tracemalloc`, on top of the inputs; CUDA: peak
    GPU memory by `torch.cuda.max_memory_allocated`), `peak_rss_mb` (the process's peak resident
    memory so far, inputs included), and `faiss_seconds`, `faiss_queries_per_sec`,
    `faiss_agreement` (share of top-k indices equal to ours) or `faiss_error`.
    """
    rows = []
    rng = np.random.default_rng(seed)
    query = rng.standard_normal((queries, dim), dtype=np.float32)
    for size in sizes:
        row = {"gallery_size": int(size), "queries": queries, "dim": dim, "k": k, "device": device}
        try:
            gallery = _synthetic_gallery(size, dim, seed + 1)
            row["gallery_mb"] = round(gallery.nbytes / _MB, 1)
            row.update(_time_topk(query, gallery, k, device, chunk_bytes))
            if gemm_baseline and device == "cpu":
                row["gemm_seconds"] = round(_gemm_seconds(query, gallery, k, chunk_bytes), 3)
            if faiss:
                row.update(_time_faiss(query, gallery, k, row.pop("_indices")))
            row.pop("_indices", None)
            del gallery
        except Exception as e:  # noqa: BLE001 - a failed size is a row, the sweep goes on
            row["error"] = f"{type(e).__name__}: {e}"
        row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        rows.append(row)
        if verbose:
            print(row, file=sys.stderr, flush=True)
    return rows


def faiss_topk(query: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Exact cosine top-k with faiss `IndexFlatIP` on L2-normalised rows.

    Returns `(indices, distances, search_seconds)`, distances as 1 - similarity like `topk`
    (the index build is not timed). Raises ImportError, saying what to install, without faiss.
    """
    try:
        import faiss
    except ImportError as e:
        raise ImportError("faiss is not installed: `pip install faiss-cpu` (or the `faiss` extra)") from e
    index = faiss.IndexFlatIP(query.shape[1])
    for start, stop in spans(gallery.shape[0], _GENERATE_ROWS):
        index.add(prepare(np.ascontiguousarray(gallery[start:stop], dtype=np.float32), "cosine")[0])
    normalised = prepare(np.ascontiguousarray(query, dtype=np.float32), "cosine")[0]
    start_time = time.perf_counter()
    similarity, indices = index.search(normalised, k)
    seconds = time.perf_counter() - start_time
    return indices.astype(np.int64), (1.0 - similarity).astype(np.float32), seconds


# -- private helpers -------------------------------------------------------------------


def _synthetic_gallery(size: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gallery = np.empty((size, dim), np.float32)
    for start, stop in spans(size, _GENERATE_ROWS):
        gallery[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32)
    return gallery


def _time_topk(query, gallery, k, device, chunk_bytes) -> dict:
    warm = gallery[: min(len(gallery), 4 * k + 4096)]
    topk(query[: min(len(query), 64)], warm, k, device=device, chunk_bytes=chunk_bytes)  # threads, caches, CUDA
    if device == "cpu":
        tracemalloc.start()
        tracemalloc.reset_peak()
        start_time = time.perf_counter()
        indices, _ = topk(query, gallery, k, device=device, chunk_bytes=chunk_bytes)
        seconds = time.perf_counter() - start_time
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    else:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start_time = time.perf_counter()
        indices, _ = topk(query, gallery, k, device=device, chunk_bytes=chunk_bytes)  # returns host arrays: synced
        seconds = time.perf_counter() - start_time
        peak = torch.cuda.max_memory_allocated()
    return {
        "seconds": round(seconds, 3),
        "queries_per_sec": round(len(query) / seconds, 1),
        "peak_alloc_mb": round(peak / _MB, 1),
        "_indices": indices,
    }


def _gemm_seconds(query, gallery, k, chunk_bytes) -> float:
    """The similarity GEMMs alone, over the blocks `topk` would use (same plan, no ranking)."""
    rows, cols = plan(len(query), len(gallery), k, entry_bytes(query.dtype, keys=True), chunk_bytes)
    q = prepare(query, "cosine")
    q_spans, g_spans = spans(len(query), rows), spans(len(gallery), cols)
    buffer = np.empty((max(b - a for a, b in q_spans), max(b - a for a, b in g_spans)), np.float32)
    seconds = 0.0
    for g0, g1 in g_spans:
        g = prepare(gallery[g0:g1], "cosine")
        for q0, q1 in q_spans:
            start_time = time.perf_counter()
            np.matmul(q[0][q0:q1], g[0].T, out=buffer[: q1 - q0, : g1 - g0])
            seconds += time.perf_counter() - start_time
    return seconds


def _time_faiss(query, gallery, k, indices) -> dict:
    try:
        faiss_indices, _, seconds = faiss_topk(query, gallery, k)
    except ImportError as e:
        return {"faiss_error": str(e)}
    agreement = np.mean([np.intersect1d(a, b).size / k for a, b in zip(indices, faiss_indices)])
    return {
        "faiss_seconds": round(seconds, 3),
        "faiss_queries_per_sec": round(len(query) / seconds, 1),
        "faiss_agreement": round(float(agreement), 4),
    }


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[MARKET_GALLERY, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    for result in scaling_benchmark(args.sizes, dim=args.dim, queries=args.queries, k=args.k, device=args.device,
                                    verbose=False):
        print(json.dumps(result))
