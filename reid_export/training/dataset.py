"""A torch Dataset over Market-1501 samples: (image tensor, label, camid).

Keys are an index, or an `(index, draw)` pair from the samplers in `samplers.py`, where `draw`
seeds the image's augmentation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

from ..data.market1501 import Sample
from ..errors import DataError

__all__ = ["ReidDataset"]


class ReidDataset(Dataset):
    """`samples[i]` read with Pillow and passed through `transform(image, generator)`.

    `labels[i]` is returned as the label: training labels (0..num_ids-1) for the train split, person
    ids for query and gallery."""

    def __init__(self, samples: Sequence[Sample], labels: Sequence[int], transform: Callable):
        if len(samples) != len(labels):
            raise DataError(f"ReidDataset needs one label per sample, found {len(samples)} samples and "
                            f"{len(labels)} labels")
        self.samples = list(samples)
        self.labels = [int(label) for label in labels]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int, int]:
        index, draw = key if isinstance(key, tuple) else (key, None)
        generator = torch.Generator().manual_seed(draw) if draw is not None else None
        sample = self.samples[index]
        from PIL import Image

        try:
            with Image.open(sample.path) as image:
                x = self.transform(image, generator)
        except OSError as e:
            raise DataError(f"cannot read training image {sample.path} ({e}); delete it or re-extract "
                            "the data set") from e
        return x, self.labels[index], sample.camid
