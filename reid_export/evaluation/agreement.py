"""How closely one runtime's embeddings follow a reference's: cosine and absolute difference."""

from __future__ import annotations

import numpy as np

__all__ = ["embedding_agreement"]


def embedding_agreement(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Row-wise comparison of two (N, D) embedding matrices of the same images.

    Returns `cosine_min`, `cosine_mean` (1.0 = same direction) and `max_abs_diff`."""
    reference = np.asarray(reference, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    if reference.shape != other.shape:
        raise ValueError(f"embeddings differ in shape: reference {reference.shape}, other {other.shape}")
    num = (reference * other).sum(1)
    den = np.linalg.norm(reference, axis=1) * np.linalg.norm(other, axis=1)
    cos = np.where(den > 0, num / np.maximum(den, 1e-300), np.where((reference == other).all(1), 1.0, 0.0))
    return {
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        "max_abs_diff": float(np.abs(reference - other).max()),
    }
