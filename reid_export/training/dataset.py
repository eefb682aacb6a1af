"""A torch Dataset over Market-1501 samples: (image tensor, label, camid), plus attribute targets.

    ReidDataset(samples, labels, transform)[i]                  -> (image, label, camid)
    ReidDataset(samples, labels, transform, targets, mask)[i]   -> (image, label, camid, targets (27,), labelled)

With attributes, `targets` is an (N, 27) int64 array in the `encode_targets` layout and `mask` an
(N,) bool array, False for images whose person has no attribute labels (their row is ignored).

Keys are an index, or an `(index, draw)` pair from the samplers in `samplers.py`, where `draw`
seeds the image's augmentation. With `cache=True` each image is decoded and resized once
(`transform.pixels`) and kept in memory; every epoch still augments it afresh. Worker processes each
keep their own cache, so caching pays most with `num_workers = 0`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.market1501 import Sample
from ..decode import open_rgb
from ..errors import DataError

__all__ = ["ReidDataset"]


class ReidDataset(Dataset):
    """`samples[i]` read with Pillow and passed through `transform(image, generator)`.

    `labels[i]` is returned as the label: training labels (0..num_ids-1) for the train split, person
    ids for query and gallery."""

    def __init__(self, samples: Sequence[Sample], labels: Sequence[int], transform: Callable,
                 attribute_targets: np.ndarray | None = None, attribute_mask: np.ndarray | None = None, *,
                 cache: bool = False):
        if len(samples) != len(labels):
            raise DataError(f"ReidDataset needs one label per sample, found {len(samples)} samples and "
                            f"{len(labels)} labels")
        self.samples = list(samples)
        self.labels = [int(label) for label in labels]
        self.transform = transform
        self._pixels: dict[int, np.ndarray] | None = {} if cache else None  # index -> transform.pixels(image)
        self.attribute_targets = self.attribute_mask = None
        if attribute_targets is not None:
            targets = torch.as_tensor(np.asarray(attribute_targets), dtype=torch.int64)
            mask = (torch.ones(len(targets), dtype=torch.bool) if attribute_mask is None
                    else torch.as_tensor(np.asarray(attribute_mask), dtype=torch.bool))
            if targets.ndim != 2 or len(targets) != len(self.samples) or mask.shape != (len(targets),):
                raise DataError(f"ReidDataset needs one attribute target row and mask entry per sample: found "
                                f"{len(self.samples)} samples, targets {tuple(targets.shape)}, "
                                f"mask {tuple(mask.shape)}")
            self.attribute_targets, self.attribute_mask = targets, mask

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple:
        index, draw = key if isinstance(key, tuple) else (key, None)
        generator = torch.Generator().manual_seed(draw) if draw is not None else None
        sample = self.samples[index]
        x = self.transform(self._image(index), generator)
        if self.attribute_targets is None:
            return x, self.labels[index], sample.camid
        return x, self.labels[index], sample.camid, self.attribute_targets[index], self.attribute_mask[index]

    def _image(self, index: int):
        """The decoded image (EXIF, 16-bit, palette handled by `open_rgb`), or its cached pixels."""
        if self._pixels is not None and index in self._pixels:
            return self._pixels[index]
        path = self.samples[index].path
        try:
            image = open_rgb(path)  # the one decode
        except OSError as e:
            raise DataError(f"cannot read training image {path} ({e}); delete it or re-extract the data set") from e
        if self._pixels is None:
            return image
        self._pixels[index] = self.transform.pixels(image)
        return self._pixels[index]
