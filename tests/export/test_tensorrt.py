"""TensorRT export: what runs without TensorRT (settings, sidecar, compatibility, inspector parsing, refusals),
plus real builds that run only where TensorRT and an NVIDIA GPU are present."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from tensorrt_marks import needs_tensorrt, no_tensorrt  # noqa: F401  (no_tensorrt is a fixture)
from tiny_models import TINY

from reid_export.artefacts.tensorrt_sidecar import (
    SIDECAR_VERSION,
    check_compatible,
    new_sidecar,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from reid_export.errors import ExportError, ReidExportError, RuntimeUnavailable
from reid_export.export.tensorrt import BuildSettings, build_engine, layer_precision_summary, parse_size, trt_command


@pytest.fixture
def sidecar_on_disk(tmp_path, tiny_onnx):
    """A sidecar written next to a stand-in engine file. The stand-in is arbitrary bytes: the sidecar
    functions hash and describe a file, they never ask TensorRT to load it."""
    engine = tmp_path / "tiny.engine"
    engine.write_bytes(b"stand-in bytes for the sidecar tests, not a TensorRT plan")
    sidecar = _sidecar(engine.read_bytes(), tiny_onnx)
    write_sidecar(engine, sidecar)
    return engine, sidecar


def _sidecar(engine_bytes, onnx_path, **changes):
    fields = dict(
        engine_bytes=engine_bytes, engine_name="tiny.engine", onnx_path=onnx_path, contract=TINY.to_dict(),
        precision="fp32", tensorrt_version="10.9.0.34", gpu_name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0),
        profile={"input": "input", "min": [1, 3, 64, 32], "opt": [4, 3, 64, 32], "max": [8, 3, 64, 32]},
        inputs=[{"name": "input", "dtype": "float32", "shape": [-1, 3, 64, 32]}],
        outputs=[{"name": "embedding", "dtype": "float32", "shape": [-1, 512]}],
        layers=layer_precision_summary({"Layers": []}), build_seconds=12.5,
    )
    return new_sidecar(**{**fields, **changes})


# -- without TensorRT -------------------------------------------------------------------------
def test_modules_import_without_tensorrt_or_torch():
    code = ("import sys; sys.modules['tensorrt'] = None\n"
            "import reid_export.export.tensorrt, reid_export.runtimes.tensorrt\n"
            "assert 'torch' not in sys.modules and 'onnx' not in sys.modules, 'heavy import at module level'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("text,expected", [
    ("4GiB", 4 * 2**30), ("512MiB", 512 * 2**20), ("1.5GiB", 3 * 2**29), ("2G", 2 * 2**30), ("500MB", 500 * 10**6),
    ("1024", 1024), (1 << 30, 1 << 30), (" 64 kib ", 64 * 1024),
])
def test_sizes_are_parsed_in_binary_and_decimal_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "4 GiBs", "-1GiB", "0", "", "GiB"])
def test_unreadable_sizes_say_what_is_accepted(text):
    with pytest.raises(ExportError, match="4GiB|positive"):
        parse_size(text)


def test_settings_store_the_workspace_in_bytes():
    assert BuildSettings(workspace="512MiB").workspace == 512 * 2**20
    assert BuildSettings().batch_range == (1, 32, 128)


@pytest.mark.parametrize("lo,opt,hi", [(0, 1, 2), (4, 2, 8), (1, 16, 8), (2, 1, 1)])
def test_batch_profile_must_be_ordered(lo, opt, hi):
    with pytest.raises(ExportError, match=rf"1 <= min <= opt <= max, got min {lo}, opt {opt}, max {hi}"):
        BuildSettings(min_batch=lo, opt_batch=opt, max_batch=hi)


def test_fp16_flag_contradicts_a_strongly_typed_network():
    with pytest.raises(ExportError, match="--precision fp16"):
        BuildSettings(fp16_flag=True, strongly_typed=True)


def test_sidecar_round_trips_next_to_the_engine(sidecar_on_disk):
    engine, sidecar = sidecar_on_disk
    assert sidecar_path(engine).name == "tiny.engine.json"
    back = read_sidecar(engine)
    assert back == json.loads(json.dumps(sidecar))
    assert back["version"] == SIDECAR_VERSION
    assert back["gpu"] == {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    assert back["profile"]["max"] == [8, 3, 64, 32]
    assert back["preprocess"] == TINY.to_dict()
    assert [t["name"] for t in back["inputs"]] == ["input"] and [t["name"] for t in back["outputs"]] == ["embedding"]


def test_sidecar_records_the_sha256_of_the_onnx_and_engine_files(sidecar_on_disk, tiny_onnx):
    engine, sidecar = sidecar_on_disk
    assert sidecar["onnx"]["sha256"] == hashlib.sha256(tiny_onnx.read_bytes()).hexdigest()
    assert sidecar["engine"]["sha256"] == hashlib.sha256(engine.read_bytes()).hexdigest()


def test_missing_sidecar_says_to_rebuild(tmp_path):
    engine = tmp_path / "lonely.engine"
    engine.write_bytes(b"stand-in")
    with pytest.raises(ExportError, match="engines need the sidecar written by reid-export trt; rebuild"):
        read_sidecar(engine)


def test_an_engine_replaced_without_its_sidecar_is_refused(sidecar_on_disk):
    engine, _ = sidecar_on_disk
    engine.write_bytes(b"some other engine")
    with pytest.raises(ExportError, match="does not match its sidecar"):
        read_sidecar(engine)


@pytest.mark.parametrize("edit,message", [
    (lambda s: "{not json", "not valid JSON"),
    (lambda s: json.dumps({**s, "format": "something.else"}), "not a reid-export TensorRT sidecar"),
    (lambda s: json.dumps({**s, "version": SIDECAR_VERSION + 1}), "upgrade reid-export"),
    (lambda s: json.dumps({k: v for k, v in s.items() if k != "profile"}), "lacks profile"),
])
def test_broken_sidecars_are_refused_with_the_reason(sidecar_on_disk, edit, message):
    engine, sidecar = sidecar_on_disk
    sidecar_path(engine).write_text(edit(sidecar))
    with pytest.raises(ExportError, match=message):
        read_sidecar(engine)


def test_same_tensorrt_and_gpu_are_compatible(sidecar_on_disk):
    _, sidecar = sidecar_on_disk
    check_compatible(sidecar, trt_version="10.9.0.34", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="sm_90",
                     batch=8, input_shape=(3, 64, 32))


@pytest.mark.parametrize("here", [
    dict(trt_version="10.8.0.43", gpu_name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0)),
    dict(trt_version="10.9.0.34", gpu_name="NVIDIA A100-SXM4-80GB", compute_capability=(8, 0)),
    dict(trt_version="10.9.0.34", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="8.9"),
])
def test_another_tensorrt_or_gpu_is_refused_naming_both_sides(sidecar_on_disk, here):
    _, sidecar = sidecar_on_disk
    with pytest.raises(RuntimeUnavailable) as err:
        check_compatible(sidecar, **here)
    message = str(err.value)
    assert "built with TensorRT 10.9.0.34 on NVIDIA H100 80GB HBM3 (sm_90)" in message
    sm = "sm_" + (here["compute_capability"].replace(".", "") if isinstance(here["compute_capability"], str)
                  else "".join(map(str, here["compute_capability"])))
    assert f"TensorRT {here['trt_version']} on {here['gpu_name']} ({sm})" in message
    assert "rebuild it on this machine" in message


@pytest.mark.parametrize("batch", [0, 9, 200])
def test_a_batch_outside_the_profile_is_refused(sidecar_on_disk, batch):
    _, sidecar = sidecar_on_disk
    with pytest.raises(ReidExportError, match=rf"batch of {batch} is outside the engine's optimisation profile \[1, 8\]"):
        check_compatible(sidecar, trt_version="10.9.0.34", gpu_name="NVIDIA H100 80GB HBM3",
                         compute_capability=(9, 0), batch=batch)


@pytest.mark.parametrize("shape", [(3, 128, 64), (1, 64, 32), (4, 3, 32, 64)])
def test_another_input_shape_is_refused_naming_both(sidecar_on_disk, shape):
    _, sidecar = sidecar_on_disk
    with pytest.raises(ReidExportError, match=r"does not match the engine's \(3, 64, 32\)") as err:
        check_compatible(sidecar, trt_version="10.9.0.34", gpu_name="NVIDIA H100 80GB HBM3",
                         compute_capability=(9, 0), input_shape=shape)
    assert str(tuple(shape[-3:])) in str(err.value)


# The engine inspector's JSON, as documented for DETAILED verbosity (TensorRT developer guide, "Engine
# Inspector"): {"Layers": [{"Name", "LayerType", "Inputs": [{"Name", "Dimensions", "Format/Datatype"}],
# "Outputs": [...], ...}], "Bindings": [...]}. TensorRT 11 replaces "Bindings" with "I/O Tensors" and
# splits "Format/Datatype" into "Format" and "DataType".
def _tensor(name, fmt, dims=(4, 64, 16, 8)):
    return {"Name": name, "Location": "Device", "Dimensions": list(dims), "Format/Datatype": fmt}


FP16_ENGINE = {
    "Layers": [
        {"Name": "Reformatting CopyNode for Input Tensor 0 to conv1", "LayerType": "Reformat",
         "Inputs": [_tensor("input", "Row major linear FP32")],
         "Outputs": [_tensor("input_half", "Channel major FP16 format where channel % 8 == 0")]},
        {"Name": "conv1 + relu", "LayerType": "CaskConvolution",
         "Inputs": [_tensor("input_half", "Channel major FP16 format where channel % 8 == 0")],
         "Outputs": [_tensor("c1", "Channel major FP16 format where channel % 8 == 0")],
         "ParameterType": "Convolution", "Kernel": [7, 7], "TacticName": "sm90_xmma_fprop"},
        {"Name": "layer1.0.conv1", "LayerType": "CaskConvolution",
         "Inputs": [_tensor("c1", "Half")], "Outputs": [_tensor("l1", "Half")]},
        {"Name": "head/ReduceL2", "LayerType": "Reduce",
         "Inputs": [_tensor("emb", "Row major linear FP32", (4, 512))],
         "Outputs": [_tensor("norm", "Row major linear FP32", (4, 1))]},
        {"Name": "head/Div", "LayerType": "ElementWise",
         "Inputs": [_tensor("emb", "Float", (4, 512)), _tensor("norm", "Float", (4, 1))],
         "Outputs": [_tensor("embedding", "Float", (4, 512))]},
    ],
    "Bindings": ["input", "embedding"],
}


def test_layer_precisions_are_counted_and_fp32_fallbacks_warned_about():
    summary = layer_precision_summary(FP16_ENGINE, expected="fp16")
    assert summary["layers"] == 5 and summary["detailed"]
    assert [p["precision"] for p in summary["per_layer"]] == ["fp32", "fp16", "fp16", "fp32", "fp32"]
    assert summary["counts"] == {"fp32": 3, "fp16": 2}
    assert summary["compute_layers"] == 4  # the Reformat layer is bookkeeping, never a fallback
    assert summary["fp32_compute_layers"] == ["head/ReduceL2", "head/Div"]
    (warning,) = summary["warnings"]
    assert warning.startswith("2 of 4 compute layers fell back to FP32 in this FP16 engine: head/ReduceL2, head/Div")


def test_an_fp32_engine_has_no_fallback_warning():
    summary = layer_precision_summary(FP16_ENGINE, expected="fp32")
    assert summary["warnings"] == [] and summary["fp32_compute_layers"] == ["head/ReduceL2", "head/Div"]


def test_int8_layers_are_recognised_and_uint8_is_not_int8():
    engine = {"Layers": [
        {"Name": "conv1 (int8)", "LayerType": "CaskConvolution",
         "Inputs": [_tensor("q", "Thirty-two wide channel vectorized row major Int8 format.")],
         "Outputs": [_tensor("c", "Row major linear FP32")]},
        {"Name": "mask", "LayerType": "ElementWise",
         "Inputs": [_tensor("m", "Row major linear UInt8 format")], "Outputs": [_tensor("o", "Row major linear BOOL")]},
        {"Name": "fc", "LayerType": "CaskGemmMatrixMultiply",
         "Inputs": [_tensor("x", "Row major linear BFloat16 format")], "Outputs": [_tensor("y", "Float")]},
    ]}
    summary = layer_precision_summary(engine, expected="int8")
    assert [p["precision"] for p in summary["per_layer"]] == ["int8", "uint8", "bf16"]
    assert summary["warnings"] == []


def test_tensorrt_11_split_format_and_datatype_fields_are_read():
    engine = {"Layers": [{"Name": "conv1", "LayerType": "CaskConvolution",
                          "Inputs": [{"Name": "x", "DataType": "Half", "Format": "Channel major FP16 format"}],
                          "Outputs": [{"Name": "y", "DataType": "Half", "Format": "Channel major FP16 format"}]},
                         {"Name": "gap", "LayerType": "Reduce",
                          "Inputs": [{"Name": "y", "DataType": "Float", "Format": "Row major linear FP32 format (kLINEAR)"}],
                          "Outputs": [{"Name": "z", "DataType": "Float"}]}],
              "I/O Tensors": [{"Name": "x", "IOMode": "Input", "DataType": "Float"}]}
    summary = layer_precision_summary(engine, expected="fp16")
    assert summary["counts"] == {"fp16": 1, "fp32": 1}
    assert "1 of 2 compute layers fell back to FP32" in summary["warnings"][0]


def test_layer_names_only_means_precisions_are_unknown():
    summary = layer_precision_summary({"Layers": ["conv1 + relu", "fc"], "Bindings": ["input", "embedding"]})
    assert summary["counts"] == {"unknown": 2} and not summary["detailed"]
    assert "DETAILED" in summary["warnings"][0]


def test_dynamic_shapes_without_a_context_give_unknown_precisions():
    engine = {"Layers": [{"Name": "conv1", "LayerType": "CaskConvolution",
                          "Inputs": [_tensor("x", "N/A due to dynamic shapes", (-1, 3, 64, 32))],
                          "Outputs": [_tensor("y", "N/A due to dynamic shapes", (-1, 64, 32, 16))]}]}
    assert layer_precision_summary(engine, expected="fp16")["counts"] == {"unknown": 1}


def test_existing_engine_is_refused_before_tensorrt_is_imported(tmp_path, tiny_onnx, no_tensorrt):
    engine = tmp_path / "tiny.engine"
    engine.write_bytes(b"an engine from an earlier build")
    with pytest.raises(ExportError, match="already exists; pass --overwrite"):
        build_engine(tiny_onnx, engine, BuildSettings())
    assert engine.read_bytes() == b"an engine from an earlier build"


def test_engine_path_must_end_in_engine(tmp_path, tiny_onnx, no_tensorrt):
    with pytest.raises(ExportError, match=r"must end in \.engine"):
        build_engine(tiny_onnx, tmp_path / "tiny.plan")


def test_build_without_tensorrt_says_how_to_install_it(tmp_path, tiny_onnx, no_tensorrt):
    with pytest.raises(RuntimeUnavailable) as err:
        trt_command(tiny_onnx, tmp_path / "tiny.engine", max_batch=8, opt_batch=4, workspace="256MiB")
    message = str(err.value)
    assert "TensorRT is not installed" in message and "pip install tensorrt" in message
    assert "NVIDIA GPU" in message and "container" in message
    assert not (tmp_path / "tiny.engine").exists() and not (tmp_path / "tiny.engine.json").exists()


def test_asymmetric_int8_graphs_are_refused_before_building(tmp_path, tiny_onnx, no_tensorrt):
    import onnx

    from reid_export.artefacts.onnx_metadata import CALIBRATION_KEY, PRECISION_KEY, read_metadata, set_metadata

    proto = onnx.load(str(tiny_onnx))  # metadata says what quantize_int8 would record for uint8 activations
    set_metadata(proto, read_metadata(tiny_onnx) | {PRECISION_KEY: "int8",
                                                    CALIBRATION_KEY: json.dumps({"activations": "uint8"})})
    onnx.save(proto, str(tmp_path / "uint8.onnx"))
    with pytest.raises(ExportError, match="--int8-activations int8"):
        build_engine(tmp_path / "uint8.onnx", tmp_path / "uint8.engine")


# -- with TensorRT and a GPU ------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_onnx):
    out = tmp_path_factory.mktemp("trt")
    info = build_engine(tiny_onnx, out / "tiny.engine",
                        BuildSettings(min_batch=1, opt_batch=4, max_batch=8, workspace="512MiB",
                                      timing_cache=out / "timing.cache"))
    return info, out


@needs_tensorrt
def test_built_engine_matches_onnxruntime(built, tiny_onnx):
    from reid_export.runtimes import make_runtime

    info, _ = built
    x = np.random.default_rng(0).standard_normal((5, 3, 64, 32), dtype=np.float32)
    with make_runtime("onnxruntime", tiny_onnx) as ref, make_runtime("tensorrt", info.engine) as trt:
        a, b = ref.infer(x)["embedding"], trt.infer(x)["embedding"]
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.999


@needs_tensorrt
def test_build_writes_sidecar_timing_cache_and_layer_summary(built, tiny_onnx):
    import tensorrt
    import torch

    info, out = built
    side = read_sidecar(info.engine)
    assert side["tensorrt_version"] == tensorrt.__version__
    assert side["gpu"]["name"] == torch.cuda.get_device_name()
    assert side["profile"] == {"input": "input", "min": [1, 3, 64, 32], "opt": [4, 3, 64, 32], "max": [8, 3, 64, 32]}
    assert side["onnx"]["sha256"] == hashlib.sha256(tiny_onnx.read_bytes()).hexdigest()
    assert side["precision"] == "fp32" and side["builder"]["strongly_typed"]
    assert side["layers"]["detailed"] and side["layers"]["counts"].get("fp32", 0) > 0
    assert (out / "timing.cache").stat().st_size > 0
    assert any("layer precisions" in line for line in info.summary_lines())


@needs_tensorrt
def test_rebuild_reuses_the_timing_cache_and_needs_overwrite(built, tiny_onnx):
    info, out = built
    settings = BuildSettings(min_batch=1, opt_batch=4, max_batch=8, workspace="512MiB", timing_cache=out / "timing.cache")
    with pytest.raises(ExportError, match="already exists"):
        build_engine(tiny_onnx, info.engine, settings)
    again = build_engine(tiny_onnx, info.engine, settings, overwrite=True)
    assert not any("timing cache" in w for w in again.warnings)


@needs_tensorrt
def test_fp16_flag_builds_on_tensorrt_10_and_is_refused_on_11(tmp_path, tiny_onnx):
    import tensorrt

    settings = BuildSettings(min_batch=1, opt_batch=2, max_batch=4, workspace="512MiB", fp16_flag=True)
    if int(tensorrt.__version__.split(".")[0]) >= 11:
        with pytest.raises(ExportError, match="--precision fp16"):
            build_engine(tiny_onnx, tmp_path / "flag.engine", settings)
    else:
        info = build_engine(tiny_onnx, tmp_path / "flag.engine", settings)
        assert info.sidecar_data["builder"]["fp16_flag"] and not info.sidecar_data["builder"]["strongly_typed"]

