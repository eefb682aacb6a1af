"""The one image decode of the project: a file (path or file object) -> an upright 8-bit RGB PIL image.

    image = open_rgb("0002_c1s1_000451_03.jpg")

Training, export parity, bench, serve, visualize and predict all reach it through
`Preprocess.decode`, so every one of them sees the same pixels:

* EXIF orientation is applied (a phone photo stored sideways with an Orientation tag comes out upright);
* 16-bit grey (`I;16*`, and 32-bit `I` holding 16-bit values) is scaled to 8 bits, not clipped to white;
  palette, grey+alpha, RGBA, CMYK, YCbCr and bilevel images become RGB (alpha is dropped, as
  torchvision's `convert("RGB")` does);
* anything else (floating-point, LAB, HSV, ...) is refused by name, as is an image smaller than
  `MIN_SIDE` pixels on a side, or a file that is not an image.

Errors are `DataError`s naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import DataError

__all__ = ["open_rgb", "rgb_of_opened", "MIN_SIDE", "SUPPORTED_MODES"]

MIN_SIDE = 8  # pixels; smaller crops carry no usable appearance and break the backbone's strides
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_DIRECT = ("RGB", "RGBA", "RGBX", "RGBa", "L", "LA", "La", "P", "PA", "1", "CMYK", "YCbCr")
SUPPORTED_MODES = _DIRECT + _SIXTEEN_BIT


def open_rgb(source: str | Path | BinaryIO, *, min_side: int = MIN_SIDE):
    """Decode `source` fully and return an upright RGB (8-bit) PIL image; DataError names the file."""
    from PIL import Image, UnidentifiedImageError

    name = _name(source)
    try:
        with Image.open(source) as im:
            return rgb_of_opened(im, name, min_side=min_side)
    except UnidentifiedImageError:
        raise DataError(f"{name}: not an image Pillow can read (JPEG, PNG, BMP, WebP, TIFF, ...); "
                        "remove it or convert it") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # corrupt, truncated, huge
        raise DataError(f"{name}: cannot be decoded ({type(e).__name__}: {e}); the file is corrupt or truncated: "
                        "re-copy it or remove it") from None


def rgb_of_opened(im, name: str, *, min_side: int = MIN_SIDE):
    """`open_rgb` for an image already opened with `PIL.Image.open` (its header read and checked by the caller,
    as the service does with uploads, so the header is parsed once)."""
    from PIL import Image, ImageOps

    try:
        im.load()
        image = ImageOps.exif_transpose(im)  # a copy, upright; the same image when there is no tag
        rgb = _to_rgb(image, name)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # corrupt, truncated, huge
        raise DataError(f"{name}: cannot be decoded ({type(e).__name__}: {e}); the file is corrupt or truncated: "
                        "re-copy it or remove it") from None
    width, height = rgb.size
    if min(width, height) < min_side:
        raise DataError(f"{name}: the image is {width}x{height} px; images smaller than {min_side} px on a side "
                        "are refused (too small to describe a person); remove it or use the full crop")
    return rgb


def _to_rgb(image, name: str):
    from PIL import Image

    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _SIXTEEN_BIT:
        values = np.asarray(image, dtype=np.int64)
        if mode == "I" and values.max(initial=0) <= 255 and values.min(initial=0) >= 0:
            grey = values.astype(np.uint8)  # an 8-bit image stored in 32-bit ints
        else:
            grey = np.round(np.clip(values, 0, 65535) / 257.0).astype(np.uint8)  # 65535 -> 255, 0 -> 0
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode in _DIRECT:
        return image.convert("RGB")
    raise DataError(f"{name}: unsupported pixel format {mode!r}; reid-export reads 8-bit and 16-bit grey, RGB(A), "
                    "palette, CMYK and YCbCr images. Convert it to an 8-bit RGB PNG or JPEG")


def _name(source) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return str(getattr(source, "name", None) or "uploaded image")
