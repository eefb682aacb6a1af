"""Many images through one runtime: batches in, outputs concatenated per key."""

from __future__ import annotations

import numpy as np

from ..progress import progress_bar
from .base import Runtime

__all__ = ["infer_images"]


def infer_images(runtime: Runtime, images: np.ndarray, *, batch_size: int = 64, progress: bool = True,
                 description: str = "embedding") -> dict[str, np.ndarray]:
    """Run uint8 images (N, H, W, 3) through an active runtime, normalised with its own contract;
    returns {"embedding": (N, D)[, "attributes": (N, 30)]} as float32."""
    batch_size = min(batch_size, runtime.max_batch or batch_size)  # the runtime owns its limit (engine profile)
    outputs: dict[str, list[np.ndarray]] = {}
    with progress_bar(f"{description} ({runtime.name})", len(images), enabled=progress) as advance:
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            for key, value in runtime.infer(runtime.contract.normalize_uint8(chunk)).items():
                outputs.setdefault(key, []).append(value)
            advance(len(chunk))
    return {key: np.concatenate(parts) for key, parts in outputs.items()}
