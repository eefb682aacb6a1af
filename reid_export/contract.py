"""The preprocessing contract: how an image becomes the model's input, and what comes out.

The contract is data. Training writes it into the checkpoint, export writes it into the
artefact (ONNX metadata, TensorRT sidecar), and every runtime reads it back from there,
so nobody re-types mean/std or the input size by hand.

The contract also says *which* resize it means, because two "bilinear" resizes are not the same
pixels: Pillow's bilinear widens its filter when it shrinks (antialiased), OpenCV's INTER_LINEAR
does not, and on detector crops 2-3x larger than the input the embeddings drift apart.
`resize_method` names the implementation (`pil-bilinear-antialias`, `cv2-linear`, `cv2-area`, ...)
and `aspect` the aspect policy: `stretch` (as Market-1501 training does) or `keep-and-pad` (scale to
fit, pad the right and bottom with black, as DeepStream's keep-aspect scaling does). Contracts written
before these fields existed read back as what they meant: Pillow at `interpolation`, stretched.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from .decode import open_rgb, rgb_of_opened
from .errors import ReidExportError

__all__ = ["Preprocess", "METADATA_KEY", "IMAGENET_MEAN", "IMAGENET_STD", "RESIZE_METHODS", "ASPECTS"]

METADATA_KEY = "reid_export.preprocess"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "area")
# resize implementation -> the interpolation family it belongs to (the `interpolation` field)
RESIZE_METHODS = {
    "pil-bilinear-antialias": "bilinear",  # PIL.Image.resize(BILINEAR): the filter widens when shrinking
    "pil-bicubic-antialias": "bicubic",
    "pil-nearest": "nearest",
    "cv2-linear": "bilinear",  # cv2.resize(INTER_LINEAR): 2x2 taps whatever the scale (boxmot, ultralytics)
    "cv2-cubic": "bicubic",
    "cv2-nearest": "nearest",
    "cv2-area": "area",  # cv2.resize(INTER_AREA): pixel-area averaging when shrinking
}
ASPECTS = ("stretch", "keep-and-pad")


@dataclass(frozen=True)
class Preprocess:
    height: int = 256  # model input height in pixels
    width: int = 128  # model input width in pixels
    color: str = "RGB"  # channel order fed to the model
    scale: float = 1.0 / 255.0  # uint8 pixel values are multiplied by this first
    mean: tuple[float, float, float] = IMAGENET_MEAN  # subtracted per channel after scaling
    std: tuple[float, float, float] = IMAGENET_STD  # divided per channel after the mean
    layout: str = "NCHW"  # tensor layout of the model input
    interpolation: str = ""  # resize filter family: bilinear | bicubic | nearest | area ("" = from resize_method)
    l2_normalized: bool = True  # whether the `embedding` output is already L2-normalised
    version: int = field(default=1)  # bumps when the meaning of a field changes
    resize_method: str = ""  # which resize implementation, one of RESIZE_METHODS ("" = Pillow at `interpolation`)
    aspect: str = "stretch"  # stretch to height x width, or keep-and-pad (fit inside, pad right/bottom black)

    def __post_init__(self) -> None:
        self._resolve_resize()
        if self.height <= 0 or self.width <= 0:
            raise ReidExportError(f"preprocess size must be positive, got {self.height}x{self.width}")
        if self.color not in ("RGB", "BGR"):
            raise ReidExportError(f"preprocess color must be 'RGB' or 'BGR', got {self.color!r}")
        if self.layout != "NCHW":
            raise ReidExportError(f"preprocess layout must be 'NCHW', got {self.layout!r}")
        if self.aspect not in ASPECTS:
            raise ReidExportError(f"preprocess aspect must be one of {', '.join(ASPECTS)}, got {self.aspect!r}")
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
        """A PIL image or (h, w, 3) uint8 array at the contract's size, the same kind back: resized with
        `resize_method` under the `aspect` policy (unchanged if already at the size)."""
        is_array = isinstance(image, np.ndarray)
        size = (image.shape[1], image.shape[0]) if is_array else image.size
        if size == (self.width, self.height):
            return image
        if self.aspect == "stretch":
            return _resize(image, (self.width, self.height), self.resize_method)
        s = min(self.width / size[0], self.height / size[1])
        fitted = _resize(image, (min(self.width, max(1, round(size[0] * s))),
                                 min(self.height, max(1, round(size[1] * s)))), self.resize_method)
        canvas = np.zeros((self.height, self.width, 3), dtype=np.uint8)  # black, content at the top left
        pixels = fitted if is_array else np.asarray(fitted.convert("RGB"), dtype=np.uint8)
        canvas[:pixels.shape[0], :pixels.shape[1]] = pixels
        return canvas if is_array else _pil_image(canvas)

    def uint8_to_array(self, hwc: np.ndarray) -> np.ndarray:
        """A (height, width, 3) RGB uint8 array already at the input size -> (3, H, W) float32."""
        return self.normalize_uint8(hwc[None])[0]

    def normalize_uint8(self, nhwc: np.ndarray) -> np.ndarray:
        """A batch (N, height, width, 3) of RGB uint8 at the input size -> (N, 3, H, W) float32.

        Each output channel is a lookup of its 256 possible values, computed once with the float32 steps
        `(value * scale - mean) / std` (so bit-identical to doing them per pixel) and written straight
        into the NCHW layout: one pass instead of four broadcasts over a last axis of 3."""
        nhwc = np.asarray(nhwc)
        if nhwc.dtype != np.uint8 or nhwc.ndim != 4 or nhwc.shape[-1] != 3:
            raise ReidExportError(f"normalize_uint8 takes uint8 images (N, H, W, 3); got {nhwc.dtype} {nhwc.shape}")
        table = self._lookup_table()
        source = (2, 1, 0) if self.color == "BGR" else (0, 1, 2)
        out = np.empty((nhwc.shape[0], 3, *nhwc.shape[1:3]), dtype=np.float32)
        for channel, src in enumerate(source):
            np.take(table[channel], nhwc[..., src], out=out[:, channel])
        return out

    def _lookup_table(self) -> np.ndarray:
        """(3, 256) float32: channel c of the model input for each uint8 value of its source channel."""
        table = self.__dict__.get("_table")
        if table is None:
            values = np.arange(256, dtype=np.float32)[:, None] * np.float32(self.scale)
            table = ((values - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)).T
            table = np.ascontiguousarray(table)
            object.__setattr__(self, "_table", table)  # a cache on a frozen dataclass: not a field
        return table

    def decode(self, path) -> np.ndarray:
        """Read an image file (path or file object), convert to RGB and resize: (height, width, 3) uint8."""
        return np.asarray(self.resize(open_rgb(path)), dtype=np.uint8)  # EXIF, 16-bit, palette, ...: decode.py

    def decode_opened(self, image, name: str) -> np.ndarray:
        """`decode` for an image already opened with `PIL.Image.open`: (height, width, 3) uint8."""
        return np.asarray(self.resize(rgb_of_opened(image, name)), dtype=np.uint8)

    def load(self, path: str | Path) -> np.ndarray:
        """Read an image file and apply the contract: (3, H, W) float32."""
        return self.uint8_to_array(self.decode(path))

    def load_batch(self, paths) -> np.ndarray:
        """Read image files into one float32 batch (N, 3, H, W)."""
        return self.normalize_uint8(np.stack([self.decode(p) for p in paths]))

    # -- private ---------------------------------------------------------------------------
    def _resolve_resize(self) -> None:
        """Fill `interpolation` from `resize_method` or the other way round; contracts from before
        `resize_method` existed mean Pillow at their `interpolation`."""
        interpolation, method = self.interpolation, self.resize_method
        if interpolation and interpolation not in _INTERPOLATIONS:
            raise ReidExportError(
                f"preprocess interpolation must be one of {', '.join(_INTERPOLATIONS)}, got {interpolation!r}")
        if method and method not in RESIZE_METHODS:
            raise ReidExportError(
                f"preprocess resize_method must be one of {', '.join(RESIZE_METHODS)}, got {method!r}")
        if not method:
            method = {"bilinear": "pil-bilinear-antialias", "bicubic": "pil-bicubic-antialias",
                      "nearest": "pil-nearest"}.get(interpolation or "bilinear")
            if method is None:
                raise ReidExportError("preprocess interpolation 'area' exists only as OpenCV's: "
                                      "set resize_method='cv2-area'")
        if interpolation and RESIZE_METHODS[method] != interpolation:
            raise ReidExportError(f"preprocess resize_method {method!r} is a {RESIZE_METHODS[method]} resize, "
                                  f"but interpolation says {interpolation!r}; give one of them, or matching ones")
        object.__setattr__(self, "resize_method", method)
        object.__setattr__(self, "interpolation", RESIZE_METHODS[method])


def _resize(image, size: tuple[int, int], method: str):
    """`image` (PIL or uint8 array) to `size` (width, height) with the named implementation; same kind back."""
    library, _, kind = method.partition("-")
    is_array = isinstance(image, np.ndarray)
    if library == "pil":
        from PIL import Image

        pil_filter = {"bilinear-antialias": Image.Resampling.BILINEAR, "bicubic-antialias": Image.Resampling.BICUBIC,
                      "nearest": Image.Resampling.NEAREST}[kind]
        resized = (_pil_image(image) if is_array else image).resize(size, pil_filter)
        return np.asarray(resized, dtype=np.uint8) if is_array else resized
    try:
        import cv2
    except ImportError as e:
        raise ReidExportError(f"preprocess resize_method {method!r} needs OpenCV: pip install opencv-python-headless "
                              "(or use a pil-* resize_method)") from e
    flag = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "nearest": cv2.INTER_NEAREST,
            "area": cv2.INTER_AREA}[kind]
    pixels = image if is_array else np.asarray(image.convert("RGB"), dtype=np.uint8)
    resized = cv2.resize(np.ascontiguousarray(pixels), size, interpolation=flag)  # channel order is irrelevant here
    return resized if is_array else _pil_image(resized)


def _pil_image(hwc: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(hwc, dtype=np.uint8))
