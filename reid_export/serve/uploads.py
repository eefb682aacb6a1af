"""Checking an uploaded file before it reaches the model: size, pixels, content, decode.

`read_header(data, name, limits)` checks what the header tells and returns the opened image, its pixel
count and format; `decode_checked(image, name, contract)` decodes that same object to the contract's size
(H, W, 3) uint8 (the caller picks the thread: crops on the event loop, big images off it). Both raise
`UploadError` with the HTTP status to answer: 413 for too many bytes or pixels (decompression bombs are
refused from the header, before decoding), 415 for content that is not an image (whatever its name or
declared type says), 422 for an empty, corrupt, truncated or tiny image.
The bytes themselves never appear in a message or a log. `check_id` bounds the ids an upload gives
(`PID_RANGE`, `CAMID_RANGE`, `EXCLUDE_CAMERA_RANGE`: 422 naming the field beyond them).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from ..contract import Preprocess
from ..errors import DataError, ReidExportError
from ..options import whole

__all__ = ["UploadLimits", "UploadError", "read_header", "decode_checked", "check_id", "FORMAT_SUFFIX",
           "INLINE_PIXELS", "PID_RANGE", "CAMID_RANGE", "EXCLUDE_CAMERA_RANGE"]

# uploads up to this many pixels are decoded on the event loop (a Market crop, 64x128, takes ~0.15 ms);
# larger ones on a worker thread, so a big image never stalls other requests
INLINE_PIXELS = 512 * 512

FORMAT_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tiff", "GIF": ".gif",
                 "MPO": ".jpg"}


# the ids an upload may give: what JSON, the page's JavaScript, the manifest and both stores (int64 camid,
# -1 there meaning "no camera") all keep exactly; Market-1501 names use pid -1 for junk and 0 for distractors
PID_RANGE = (-1, 2**31 - 1)
CAMID_RANGE = (0, 2**31 - 1)
EXCLUDE_CAMERA_RANGE = (-1, 2**31 - 1)  # -1: leave out the items without a camera


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 10 * 1024 * 1024  # per uploaded file
    max_pixels: int = 16_000_000  # width x height, read from the header before decoding
    max_files: int = 64  # images per request

    def __post_init__(self) -> None:
        whole(self.max_bytes, "--max-upload-mb (UploadLimits.max_bytes, in bytes)", low=1)
        whole(self.max_pixels, "UploadLimits.max_pixels", low=1)
        whole(self.max_files, "UploadLimits.max_files", low=1, high=10_000)


class UploadError(ReidExportError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def read_header(data: bytes, name: str, limits: UploadLimits):
    """The checks that need only the header: size in bytes, image type, pixel count.
    -> (the opened PIL image, for `decode_checked`; its pixels; its format)."""
    from PIL import Image, UnidentifiedImageError

    label = _label(name)
    if not data:
        raise UploadError(422, f"{label}: the upload is empty (0 bytes); send an image file (JPEG, PNG, ...)")
    if len(data) > limits.max_bytes:
        raise UploadError(413, f"{label}: {len(data)} bytes is over the upload limit of {limits.max_bytes} bytes")
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only; decoded later from the same object
        width, height = image.size
        fmt = image.format or ""
    except Image.DecompressionBombError:  # Pillow's own refusal, past twice its MAX_IMAGE_PIXELS (~179 M)
        raise UploadError(413, f"{label}: over the limit of {limits.max_pixels} pixels (Pillow refused it from the "
                          "header as a decompression bomb); upload a person crop, not a whole frame") from None
    except UnidentifiedImageError:
        raise UploadError(415, f"{label}: not an image (the content is not JPEG, PNG, BMP, WebP or TIFF); "
                          "upload a person crop") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UploadError(422, f"{label}: the image header cannot be read ({type(e).__name__}); "
                          "the file is corrupt") from None
    if fmt not in FORMAT_SUFFIX:
        raise UploadError(415, f"{label}: {fmt or 'this'} images are not accepted; upload JPEG, PNG, BMP, WebP, "
                          "TIFF or GIF")
    if width * height > limits.max_pixels:
        raise UploadError(413, f"{label}: {width}x{height} pixels is over the limit of {limits.max_pixels} pixels; "
                          "upload a person crop, not a whole frame")
    return image, width * height, fmt


def decode_checked(image, name: str, contract: Preprocess) -> np.ndarray:
    """An image `read_header` opened and passed -> (height, width, 3) uint8 at the contract's size."""
    label = _label(name)
    try:
        with image:
            return contract.decode_opened(image, label)
    except DataError as e:
        raise UploadError(422, str(e)) from None
    except Exception as e:  # noqa: BLE001 - anything Pillow raises on a hostile file is the upload's fault
        raise UploadError(422, f"{label}: cannot be decoded ({type(e).__name__}); the file is corrupt") from None


def check_id(value: int | None, field: str, bounds: tuple[int, int], where: str = "") -> int | None:
    """An id an upload gives (`camid`, `pid`, `exclude_camera`), or None; out of `bounds`: 422 naming the field."""
    if value is not None and not bounds[0] <= value <= bounds[1]:
        shown = str(value) if len(str(value)) <= 24 else str(value)[:21] + "..."
        raise UploadError(422, f"field {field!r}{where}: {shown} is out of range; it takes a whole number from "
                          f"{bounds[0]} to {bounds[1]}")
    return value


def _label(name: str | None) -> str:
    name = (name or "").replace("\n", " ").replace("\r", " ")[:80]
    return f"upload {name!r}" if name else "upload"
