"""Image files -> uint8 pixels at a contract's size, many at a time.

Decoding (read, decode, RGB, resize) is kept apart from inference so that the benchmark decodes once
and feeds every runtime the same pixels. Each file goes through `Preprocess.decode`, the one decode
function of the project (training, export parity, bench, serve, visualize and predict all use it).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .contract import Preprocess
from .progress import progress_bar

__all__ = ["decode_images", "DECODE_THREADS"]

DECODE_THREADS = 4  # Pillow releases the GIL while decoding, so threads overlap file reads and decodes


def decode_images(paths, contract: Preprocess, *, threads: int = DECODE_THREADS, progress: bool = True) -> np.ndarray:
    """Decode and resize image files to the contract's size: (N, height, width, 3) uint8."""
    paths = list(paths)
    out = np.empty((len(paths), contract.height, contract.width, 3), dtype=np.uint8)
    with progress_bar(f"decoding {len(paths)} images", len(paths), enabled=progress) as advance, \
            ThreadPoolExecutor(max_workers=threads) as pool:
        for i, image in enumerate(pool.map(contract.decode, paths, chunksize=32)):
            out[i] = image
            advance()
    return out
