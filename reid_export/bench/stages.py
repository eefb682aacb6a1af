"""Where the time goes on the whole path, per image batch:

    read (file bytes) -> decode (JPEG -> RGB) -> resize -> normalise -> host-to-device -> inference -> device-to-host

`staged_timing` times each stage separately over the same batches, names the stage that bounds the
throughput, and times the same path again from a pre-decoded uint8 cache (read/decode/resize
skipped) and with decoding spread over threads, so the faster paths show their effect in one run.
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..decode import open_rgb
from ..runtimes.base import Runtime

__all__ = ["STAGES", "staged_timing"]

STAGES = ("read", "decode", "resize", "normalise", "h2d", "inference", "d2h")


def staged_timing(runtime: Runtime, paths: list[Path], *, batch_size: int = 32, batches: int = 5,
                  threads: int = 4) -> dict:
    """Time every stage on `batches` batches of `batch_size` images (cycling through `paths`).

    Returns per-stage median milliseconds per batch, end-to-end images/s for three paths (`serial`:
    every stage in turn on one thread; `threaded_decode`: read+decode+resize on `threads` threads;
    `uint8_cache`: from pre-decoded uint8 images, as a decode cache would give), and `bound_by`."""
    from PIL import Image

    contract = runtime.contract
    chosen = [paths[i % len(paths)] for i in range(batch_size * (batches + 1))]
    groups = [chosen[i * batch_size:(i + 1) * batch_size] for i in range(batches + 1)]

    def decode_one(data: bytes) -> Image.Image:
        return open_rgb(io.BytesIO(data))  # the one decode (EXIF, 16-bit, palette), as Preprocess.decode

    per_stage: dict[str, list[float]] = {s: [] for s in STAGES}
    serial, threaded, cached = [], [], []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for i, group in enumerate(groups):
            t = time.perf_counter()
            raw = [Path(p).read_bytes() for p in group]
            t_read = time.perf_counter()
            decoded = [decode_one(b) for b in raw]
            t_decode = time.perf_counter()
            resized = np.stack([np.asarray(contract.resize(im), dtype=np.uint8) for im in decoded])
            t_resize = time.perf_counter()
            batch = contract.normalize_uint8(resized)
            t_norm = time.perf_counter()
            _, device_ms = runtime.infer_staged(batch)
            t_end = time.perf_counter()

            t0 = time.perf_counter()
            pooled = np.stack(list(pool.map(contract.decode, group)))
            runtime.infer(contract.normalize_uint8(pooled))
            t_threaded = time.perf_counter() - t0

            t0 = time.perf_counter()
            runtime.infer(contract.normalize_uint8(resized))  # the uint8 cache hands over `resized` directly
            t_cached = time.perf_counter() - t0
            if i == 0:
                continue  # warm-up batch: file cache, allocator, thread pool
            for stage, ms in zip(("read", "decode", "resize", "normalise"),
                                 np.diff([t, t_read, t_decode, t_resize, t_norm]) * 1e3):
                per_stage[stage].append(float(ms))
            for stage in ("h2d", "inference", "d2h"):
                per_stage[stage].append(device_ms[stage])
            serial.append(t_end - t)
            threaded.append(t_threaded)
            cached.append(t_cached)
    medians = {f"{s}_ms": round(float(np.median(v)), 3) for s, v in per_stage.items()}
    bound = max(STAGES, key=lambda s: medians[f"{s}_ms"])
    return {
        "batch_size": batch_size,
        "batches": batches,
        "stages_ms": medians,
        "bound_by": bound,
        "images_per_sec": {
            "serial": round(batch_size / float(np.median(serial)), 2),
            f"threaded_decode_{threads}": round(batch_size / float(np.median(threaded)), 2),
            "uint8_cache": round(batch_size / float(np.median(cached)), 2),
        },
    }

