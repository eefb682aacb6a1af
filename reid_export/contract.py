"""The preprocessing contract: how an image becomes the model's input, and what comes out.

The contract is data. Training writes it into the checkpoint, export writes it into the
artefact (ONNX metadata, TensorRT sidecar), and every runtime reads it back from there,
so nobody re-types mean/std or the input size by hand.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from .decode import open_rgb
from .errors import ReidExportError

__all__ = ["Preprocess", "METADATA_KEY", "IMAGENET_MEAN", "IMAGENET_STD"]

METADATA_KEY = "reid_export.preprocess"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class Preprocess:
    height: int = 256  # model input height in pixels
    width: int = 128  # model input width in pixels
    color: str = "RGB"  # channel order fed to the model
    scale: float = 1.0 / 255.0  # uint8 pixel values are multiplied by this first
    mean: tuple[float, float, float] = IMAGENET_MEAN  # subtracted per channel after scaling
    std: tuple[float, float, float] = IMAGENET_STD  # divided per channel after the mean
    layout: str = "NCHW"  # tensor layout of the model input
    interpolation: str = "bilinear"  # PIL resize filter used to reach height x width
    l2_normalized: bool = True  # whether the `embedding` output is already L2-normalised
    version: int = field(default=1)  # bumps when the meaning of a field changes

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ReidExportError(f"preprocess size must be positive, got {self.height}x{self.width}")
        if self.color not in ("RGB", "BGR"):
            raise ReidExportError(f"preprocess color must be 'RGB' or 'BGR', got {self.color!r}")
        if self.layout != "NCHW":
            raise ReidExportError(f"preprocess layout must be 'NCHW', got {self.layout!r}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ReidExportError(
                f"preprocess interpolation must be one of {', '.join(_INTERPOLATIONS)}, got {self.interpolation!r}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or any(s == 0 for s in self.std):
            raise ReidExportError(f"preprocess mean/std need 3 values and non-zero std, got {self.mean} / {self.std}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one model input."""
        return (3, self.height, self.width)

    # -- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "contract") -> "Preprocess":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ReidExportError(
                f"{source}: unknown preprocessing field(s) {unknown}; known fields are {sorted(known)}. "
                "The artefact was probably written by a newer reid-export: upgrade reid-export."
            )
        d = dict(d)
        for key in ("mean", "std"):
            if key in d:
                d[key] = tuple(float(v) for v in d[key])
        return cls(**d)

    @classmethod
    def from_json(cls, text: str, *, source: str = "contract") -> "Preprocess":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ReidExportError(f"{source}: preprocessing contract is not valid JSON ({e})") from e
        return cls.from_dict(d, source=source)

    # -- applying it -------------------------------------------------------------------
    def image_to_array(self, image) -> np.ndarray:
        """One PIL image -> float32 array (3, height, width), ready for the model."""
        return self.uint8_to_array(np.asarray(self.resize(image.convert("RGB")), dtype=np.uint8))

    def resize(self, image):
        """A PIL image at the contract's size, resized with its interpolation (unchanged if already there)."""
        if image.size == (self.width, self.height):
            return image
        return image.resize((self.width, self.height), _pil_filter(self.interpolation))

    def uint8_to_array(self, hwc: np.ndarray) -> np.ndarray:
        """A (height, width, 3) RGB uint8 array already at the input size -> (3, H, W) float32."""
        return self.normalize_uint8(hwc[None])[0]

    def normalize_uint8(self, nhwc: np.ndarray) -> np.ndarray:
        """A batch (N, height, width, 3) of RGB uint8 at the input size -> (N, 3, H, W) float32."""
        x = nhwc.astype(np.float32) * np.float32(self.scale)
        if self.color == "BGR":
            x = x[..., ::-1]
        x -= np.asarray(self.mean, dtype=np.float32)
        x /= np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def decode(self, path) -> np.ndarray:
        """Read an image file (path or file object), convert to RGB and resize: (height, width, 3) uint8."""
        return np.asarray(self.resize(open_rgb(path)), dtype=np.uint8)  # EXIF, 16-bit, palette, ...: decode.py

    def load(self, path: str | Path) -> np.ndarray:
        """Read an image file and apply the contract: (3, H, W) float32."""
        return self.uint8_to_array(self.decode(path))

    def load_batch(self, paths) -> np.ndarray:
        """Read image files into one float32 batch (N, 3, H, W)."""
        return self.normalize_uint8(np.stack([self.decode(p) for p in paths]))


def _pil_filter(name: str):
    from PIL import Image

    return {
        "bilinear": Image.Resampling.BILINEAR,
        "bicubic": Image.Resampling.BICUBIC,
        "nearest": Image.Resampling.NEAREST,
    }[name]
