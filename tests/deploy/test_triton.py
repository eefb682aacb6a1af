"""Triton model repository: config.pbtxt parsed with Triton's own model-config protobuf schema (from tritonclient),
its fields compared with the artefact. No Triton server runs here."""

from __future__ import annotations

import json

import pytest
from google.protobuf import text_format
from tiny_models import TINY, make_tiny_model

from reid_export.artefacts.tensorrt_sidecar import new_sidecar, write_sidecar
from reid_export.contract import Preprocess
from reid_export.deploy.triton import (
    model_config_schema,
    parse_config,
    write_triton_repository,
)
from reid_export.errors import ExportError
from reid_export.export.onnx import export_onnx

schema = model_config_schema()  # Triton's model_config.proto as compiled in tritonclient (a dev dependency)


def _parsed(model):
    return text_format.Parse(model.config.read_text(), schema.ModelConfig())


def test_onnx_repository_config_parses_with_tritons_schema_and_matches_the_graph(tiny_onnx, tmp_path):
    model = write_triton_repository(tiny_onnx, tmp_path / "repo", name="reid", max_batch=64, instances=2)
    assert model.checked
    assert (tmp_path / "repo" / "reid" / "1" / "model.onnx").read_bytes() == tiny_onnx.read_bytes()
    cfg = _parsed(model)
    assert cfg.name == "reid" and cfg.backend == "onnxruntime" and cfg.max_batch_size == 64
    assert [(i.name, i.data_type, list(i.dims)) for i in cfg.input] == [
        ("input", schema.TYPE_FP32, [3, TINY.height, TINY.width])]
    assert [(o.name, o.data_type, list(o.dims)) for o in cfg.output] == [("embedding", schema.TYPE_FP32, [512])]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [16, 32, 64]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 100
    assert [(g.count, g.kind) for g in cfg.instance_group] == [(2, schema.ModelInstanceGroup.KIND_GPU)]
    assert Preprocess.from_json(cfg.parameters["reid_export.preprocess"].string_value) == TINY
    assert cfg.parameters["reid_export.precision"].string_value == "fp32"


def test_attribute_output_is_declared(tmp_path):
    onnx_path = export_onnx(make_tiny_model(attributes=True), tmp_path / "attr.onnx", with_attributes=True)
    cfg = _parsed(write_triton_repository(onnx_path, tmp_path / "repo", kind="cpu"))
    assert [(o.name, list(o.dims)) for o in cfg.output] == [("embedding", [512]), ("attributes", [30])]
    assert cfg.instance_group[0].kind == schema.ModelInstanceGroup.KIND_CPU
    assert cfg.max_batch_size == 128


def _engine_with_sidecar(tmp_path, tiny_onnx, max_batch=32):
    """A stand-in engine file with a real reid-export sidecar: no TensorRT here, only the config derives from it."""
    engine = tmp_path / "model.engine"
    data = b"not a real TensorRT plan: the sidecar is what this test reads"
    engine.write_bytes(data)
    sidecar = new_sidecar(engine_bytes=data, engine_name=engine.name, onnx_path=tiny_onnx, contract=TINY.to_dict(),
                          precision="fp16", tensorrt_version="10.9.0", gpu_name="NVIDIA H100", compute_capability="9.0",
                          profile={"input": "input", "min": [1, 3, 64, 32], "opt": [8, 3, 64, 32],
                                   "max": [max_batch, 3, 64, 32]},
                          inputs=[{"name": "input", "dtype": "float32", "shape": [-1, 3, 64, 32]}],
                          outputs=[{"name": "embedding", "dtype": "float32", "shape": [-1, 512]}], layers={},
                          build_seconds=1.0)
    write_sidecar(engine, sidecar)
    return engine


def test_engine_repository_takes_max_batch_from_the_profile(tiny_onnx, tmp_path):
    engine = _engine_with_sidecar(tmp_path, tiny_onnx, max_batch=32)
    model = write_triton_repository(engine, tmp_path / "repo")
    assert model.files[0].name == "model.plan"
    cfg = _parsed(model)
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 32
    assert list(cfg.input[0].dims) == [3, 64, 32] and list(cfg.output[0].dims) == [512]
    assert cfg.parameters["reid_export.precision"].string_value == "fp16"
    assert cfg.parameters["reid_export.tensorrt_version"].string_value == "10.9.0"
    with pytest.raises(ExportError, match="exceeds the engine's optimisation profile max of 32"):
        write_triton_repository(engine, tmp_path / "repo2", max_batch=64)


def test_openvino_ir_repository(tiny_onnx, tmp_path):
    openvino_export = pytest.importorskip("reid_export.verified.openvino", reason="OpenVINO export not available")
    result = openvino_export.export_openvino(tiny_onnx, tmp_path / "model.xml")
    model = write_triton_repository(result.path, tmp_path / "repo")
    assert sorted(p.name for p in model.files) == ["model.bin", "model.xml"]
    cfg = _parsed(model)
    assert cfg.backend == "openvino" and cfg.instance_group[0].kind == schema.ModelInstanceGroup.KIND_CPU
    assert list(cfg.input[0].dims) == [3, TINY.height, TINY.width]
    assert Preprocess.from_json(cfg.parameters["reid_export.preprocess"].string_value) == TINY


def test_a_malformed_config_is_refused_by_the_schema(tiny_onnx, tmp_path):
    text = write_triton_repository(tiny_onnx, tmp_path / "repo").config.read_text()
    parse_config(text)
    for bad in (text.replace("max_batch_size", "max_batch_sizes"),  # no such field
                text.replace("TYPE_FP32", "TYPE_FLOAT32", 1),  # no such data type
                text.replace("KIND_GPU", "GPU"),  # no such instance kind
                text.replace('"reid"', "reid", 1)):  # a string unquoted
        with pytest.raises(ExportError, match="does not parse"):
            parse_config(bad)


def test_contract_parameter_is_valid_json_for_clients(tiny_onnx, tmp_path):
    cfg = _parsed(write_triton_repository(tiny_onnx, tmp_path / "repo"))
    assert json.loads(cfg.parameters["reid_export.preprocess"].string_value)["height"] == TINY.height


def test_existing_model_folder_is_not_replaced_without_overwrite(tiny_onnx, tmp_path):
    write_triton_repository(tiny_onnx, tmp_path / "repo")
    with pytest.raises(ExportError, match="already exists"):
        write_triton_repository(tiny_onnx, tmp_path / "repo")
    write_triton_repository(tiny_onnx, tmp_path / "repo", overwrite=True, max_batch=8)
    assert _parsed(write_triton_repository(tiny_onnx, tmp_path / "repo", overwrite=True, max_batch=8)).max_batch_size == 8
