"""The block machinery behind every distance computation here: input checks, row preparation, the one
distance formula, memory plans and spans, order-key splitting and the device choice.

Shared by `distances` (numpy), `distances_torch` (GPU), `embeddings` and `rerank`, and by the
scaling benchmark; nothing here ranks or scores on its own.
"""

from __future__ import annotations

import numpy as np

from ..errors import RuntimeUnavailable

__all__ = ["METRICS", "DEFAULT_CHUNK_BYTES", "MIN_BLOCK", "TORCH_ENTRY_BYTES", "check_metric", "check_features",
           "prepare", "take", "distance_block", "reject_nan", "entry_bytes", "plan", "spans", "split_keys",
           "torch_device"]

METRICS = ("cosine", "euclidean")
DEFAULT_CHUNK_BYTES = 256 << 20  # working memory of one block: distances, order keys, masks
MIN_BLOCK = 2  # rows / columns per block: one would switch BLAS from GEMM to GEMV (other rounding)
_GEMM_ROWS = 256  # query rows per block once the gallery has to be split: keeps the GEMM efficient
TORCH_ENTRY_BYTES = 40  # GPU bytes per block entry: distances, keys, sorted keys and sort indices


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of: {', '.join(METRICS)}")


def check_features(query, gallery) -> tuple[np.ndarray, np.ndarray]:
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


def prepare(x: np.ndarray, metric: str, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows as the GEMM needs them: L2-normalised (cosine; into `out[:len(x)]` if given), or with
    their squared norms (euclidean)."""
    squares = np.einsum("ij,ij->i", x, x)  # no (rows, dim) temporary, unlike np.linalg.norm
    if metric == "cosine":
        norms = np.maximum(np.sqrt(squares), np.finfo(x.dtype).tiny)[:, None]
        return np.divide(x, norms, out=None if out is None else out[: len(x)]), None
    return x, squares


def take(prepared, start: int, stop: int):
    x, sq = prepared
    return x[start:stop], None if sq is None else sq[start:stop]


def distance_block(q, g, metric: str, out: np.ndarray | None = None) -> np.ndarray:
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


def reject_nan(distances: np.ndarray) -> None:
    # min() propagates NaN: one pass, no temporary array
    if np.issubdtype(distances.dtype, np.floating) and distances.size and np.isnan(distances.min()):
        raise ValueError(
            f"{int(np.isnan(distances).sum())} distance(s) are NaN; NaN cannot be ranked - check the "
            "embeddings for NaN or inf (e.g. a diverged model)"
        )


def entry_bytes(dtype, keys: bool) -> int:
    """CPU bytes per block entry: distances (+ their float32 copy), order key and a temporary."""
    itemsize = np.dtype(dtype).itemsize
    return itemsize + (4 if itemsize > 4 else 0) + (9 if keys else 0)


def plan(num_query: int, num_gallery: int, k: int, entry_bytes: int, cap: int) -> tuple[int, int]:
    """Query rows and gallery columns per block, with rows * (cols * entry_bytes + 8 k) <= cap."""
    whole_rows = cap // (num_gallery * entry_bytes + 8 * k)
    if whole_rows >= min(num_query, _GEMM_ROWS):
        return max(MIN_BLOCK, whole_rows), num_gallery
    rows = min(num_query, _GEMM_ROWS)
    while rows > MIN_BLOCK and cap // rows < 8 * k + MIN_BLOCK * entry_bytes:
        rows = max(MIN_BLOCK, rows // 2)
    return rows, max(MIN_BLOCK, (cap // rows - 8 * k) // entry_bytes)


def spans(total: int, size: int) -> list[tuple[int, int]]:
    """`total` split into near-equal (start, stop) spans of at most `size`, none of one item."""
    count = max(1, -(-total // max(1, size)))
    if count > 1 and total // count < MIN_BLOCK:
        count = max(1, total // MIN_BLOCK)
    edges = [total * i // count for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


def split_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order keys back to (gallery index, float32 distance): the inverse of `protocol.order_keys`."""
    high = (keys >> 32).astype(np.int32)
    bits = np.where(high < 0, np.negative(high) | np.int32(-(1 << 31)), high)
    return keys & 0xFFFFFFFF, bits.view(np.float32)


def torch_device(device: str, half: bool):
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


