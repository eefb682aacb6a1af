"""Image transforms: the preprocessing contract, plus training augmentation on top of it.

    eval_transform(preprocess)(image)                 # exactly what every runtime does
    train_transform(preprocess, flip=True, ...)(image, generator)
    transform(transform.pixels(image), generator)     # the same, from pixels decoded and resized earlier

Training images go through the same contract (`Preprocess.image_to_array`: resize, scale, mean/std)
as evaluation and export; augmentation then works on the normalised tensor, where 0 is the mean
colour, so padding and erasing fill with the mean colour. Every random choice comes from the
`generator` passed in, which makes an image's augmentation a function of its seed alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..contract import Preprocess

__all__ = ["TrainTransform", "EvalTransform", "train_transform", "eval_transform"]

PAD = 10  # pixels of padding before the random crop (BoT / torchreid)
FLIP_P = 0.5  # probability of a horizontal flip
ERASE_P = 0.5  # probability of erasing a rectangle (Zhong et al., 2020)
ERASE_AREA = (0.02, 0.4)  # erased fraction of the image area
ERASE_RATIO = (0.3, 3.3)  # erased rectangle's height / width
_ERASE_TRIES = 10


@dataclass(frozen=True)
class EvalTransform:
    """The contract only: PIL image (or its `pixels`) -> float32 tensor (3, height, width)."""

    preprocess: Preprocess

    def pixels(self, image) -> np.ndarray:
        """The image at the contract's size as (height, width, 3) RGB uint8: the part of the contract that
        does not change from epoch to epoch, so a dataset can keep it (`ReidDataset(cache=True)`)."""
        return np.asarray(self.preprocess.resize(image.convert("RGB")), dtype=np.uint8)

    def __call__(self, image, generator: torch.Generator | None = None) -> torch.Tensor:
        return _contract_tensor(self.preprocess, image)


@dataclass(frozen=True)
class TrainTransform(EvalTransform):
    """The contract, then random flip, pad-and-crop and random erasing."""

    flip: bool = True
    pad_crop: bool = True
    random_erasing: bool = True

    def __call__(self, image, generator: torch.Generator | None = None) -> torch.Tensor:
        x = _contract_tensor(self.preprocess, image)
        if self.flip and _uniform(generator) < FLIP_P:
            x = x.flip(-1)
        if self.pad_crop:
            x = _pad_crop(x, PAD, generator)
        if self.random_erasing and _uniform(generator) < ERASE_P:
            x = _erase(x, generator)
        return x


def eval_transform(preprocess: Preprocess) -> EvalTransform:
    return EvalTransform(preprocess)


def train_transform(preprocess: Preprocess, *, flip: bool = True, pad_crop: bool = True,
                    random_erasing: bool = True) -> TrainTransform:
    return TrainTransform(preprocess, flip=flip, pad_crop=pad_crop, random_erasing=random_erasing)


# -- helpers ---------------------------------------------------------------------------------------


def _contract_tensor(preprocess: Preprocess, image) -> torch.Tensor:
    """A PIL image, or pixels already at the contract's size (`EvalTransform.pixels`), as the model's input."""
    if isinstance(image, np.ndarray):
        return torch.from_numpy(preprocess.uint8_to_array(image))
    return torch.from_numpy(preprocess.image_to_array(image))


def _uniform(generator: torch.Generator | None, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(generator: torch.Generator | None, high: int) -> int:
    """Uniform integer in [0, high]."""
    return int(torch.randint(0, high + 1, (), generator=generator))


def _pad_crop(x: torch.Tensor, pad: int, generator: torch.Generator | None) -> torch.Tensor:
    _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    top, left = _randint(generator, 2 * pad), _randint(generator, 2 * pad)
    return padded[:, top:top + h, left:left + w].contiguous()


def _erase(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    _, h, w = x.shape
    for _ in range(_ERASE_TRIES):
        area = h * w * _uniform(generator, *ERASE_AREA)
        ratio = _uniform(generator, *ERASE_RATIO)
        eh, ew = round((area * ratio) ** 0.5), round((area / ratio) ** 0.5)
        if 0 < eh < h and 0 < ew < w:
            top, left = _randint(generator, h - eh), _randint(generator, w - ew)
            x = x.clone()
            x[:, top:top + eh, left:left + ew] = 0.0
            return x
    return x
