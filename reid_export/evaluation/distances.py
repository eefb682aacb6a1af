"""Query-to-gallery distances and top-k, in blocks under a memory cap, on CPU or GPU.

* `pairwise_distance`: the full distance matrix, the input of `protocol.evaluate_ranking`.
* `topk`: the k closest gallery entries of every query, never holding the whole matrix.
* `stable_argsort`: `np.argsort(kind="stable")` of float32 rows, through a plain integer sort.

Order and ties: by distance, equal distances by gallery index (lower first), -0.0 equal to 0.0;
the order of `evaluate_ranking`. Both devices carry it in `protocol.order_keys` integers (distance
bits above the gallery index), so CPU and GPU break ties the same way. (Their GEMMs round
differently, so near-equal distances can still come out in another order on another device.)

Devices: "cpu" runs numpy (and its BLAS); "cuda" / "cuda:N" runs torch (`distances_torch`,
imported only then) in float32, or with `half=True` an FP16 GEMM (about 3 significant digits
per distance). Blocks on the CPU use the same arithmetic as `pairwise_distance`, and OpenBLAS's
AVX-512 kernels give a block of at least two rows and columns bit-identical distances (the tests
check it), so there `embeddings.evaluate_embeddings` equals `evaluate_ranking(pairwise_distance(...))`
exactly and `topk` does not depend on `chunk_bytes` (a one-row block would run GEMV, which rounds
differently: blocks never have one row or column unless the input does). Its AVX2 kernels round
blocks of a few rows differently in the last bit, so on such a CPU a small `chunk_bytes` can swap
near-tied items (metrics move by rounding only; tests/blas_blocks.py tells which case a machine is).
"""

from __future__ import annotations

import numpy as np

from . import blocks
from .blocks import DEFAULT_CHUNK_BYTES, METRICS, TORCH_ENTRY_BYTES
from .protocol import MAX_KEY, order_keys

__all__ = ["pairwise_distance", "topk", "normalise_rows", "stable_argsort", "METRICS", "DEFAULT_CHUNK_BYTES"]

_SAMPLE_STRIDE = 16  # top-k: every 16th distance of a row sets its candidate threshold


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
    blocks.check_metric(metric)
    query, gallery = blocks.check_features(query, gallery)
    return blocks.distance_block(blocks.prepare(query, metric), blocks.prepare(gallery, metric), metric)


def topk(
    query: np.ndarray,
    gallery: np.ndarray,
    k: int = 100,
    *,
    metric: str = "cosine",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    device: str = "cpu",
    half: bool = False,
    gallery_normalised: bool = False,
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
        gallery_normalised: the gallery is `normalise_rows(gallery)` already (cosine, CPU): it is used
            as it is, with the same result as normalising here, and a gallery searched again and again
            (a served one) is normalised once instead of on every call.

    Returns:
        `(indices, distances)`: int64 and float32, shape (num_query, k); the distances are those
        of `pairwise_distance` (on the CPU bit for bit, -0.0 returned as 0.0).

    Raises:
        ValueError: bad metric, device, k or inputs, or NaN distances.
        RuntimeUnavailable: device "cuda" without a CUDA device.
    """
    blocks.check_metric(metric)
    query, gallery = blocks.check_features(query, gallery)
    num_query, num_gallery = query.shape[0], gallery.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= num_gallery:
        raise ValueError(f"k must be an integer from 1 to the gallery size {num_gallery}, got {k!r}")
    torch_device = blocks.torch_device(device, half)
    entry_bytes = TORCH_ENTRY_BYTES if torch_device else blocks.entry_bytes(query.dtype, keys=True)
    rows, cols = blocks.plan(num_query, num_gallery, k, entry_bytes, chunk_bytes)
    if gallery_normalised and (metric != "cosine" or torch_device):
        raise ValueError("gallery_normalised=True is for metric='cosine' on the CPU")
    if torch_device:
        from .distances_torch import topk_keys  # lazy: torch only for a GPU

        return blocks.split_keys(topk_keys(query, gallery, k, metric, rows, cols, torch_device, half))
    q = blocks.prepare(query, metric)
    best = np.full((num_query, k), MAX_KEY, np.int64)
    q_spans, g_spans = blocks.spans(num_query, rows), blocks.spans(num_gallery, cols)
    # one buffer for every block: mapping fresh pages for each block costs more than its work
    distances = np.empty((max(b - a for a, b in q_spans), max(b - a for a, b in g_spans)), np.float32)
    normalised = None
    if metric == "cosine" and not gallery_normalised:
        normalised = np.empty((distances.shape[1], gallery.shape[1]), gallery.dtype)
    for g0, g1 in g_spans:  # gallery outside: each gallery block is read from memory once
        if gallery_normalised:
            g = (gallery[g0:g1], None)
        else:
            g = blocks.prepare(gallery[g0:g1], metric, out=normalised)
        for q0, q1 in q_spans:
            block = blocks.distance_block(blocks.take(q, q0, q1), g, metric, out=distances[: q1 - q0, : g1 - g0])
            blocks.reject_nan(block)
            found = _smallest_keys(block, k, np.arange(g0, g1))
            if len(g_spans) > 1:  # merge with the k best of the earlier gallery blocks
                found = np.sort(np.concatenate([best[q0:q1], found], axis=1), axis=1)[:, :k]
            best[q0:q1] = found
    return blocks.split_keys(best)


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """Rows L2-normalised exactly as `topk` and `pairwise_distance` normalise them for the cosine metric
    (all-zero rows stay zero): the input of `topk(..., gallery_normalised=True)`."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"normalise_rows takes a 2-D (num_samples, dim) array, got shape {x.shape}")
    return blocks.prepare(x.astype(np.float64 if x.dtype == np.float64 else np.float32, copy=False), "cosine")[0]


def stable_argsort(distances: np.ndarray) -> np.ndarray:
    """`np.argsort(distances, axis=-1, kind="stable")` for 1-D or 2-D distances, NaN rejected.

    float32 (and float16) rows are sorted as `protocol.order_keys` integers, a plain `np.sort`
    several times faster than numpy's stable argsort; other dtypes use the stable argsort.
    """
    distances = np.asarray(distances)
    if distances.ndim not in (1, 2):
        raise ValueError(f"stable_argsort takes 1-D or 2-D distances, got shape {distances.shape}")
    blocks.reject_nan(distances)
    if distances.dtype not in (np.float32, np.float16):
        return np.argsort(distances, axis=-1, kind="stable")
    keys = order_keys(np.atleast_2d(distances).astype(np.float32, copy=False))
    keys.sort(axis=1)
    return (keys & 0xFFFFFFFF).reshape(distances.shape)


def _smallest_keys(block: np.ndarray, k: int, index: np.ndarray) -> np.ndarray:
    """The k smallest order keys of each row of a float32 block, sorted; padded with `MAX_KEY`.

    Exact, and cheaper than partitioning every row: the 3k/16-th smallest of every 16th entry is
    a threshold that lets through about 3k entries of a row (fewer than k in well under 1% of
    rows, which then get their exact k-th distance instead); only those entries get keys and
    are sorted.
    """
    num_rows, num_cols = block.shape
    if num_cols <= 4 * k:  # small block: key and sort everything
        keys = order_keys(block, index)
        keys.sort(axis=1)
        return np.pad(keys[:, :k], ((0, 0), (0, max(0, k - num_cols))), constant_values=MAX_KEY)
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
    keys = np.full((num_rows, counts.max()), MAX_KEY, np.int64)
    keys[rows, slot] = order_keys(block[rows, cols][None, :], index[cols])[0]
    keys.sort(axis=1)
    return keys[:, :k]


