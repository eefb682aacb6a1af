"""Tiny Market-1501 folders of random JPEGs for the training tests (one flat colour + noise per id)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def _jpeg(rng: np.random.Generator, colour: np.ndarray) -> bytes:
    pixels = np.clip(colour + rng.normal(0, 40, size=(32, 16, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_market(root: Path, *, train_ids: int = 5, images_per_id: int = 5, test_ids: int = 3, seed: int = 0) -> Path:
    """Train ids 1..train_ids, test ids after them (one query on camera 1, gallery on cameras 2-3)."""
    rng = np.random.default_rng(seed)
    folders = {name: root / name for name in ("bounding_box_train", "query", "bounding_box_test")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    for pid in range(1, train_ids + test_ids + 1):
        colour = rng.uniform(0, 255, size=3)
        if pid <= train_ids:
            for i in range(images_per_id):
                name = f"{pid:04d}_c{i % 3 + 1}s1_{i:06d}_01.jpg"
                (folders["bounding_box_train"] / name).write_bytes(_jpeg(rng, colour))
        else:
            (folders["query"] / f"{pid:04d}_c1s1_000001_01.jpg").write_bytes(_jpeg(rng, colour))
            for cam in (2, 3):
                name = f"{pid:04d}_c{cam}s1_00000{cam}_01.jpg"
                (folders["bounding_box_test"] / name).write_bytes(_jpeg(rng, colour))
    return root
