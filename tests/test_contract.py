import numpy as np
import pytest
from PIL import Image

from reid_export.contract import Preprocess
from reid_export.errors import ReidExportError


def test_contract_round_trips_through_json():
    c = Preprocess(height=128, width=64, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4), interpolation="bicubic",
                   l2_normalized=False)
    assert Preprocess.from_json(c.to_json()) == c


def test_unknown_field_is_refused_with_the_field_named():
    with pytest.raises(ReidExportError, match="colour_space"):
        Preprocess.from_dict({"height": 10, "colour_space": "yuv"})


@pytest.mark.parametrize("bad", [{"height": 0}, {"color": "YUV"}, {"layout": "NHWC"}, {"interpolation": "lanczos"},
                                 {"std": (0.0, 1.0, 1.0)}])
def test_invalid_values_are_refused(bad):
    with pytest.raises(ReidExportError):
        Preprocess(**bad)


def test_image_is_resized_scaled_and_normalised_in_rgb_order(tmp_path):
    hwc = np.zeros((20, 10, 3), dtype=np.uint8)
    hwc[..., 0] = 255  # pure red
    path = tmp_path / "red.png"
    Image.fromarray(hwc).save(path)
    c = Preprocess(height=8, width=4, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.5))
    x = c.load(path)
    assert x.shape == (3, 8, 4) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], 1.0, atol=1e-6)  # (1 - 0.5) / 0.5
    np.testing.assert_allclose(x[1], -2.0, atol=1e-6)  # (0 - 0.5) / 0.25
    bgr = Preprocess(height=8, width=4, color="BGR", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)).load(path)
    np.testing.assert_allclose(bgr[2], 1.0, atol=1e-6)  # red lands in the last channel


def test_batch_normalisation_matches_single_images():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 8, 4, 3), dtype=np.uint8)
    c = Preprocess(height=8, width=4)
    batch = c.normalize_uint8(images)
    for i in range(5):
        np.testing.assert_allclose(batch[i], c.uint8_to_array(images[i]), rtol=1e-6)


@pytest.mark.parametrize("color", ["RGB", "BGR"])
def test_batch_normalisation_is_bit_identical_to_scale_subtract_divide_in_float32(color):
    """The lookup-table normaliser against the arithmetic it replaces, on every uint8 value of every channel."""
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (3, 16, 8, 3), dtype=np.uint8)
    images[0, :16, :8] = np.arange(128, dtype=np.uint8).reshape(16, 8)[..., None] * 2 + np.array([0, 1, 0], np.uint8)
    c = Preprocess(height=16, width=8, color=color)
    x = images.astype(np.float32) * np.float32(c.scale)
    if color == "BGR":
        x = x[..., ::-1]
    x = (x - np.asarray(c.mean, np.float32)) / np.asarray(c.std, np.float32)
    expected = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    got = c.normalize_uint8(images)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert np.array_equal(got, expected)
    with pytest.raises(ReidExportError, match="uint8 images"):
        c.normalize_uint8(images.astype(np.float32))


def _gradient(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_contracts_written_before_resize_method_read_back_as_pillow_bilinear_stretched():
    old = {"height": 16, "width": 8, "color": "RGB", "scale": 1 / 255, "mean": [0.485, 0.456, 0.406],
           "std": [0.229, 0.224, 0.225], "layout": "NCHW", "interpolation": "bilinear", "l2_normalized": True,
           "version": 1}
    c = Preprocess.from_dict(old)
    assert (c.resize_method, c.aspect, c.interpolation) == ("pil-bilinear-antialias", "stretch", "bilinear")
    assert c == Preprocess(height=16, width=8)
    image = Image.fromarray(_gradient(43, 22))  # 2.7x the input, as detector crops are
    expected = np.asarray(image.resize((8, 16), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(np.asarray(c.resize(image)), expected)
    assert Preprocess.from_dict(old | {"interpolation": "bicubic"}).resize_method == "pil-bicubic-antialias"


def test_new_fields_round_trip_and_are_written_explicitly():
    c = Preprocess(height=16, width=8, resize_method="cv2-area", aspect="keep-and-pad")
    d = c.to_dict()
    assert d["resize_method"] == "cv2-area" and d["aspect"] == "keep-and-pad" and d["interpolation"] == "area"
    assert Preprocess.from_json(c.to_json()) == c


@pytest.mark.parametrize("bad", [{"resize_method": "cv2-lanczos"}, {"aspect": "crop"},
                                 {"resize_method": "cv2-area", "interpolation": "bilinear"},
                                 {"interpolation": "area"}])
def test_unknown_or_contradicting_resize_settings_are_refused(bad):
    with pytest.raises(ReidExportError):
        Preprocess(**bad)


def test_cv2_linear_is_opencvs_resize_and_differs_from_pillows_when_shrinking():
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is not installed")
    pixels = _gradient(43, 22)
    c = Preprocess(height=16, width=8, resize_method="cv2-linear")
    got = c.resize(pixels)
    np.testing.assert_array_equal(got, cv2.resize(pixels, (8, 16), interpolation=cv2.INTER_LINEAR))
    pil = Preprocess(height=16, width=8).resize(pixels)  # arrays in, arrays out
    assert got.shape == pil.shape == (16, 8, 3) and np.abs(got.astype(int) - pil).max() > 10
    assert np.asarray(c.resize(Image.fromarray(pixels))).tolist() == got.tolist()  # PIL in, same pixels


def test_keep_and_pad_fits_the_crop_and_pads_right_and_bottom_black():
    tall = np.full((40, 10, 3), 200, dtype=np.uint8)  # 4:1, the input is 2:1
    c = Preprocess(height=16, width=8, aspect="keep-and-pad")
    out = c.resize(tall)
    assert out.shape == (16, 8, 3)
    assert (out[:, :4] == 200).all() and (out[:, 4:] == 0).all()
    wide = np.full((10, 20, 3), 90, dtype=np.uint8)
    out = np.asarray(c.resize(Image.fromarray(wide)))
    assert (out[:4] == 90).all() and (out[4:] == 0).all()
    stretched = Preprocess(height=16, width=8).resize(tall)
    assert (stretched == 200).all()


def test_decode_honours_the_resize_method(tmp_path):
    pytest.importorskip("cv2", reason="opencv-python-headless is not installed")
    path = tmp_path / "crop.png"
    Image.fromarray(_gradient(43, 22)).save(path)
    pil, cv = Preprocess(height=16, width=8), Preprocess(height=16, width=8, resize_method="cv2-linear")
    np.testing.assert_array_equal(cv.decode(path), cv.resize(np.asarray(Image.open(path))))
    assert not np.array_equal(pil.decode(path), cv.decode(path))
