"""Image files -> uint8 pixels at a contract's size, many at a time.

Decoding (read, decode, RGB, resize) is kept apart from inference so that the benchmark decodes once
and feeds every runtime the same pixels. Each file goes through `Preprocess.decode`, the one decode
function of the project (training, export parity, bench, serve, visualize and predict all use it).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .contract import Preprocess
from .errors import DataError
from .progress import progress_bar

__all__ = ["decode_images", "decode_readable", "unreadable_summary", "first_examples", "DECODE_THREADS", "SHOWN_UNREADABLE"]

DECODE_THREADS = 4  # Pillow releases the GIL while decoding, so threads overlap file reads and decodes
SHOWN_UNREADABLE = 5  # unreadable files named in a message; the rest are counted


def decode_images(paths, contract: Preprocess, *, threads: int = DECODE_THREADS, progress: bool = True) -> np.ndarray:
    """Decode and resize image files to the contract's size: (N, height, width, 3) uint8. Files that cannot
    be decoded are reported together, counted with the first few named, in one DataError."""
    paths = list(paths)
    pixels, failed = decode_readable(paths, contract, threads=threads, progress=progress)
    if failed:
        raise DataError(f"{unreadable_summary([(paths[i], why) for i, why in failed], len(paths))}; "
                        "remove or replace these files, then run again")
    return pixels


def decode_readable(sources, contract: Preprocess, *, threads: int = DECODE_THREADS,
                    progress: bool = True) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode what can be decoded: (pixels of the readable sources, in order; [(index, reason)] of the others).
    A source is a path or a file object (its `name` is used in messages)."""
    sources = list(sources)
    out = np.empty((len(sources), contract.height, contract.width, 3), dtype=np.uint8)
    failed: list[tuple[int, str]] = []
    kept = 0
    with progress_bar(f"decoding {len(sources)} images", len(sources), enabled=progress) as advance, \
            ThreadPoolExecutor(max_workers=threads) as pool:
        for i, image in enumerate(pool.map(lambda source: _decode_or_reason(contract, source), sources, chunksize=32)):
            if isinstance(image, str):
                failed.append((i, image))
            else:
                out[kept] = image
                kept += 1
            advance()
    return out[:kept], failed


def unreadable_summary(failed: list[tuple[object, str]], total: int) -> str:
    """'2 of 20 images cannot be decoded: a.jpg (reason); b.jpg (reason)', the first few named."""
    return f"{len(failed)} of {total} images cannot be decoded: {first_examples(failed)}"


def first_examples(failed: list[tuple[object, str]], *, shown: int = SHOWN_UNREADABLE) -> str:
    """'a.jpg (reason); b.jpg (reason); and 18 more': the first `shown` files by name, the rest counted."""
    named = "; ".join(f"{Path(str(source)).name} ({why})" for source, why in failed[:shown])
    return named + (f"; and {len(failed) - shown} more" if len(failed) > shown else "")


def _decode_or_reason(contract: Preprocess, source) -> np.ndarray | str:
    try:
        return contract.decode(source)
    except (DataError, OSError) as e:  # one unusable file is reported with the others, not alone
        name = str(source) if isinstance(source, (str, Path)) else str(getattr(source, "name", ""))
        return str(e).removeprefix(f"{name}: ") if isinstance(e, DataError) else (e.strerror or str(e))
