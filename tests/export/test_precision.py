import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from tiny_models import TINY, make_tiny_model

from reid_export.artefacts.onnx_metadata import CALIBRATION_KEY, PRECISION_KEY, read_contract, read_metadata
from reid_export.errors import DataError, ExportError
from reid_export.export.precision import calibration_images, convert_fp16, export_at_precision, quantize_int8
from reid_export.export.settings import Int8Settings
from reid_export.verified.parity import check_parity


@pytest.fixture(scope="module")
def batch(tiny_market):
    return TINY.load_batch(sorted((tiny_market / "query").glob("*.jpg"))[:8])


@pytest.fixture(scope="module")
def int8_models(tiny_market, tiny_onnx, tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8")
    paths = calibration_images(tiny_market, 24)
    return {acts: quantize_int8(tiny_onnx, folder / f"{acts}.onnx", paths, Int8Settings(activations=acts), progress=False)
            for acts in ("uint8", "int8")}


def test_fp16_graph_keeps_float32_io_the_contract_and_accuracy(tiny_onnx, tmp_path, batch):
    path = convert_fp16(tiny_onnx, tmp_path / "half.onnx")
    proto = onnx.load(str(path))
    f32 = onnx.TensorProto.FLOAT
    assert proto.graph.input[0].type.tensor_type.elem_type == f32
    assert proto.graph.output[0].type.tensor_type.elem_type == f32
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in proto.graph.initializer)
    assert read_contract(path) == read_contract(tiny_onnx)
    assert read_metadata(path)[PRECISION_KEY] == "fp16"
    assert check_parity(make_tiny_model(), path, batch)["cosine_min"] > 0.999


def test_int8_graph_is_qdq_with_per_channel_weights(int8_models):
    proto = onnx.load(str(int8_models["uint8"]))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    conv_weights = [(inits[n.input[0]], inits[n.input[1]]) for n in proto.graph.node
                    if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].ndim == 4]
    assert len(conv_weights) >= 20  # every convolution of the resnet18
    for weight, scale in conv_weights:  # one scale per output channel
        assert weight.dtype == np.int8 and scale.shape == (weight.shape[0],)


@pytest.mark.parametrize("acts,dtype", [("uint8", np.uint8), ("int8", np.int8)])
def test_int8_activation_type_follows_the_setting(int8_models, acts, dtype):
    proto = onnx.load(str(int8_models[acts]))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    zero_points = [inits[n.input[2]] for n in proto.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert zero_points and all(z.dtype == dtype for z in zero_points)
    if acts == "int8":  # symmetric, as TensorRT requires
        assert all((z == 0).all() for z in zero_points)


def test_int8_records_calibration_and_stays_close_to_pytorch(int8_models, batch):
    meta = read_metadata(int8_models["uint8"])
    assert meta[PRECISION_KEY] == "int8"
    record = json.loads(meta[CALIBRATION_KEY])
    assert record["method"] == "minmax" and record["num_images"] == 24 and record["source"].endswith("bounding_box_train")
    assert check_parity(make_tiny_model(), int8_models["uint8"], batch)["cosine_min"] > 0.98


def test_calibration_uses_training_images_only(tiny_market):
    paths = calibration_images(tiny_market, 1000)
    assert paths and all(p.parent.name == "bounding_box_train" for p in paths)
    assert calibration_images(tiny_market, 5, seed=1) == calibration_images(tiny_market, 5, seed=1)


def test_calibrating_on_query_or_gallery_is_refused_because_it_leaks(tiny_market, tiny_onnx, tmp_path):
    for folder in ("query", "bounding_box_test"):
        paths = sorted((tiny_market / folder).glob("*.jpg"))[:4]
        with pytest.raises(DataError, match="leaks"):
            quantize_int8(tiny_onnx, tmp_path / "x.onnx", paths, progress=False)
    assert not (tmp_path / "x.onnx").exists()


def test_precision_errors_name_the_allowed_values(tmp_path):
    with pytest.raises(ExportError, match="fp32, fp16, int8"):
        export_at_precision(make_tiny_model(), tmp_path / "a.onnx", precision="int4")
    with pytest.raises(ExportError, match="--calib-data"):
        export_at_precision(make_tiny_model(), tmp_path / "a.onnx", precision="int8")
    with pytest.raises(ExportError, match="minmax, entropy, percentile"):
        Int8Settings(method="kl")


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_calibration_works_when_the_images_do_not_fill_the_last_batch(method, tiny_market, tiny_onnx, tmp_path):
    # 10 images in batches of 4: ONNX Runtime's histogram collectors fail on a last batch of 2 unless it is left out
    paths = calibration_images(tiny_market, 10)
    out = quantize_int8(tiny_onnx, tmp_path / f"{method}.onnx", paths, Int8Settings(method=method, batch_size=4),
                        progress=False)
    record = json.loads(read_metadata(out)[CALIBRATION_KEY])
    assert record["method"] == method and record["num_images"] == 8
