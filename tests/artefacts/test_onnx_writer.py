"""The one ONNX writer: every export path ends in `write_onnx_artefact`, so every ONNX the project writes has
the contract, precision and model in its metadata and a tracker sidecar that describes this very file."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tiny_models import TINY, make_tiny_model

from reid_export.artefacts.onnx_metadata import METADATA_KEY, MODEL_KEY, PRECISION_KEY, read_onnx_info
from reid_export.artefacts.onnx_writer import write_onnx_artefact
from reid_export.artefacts.tracker_sidecar import read_tracker_sidecar, tracker_sidecar_path
from reid_export.artefacts.tensorrt_sidecar import file_sha256
from reid_export.contract import IMAGENET_MEAN, IMAGENET_STD
from reid_export.deploy.deepstream import write_deepstream
from reid_export.errors import ExportError
from reid_export.export.adopt import adopt_onnx
from reid_export.export.onnx import export_onnx
from reid_export.export.precision import export_at_precision
from reid_export.export.settings import Int8Search, Int8Settings
from reid_export.verified.int8_search import SEARCH_KEY, int8_with_accuracy_control

FAST_INT8 = Int8Settings(num_images=16, batch_size=8)


def _fp32(tmp, market, ckpt):
    return export_onnx(make_tiny_model(), tmp / "fp32.onnx")


def _fp16(tmp, market, ckpt):
    return export_at_precision(make_tiny_model(), tmp / "fp16.onnx", precision="fp16")


def _int8(tmp, market, ckpt):
    return export_at_precision(make_tiny_model(), tmp / "int8.onnx", precision="int8", calib_data=market,
                               int8=FAST_INT8, progress=False)


def _int8_accuracy_controlled(tmp, market, ckpt):
    fp32 = export_onnx(make_tiny_model(), tmp / "source" / "fp32.onnx")
    return int8_with_accuracy_control(fp32, tmp / "int8-search.onnx", calib_data=market, settings=FAST_INT8,
                                      search=Int8Search(max_map_drop=100.0, val_ids=3), progress=False,
                                      log=lambda _: None).path


def _deepstream(tmp, market, ckpt):
    return write_deepstream(ckpt, tmp / "ds").onnx


def _adopt(tmp, market, ckpt):
    return adopt_onnx(_foreign_onnx(tmp / "foreign.onnx"), tmp / "adopted.onnx", height=TINY.height,
                      width=TINY.width, mean=IMAGENET_MEAN, std=IMAGENET_STD, color="rgb").path


EXPORT_PATHS = {"fp32": _fp32, "fp16": _fp16, "int8": _int8, "int8-accuracy-controlled": _int8_accuracy_controlled,
                "deepstream": _deepstream, "adopt": _adopt}


@pytest.mark.slow
@pytest.mark.parametrize("path_name", list(EXPORT_PATHS))
def test_every_export_path_writes_metadata_and_a_sidecar_that_agree(path_name, tiny_market, tiny_checkpoint, tmp_path):
    out = EXPORT_PATHS[path_name](tmp_path, tiny_market, tiny_checkpoint)
    info = read_onnx_info(out)
    assert {METADATA_KEY, PRECISION_KEY, MODEL_KEY} <= set(info.metadata)
    sidecar = read_tracker_sidecar(out)  # refuses a sidecar of another file (sha256)
    ours = sidecar["reid_export"]
    assert ours["onnx"] == {"file": out.name, "sha256": file_sha256(out)}
    assert ours["preprocess"] == info.contract.to_dict()
    expected = {"fp16": "fp16", "int8": "int8", "int8-accuracy-controlled": "int8"}.get(path_name, "fp32")
    assert ours["precision"] == info.precision == expected
    assert ours["embedding_dim"] == info.model["embedding_dim"]
    assert sidecar["img_size"] == [info.contract.height, info.contract.width]
    if path_name == "int8-accuracy-controlled":
        assert json.loads(info.metadata[SEARCH_KEY])["met"] is True  # the search record survived the writer


def test_metadata_already_in_the_graph_is_kept_and_extra_values_are_stored_as_json(tmp_path):
    proto = _foreign_proto()
    proto.metadata_props.add(key="author", value="someone else")
    out = write_onnx_artefact(proto, tmp_path / "m.onnx", contract=TINY, precision="fp32",
                              model_info={"arch": "handmade", "embedding_dim": 4}, extra={"note": {"a": 1}})
    meta = read_onnx_info(out).metadata
    assert meta["author"] == "someone else" and json.loads(meta["note"]) == {"a": 1}
    assert read_tracker_sidecar(out)["model_name"] == "reid_export_handmade"


def test_a_graph_without_a_contract_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ExportError, match="would lack the metadata reid_export.preprocess"):
        write_onnx_artefact(_foreign_proto(), tmp_path / "m.onnx", precision="fp32", model_info={"arch": "x"})
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_precision_is_refused(tmp_path):
    with pytest.raises(ExportError, match="'bf16' is not one of fp32, fp16, int8"):
        write_onnx_artefact(_foreign_proto(), tmp_path / "m.onnx", contract=TINY, precision="bf16",
                            model_info={"arch": "x"})


def test_an_onnx_whose_sidecar_cannot_be_written_is_not_left_behind(tmp_path):
    out = tmp_path / "m.onnx"
    tracker_sidecar_path(out).mkdir()  # a folder where the sidecar must go: the sidecar write fails
    with pytest.raises(Exception):
        write_onnx_artefact(_foreign_proto(), out, contract=TINY, precision="fp32", model_info={"arch": "x"})
    assert not out.exists()


def _foreign_proto():
    """A graph as another tool writes it: input `x` (N, 3, 64, 32) -> 1x1 conv -> global pool -> `feat` (N, 4)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 1, 1)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Flatten", ["p"], ["feat"], axis=1)]
    graph = helper.make_graph(nodes, "foreign", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                               ["n", 3, TINY.height, TINY.width])],
                              [helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["n", 4])], [w])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 9
    return proto


def _foreign_onnx(path):
    onnx.save(_foreign_proto(), str(path))
    return path
