"""Images -> embeddings through any runtime, in batches.

Decoding (JPEG -> RGB -> resize, `decode_images`) is kept apart from inference
(`extract_embeddings`) so the benchmark decodes once and feeds every runtime the same pixels.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .contract import Preprocess
from .progress import progress_bar
from .runtimes.base import Runtime

__all__ = ["decode_images", "extract_embeddings"]


def decode_images(paths, contract: Preprocess, *, threads: int = 4, progress: bool = True) -> np.ndarray:
    """Decode and resize image files to the contract's size: (N, height, width, 3) uint8."""
    paths = list(paths)
    out = np.empty((len(paths), contract.height, contract.width, 3), dtype=np.uint8)
    with progress_bar(f"decoding {len(paths)} images", len(paths), enabled=progress) as advance, \
            ThreadPoolExecutor(max_workers=threads) as pool:  # Pillow releases the GIL while decoding
        for i, image in enumerate(pool.map(contract.decode, paths, chunksize=32)):
            out[i] = image
            advance()
    return out


def extract_embeddings(runtime: Runtime, images: np.ndarray, *, batch_size: int = 64,
                       progress: bool = True, description: str = "embedding") -> dict[str, np.ndarray]:
    """Run uint8 images (N, H, W, 3) through an active runtime; outputs concatenated per key."""
    outputs: dict[str, list[np.ndarray]] = {}
    with progress_bar(f"{description} ({runtime.name})", len(images), enabled=progress) as advance:
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            for key, value in runtime.infer(runtime.contract.normalize_uint8(chunk)).items():
                outputs.setdefault(key, []).append(value)
            advance(len(chunk))
    return {key: np.concatenate(parts) for key, parts in outputs.items()}


def sample_batch(contract: Preprocess, data_dir=None, *, n: int = 32, seed: int = 0) -> tuple[np.ndarray, str]:
    """A float32 batch for parity checks: `n` real images from a Market-1501 folder (query and gallery,
    else train) when `data_dir` is given, random normal tensors otherwise. Returns (batch, where from)."""
    if data_dir is None:
        rng = np.random.default_rng(seed)
        return rng.standard_normal((n, *contract.input_shape), dtype=np.float32), f"{n} random tensors"
    from .data.market1501 import load_market1501
    from .errors import DataError

    try:
        data = load_market1501(data_dir, splits=("query", "gallery"), verify_images=False, progress=False)
        paths = [s.path for s in data.query + data.gallery]
    except DataError:  # a training-only folder will do as well
        data = load_market1501(data_dir, splits=("train",), verify_images=False, progress=False)
        paths = [s.path for s in data.train]
    picks = np.random.default_rng(seed).choice(len(paths), size=min(n, len(paths)), replace=False)
    chosen = [paths[i] for i in sorted(picks)]
    return contract.load_batch(chosen), f"{len(chosen)} images from {data.root}"
