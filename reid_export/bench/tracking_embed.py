"""Re-ID embeddings of a sequence's detections, as a tracker computes them: frame by frame.

Each frame's detection boxes are cropped from the frame, resized by the runtime's own contract
(`Preprocess.resize`: its size, resize implementation and aspect policy) and embedded in one batch
(split at the runtime's `max_batch`). The clock covers crop, resize, normalise and inference; reading
and decoding the frame is not counted (a tracker has the frame already). One untimed frame warms up.
"""

from __future__ import annotations

import time

import numpy as np

from ..data.mot import MotSequence
from ..progress import progress_bar
from ..runtimes import Runtime

__all__ = ["embed_detections"]


def embed_detections(runtime: Runtime, sequences: list[MotSequence], dets: dict[str, np.ndarray], *,
                     progress: bool = True) -> tuple[dict[str, np.ndarray], float]:
    """An active runtime's embeddings of every detection, {sequence: (N, D) float32 aligned with its det rows},
    and the Re-ID milliseconds per frame (over all frames, those without detections included)."""
    out: dict[str, np.ndarray] = {}
    spent, frames, warm = 0.0, 0, False
    total = sum(seq.length for seq in sequences)
    with progress_bar(f"embedding detections ({runtime.name})", total, enabled=progress) as advance:
        for seq in sequences:
            rows = dets[seq.name]
            starts = np.searchsorted(rows[:, 0], np.arange(1, seq.length + 2))
            parts = []
            for frame in range(1, seq.length + 1):
                boxes = rows[starts[frame - 1]:starts[frame], 2:6]
                if len(boxes):
                    image = seq.read_frame(frame)
                    if not warm:
                        _embed(runtime, image, boxes)
                        warm = True
                    t0 = time.perf_counter()
                    parts.append(_embed(runtime, image, boxes))
                    spent += time.perf_counter() - t0
                frames += 1
                advance()
            out[seq.name] = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
    return out, spent * 1e3 / max(frames, 1)


def _embed(runtime: Runtime, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    contract = runtime.contract
    crops = np.stack([contract.resize(_crop(image, box)) for box in boxes])
    step = runtime.max_batch or len(crops)
    chunks = [runtime.infer(contract.normalize_uint8(crops[i:i + step]))["embedding"] for i in range(0, len(crops), step)]
    return np.concatenate(chunks).astype(np.float32, copy=False)


def _crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The pixels of an (x, y, w, h) box, clipped to the frame and at least 2 x 2 pixels."""
    h, w = image.shape[:2]
    x0 = int(np.clip(np.floor(box[0]), 0, w - 2))
    y0 = int(np.clip(np.floor(box[1]), 0, h - 2))
    x1 = int(np.clip(np.ceil(box[0] + box[2]), x0 + 2, w))
    y1 = int(np.clip(np.ceil(box[1] + box[3]), y0 + 2, h))
    return np.ascontiguousarray(image[y0:y1, x0:x1])
