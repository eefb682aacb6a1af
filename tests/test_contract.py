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
