"""The one decode: EXIF orientation, 16-bit / palette / LA / CMYK converted to 8-bit RGB, odd formats and
tiny images refused by name; every consumer goes through it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from reid_export.contract import Preprocess
from reid_export.decode import open_rgb
from reid_export.errors import DataError


def _rotated_jpeg(path, orientation: int = 6):
    """A 20 (wide) x 10 (tall) image, left half red, with an EXIF Orientation tag."""
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :10] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), quality=95)
    return path


def test_exif_orientation_is_applied(tmp_path):
    image = open_rgb(_rotated_jpeg(tmp_path / "phone.jpg"))
    assert image.size == (10, 20)  # orientation 6: rotate 90 degrees, so it stands upright
    top = np.asarray(image)[:10].reshape(-1, 3).mean(axis=0)
    assert top[0] > 200 and top[1] < 60  # the red half is now on top


def test_exif_orientation_reaches_the_contract_decode(tmp_path):
    path = _rotated_jpeg(tmp_path / "phone.jpg")
    pixels = Preprocess(height=20, width=10).decode(path)
    assert pixels[:10].reshape(-1, 3).mean(axis=0)[0] > 200  # no resize: upright red on top


def test_sixteen_bit_grey_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "grey16.png"
    values = np.tile(np.linspace(0, 65535, 16).astype(np.uint16), (16, 1))
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = np.asarray(open_rgb(path))
    assert rgb.dtype == np.uint8 and rgb.shape == (16, 16, 3)
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255
    assert 100 < rgb[0, 8, 0] < 160  # mid-grey stays mid-grey (today's bug: all white)


@pytest.mark.parametrize("mode", ["P", "LA", "CMYK", "L", "1", "RGBA"])
def test_common_pixel_formats_become_rgb(tmp_path, mode):
    base = Image.fromarray(np.full((12, 12, 3), (200, 30, 30), np.uint8))
    image = base.convert(mode)
    path = tmp_path / f"x.{'jpg' if mode == 'CMYK' else 'png'}"
    image.save(path)
    rgb = open_rgb(path)
    assert rgb.mode == "RGB" and rgb.size == (12, 12)
    expected = np.asarray(image.convert("RGB"), dtype=float).mean()
    assert abs(np.asarray(rgb, dtype=float).mean() - expected) < 12


def test_floating_point_images_are_refused_by_name(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.random.default_rng(0).random((12, 12)).astype(np.float32), mode="F").save(path)
    with pytest.raises(DataError, match=r"float\.tif: unsupported pixel format 'F'"):
        open_rgb(path)


def test_tiny_images_are_reported(tmp_path):
    path = tmp_path / "tiny.png"
    Image.new("RGB", (5, 30)).save(path)
    with pytest.raises(DataError, match=r"tiny\.png: the image is 5x30 px.*smaller than 8 px"):
        open_rgb(path)


def test_not_an_image_and_truncated_files_name_the_file(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(DataError, match="notes.jpg: not an image"):
        open_rgb(text)
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(good, format="JPEG")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.getvalue()[:200])
    with pytest.raises(DataError, match="cut.jpg: cannot be decoded"):
        open_rgb(cut)


def test_file_objects_decode_like_paths(tmp_path):
    path = _rotated_jpeg(tmp_path / "phone.jpg")
    with open(path, "rb") as f:
        from_file = Preprocess(height=20, width=10).decode(io.BytesIO(f.read()))
    assert np.array_equal(from_file, Preprocess(height=20, width=10).decode(path))
