"""The trackers of the tracking benchmark: boxmot's, fed the benchmark's own embeddings.

boxmot's trackers take precomputed embeddings aligned with the detections (`Detections.embeddings`), so
they never load a Re-ID model of their own; with `embeddings=None` they run on motion alone (the `none`
row). The cameras here do not move, so camera-motion compensation is off.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from ..errors import ReidExportError

__all__ = ["TRACKERS", "run_tracker", "check_trackers", "runs_without_appearance"]

# name -> (boxmot class, constructor options)
TRACKERS: dict[str, tuple[str, dict]] = {
    "botsort": ("BotSort", {"use_cmc": False}),
    "deepocsort": ("DeepOcSort", {"cmc_off": True}),
    "strongsort": ("StrongSort", {}),
}
_TAKE_USE_EMBEDDINGS = {"botsort", "deepocsort"}  # the others associate by appearance always: no `none` row


def check_trackers(names: list[str]) -> list[str]:
    unknown = [name for name in names if name not in TRACKERS]
    if unknown or not names:
        raise ReidExportError(f"--tracker {','.join(names)}: unknown tracker {unknown[0] if unknown else '(none)'}; "
                              f"choose from {', '.join(TRACKERS)} (comma-separated)")
    return names


def runs_without_appearance(name: str) -> bool:
    """Whether `name` has a `none` row (motion only)."""
    return name in _TAKE_USE_EMBEDDINGS


def run_tracker(name: str, dets: np.ndarray, embeddings: np.ndarray | None, *, frames: int,
                frame_rate: float) -> tuple[np.ndarray, float]:
    """Track one sequence. `dets` are det.txt rows (frame, -1, x, y, w, h, score, ...), `embeddings` one row per
    detection or None (motion only). Returns (N, 11) rows: frame, track id (from 1), x, y, w, h, 1, -1, -1, -1
    and the index of the detection the track took in this frame; and milliseconds per frame in `update`."""
    import boxmot  # lazy: boxmot (the `tracking` extra) imports torch and its trackers, seconds
    import torch  # lazy: boxmot's Detections hold torch tensors
    from boxmot.structures import Boxes, Detections

    logging.getLogger("boxmot").setLevel(logging.WARNING)  # it logs every tracker's settings at INFO
    cls, options = TRACKERS[name]
    options = dict(options)
    if name in _TAKE_USE_EMBEDDINGS:
        options["use_embeddings"] = embeddings is not None
    elif embeddings is None:
        raise ReidExportError(f"tracker {name} associates by appearance only; it has no `none` (motion-only) row")
    if name == "botsort":
        options["frame_rate"] = int(round(frame_rate))  # its lost-track buffer is 30 frames at 30 fps, scaled
    tracker = getattr(boxmot, cls)(**options)
    starts = np.searchsorted(dets[:, 0], np.arange(1, frames + 2))
    out, spent = [], 0.0
    for frame in range(1, frames + 1):
        lo, hi = starts[frame - 1], starts[frame]
        d = dets[lo:hi]
        boxes = np.column_stack([d[:, 2], d[:, 3], d[:, 2] + d[:, 4], d[:, 3] + d[:, 5]]).astype(np.float32)
        detections = Detections(
            geometry=Boxes(torch.from_numpy(boxes.reshape(-1, 4))),
            scores=torch.from_numpy(np.clip(d[:, 6], 0, 1).astype(np.float32)),
            class_ids=torch.zeros(len(d), dtype=torch.int64), sample_id=f"frame{frame}",
            embeddings=None if embeddings is None else torch.from_numpy(np.ascontiguousarray(embeddings[lo:hi])),
        )
        t0 = time.perf_counter()
        tracks = tracker.update(detections)
        spent += time.perf_counter() - t0
        xyxy = tracks.geometry.values.numpy().astype(np.float64)
        for (x0, y0, x1, y1), tid, index in zip(xyxy, tracks.track_ids.tolist(), tracks.detection_indices.tolist()):
            out.append([frame, tid + 1, x0, y0, x1 - x0, y1 - y0, 1, -1, -1, -1, lo + index if index >= 0 else -1])
    return np.asarray(out, dtype=np.float64).reshape(-1, 11), spent * 1e3 / max(frames, 1)
