"""Distances between query and gallery embeddings: the input of `metrics.evaluate_ranking`.

Plain numpy on the CPU for now; chunked top-k and a GPU path come later.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pairwise_distance", "METRICS"]

METRICS = ("cosine", "euclidean")


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
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of: {', '.join(METRICS)}")
    query, gallery = _check_features(query, gallery)
    if metric == "cosine":
        dist = 1.0 - _l2_normalize(query) @ _l2_normalize(gallery).T
        np.clip(dist, 0.0, 2.0, out=dist)  # rounding can step just outside [0, 2]
    else:
        sq = np.einsum("ij,ij->i", query, query)[:, None] + np.einsum("ij,ij->i", gallery, gallery)[None, :]
        dist = sq - 2.0 * (query @ gallery.T)
        np.maximum(dist, 0.0, out=dist)
        np.sqrt(dist, out=dist)
    return dist.astype(np.float32, copy=False)


# -- private helpers -------------------------------------------------------------------


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


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, np.finfo(x.dtype).tiny)
