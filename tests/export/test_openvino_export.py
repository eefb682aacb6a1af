"""`reid-export openvino`: IR with the contract and precision in rt_info, parity, NNCF INT8 on training images."""

import json

import pytest
from cpu_flags import amx_tolerance

pytest.importorskip("openvino", reason='OpenVINO is not installed (pip install "reid-export[openvino]")')

from reid_export.artefacts.onnx_metadata import (
    CALIBRATION_KEY,
    PRECISION_KEY,
    read_contract,
)
from reid_export.artefacts.openvino_ir import ir_metadata
from reid_export.errors import DataError, ExportError
from reid_export.export.precision import calibration_images, quantize_int8
from reid_export.runtimes import make_runtime
from reid_export.verified.openvino import export_openvino


def _rt_info(path):
    import openvino as ov

    return ir_metadata(ov.Core().read_model(str(path)))


def test_ir_carries_the_contract_and_precision_and_matches_onnx(tiny_onnx, tiny_market, tmp_path):
    result = export_openvino(tiny_onnx, tmp_path / "tiny.xml", data=tiny_market, progress=False)
    assert result.path.is_file() and result.path.with_suffix(".bin").is_file()
    assert result.precision == "fp32" and result.parity["cosine_min"] > 0.9999
    meta = _rt_info(result.path)
    assert meta[PRECISION_KEY] == "fp32"
    with make_runtime("openvino", result.path) as rt:  # the runtime reads the contract back from rt_info
        assert rt.contract == read_contract(tiny_onnx) and rt.precision == "fp32"
        assert rt.info.arch == "resnet18" and rt.info.precision == "fp32" and rt.info.opset is None
    import openvino as ov

    weights = {op.get_output_element_type(0).get_type_name() for op in ov.Core().read_model(str(result.path)).get_ops()
               if op.get_type_name() == "Constant" and len(op.get_output_shape(0)) == 4}
    assert weights == {"f32"}  # no silent FP16 weight compression


def test_a_checkpoint_is_exported_through_onnx_on_the_way(tiny_checkpoint, tmp_path):
    result = export_openvino(tiny_checkpoint, tmp_path / "ckpt.xml", progress=False)
    assert result.parity["cosine_min"] > 0.9999 and "random tensors" in result.parity_source


def test_existing_ir_is_refused_without_overwrite(tiny_onnx, tmp_path):
    export_openvino(tiny_onnx, tmp_path / "a.xml", progress=False)
    with pytest.raises(ExportError, match="overwrite"):
        export_openvino(tiny_onnx, tmp_path / "a.xml", progress=False)
    export_openvino(tiny_onnx, tmp_path / "a.xml", overwrite=True, progress=False)
    with pytest.raises(ExportError, match=r"\.xml"):
        export_openvino(tiny_onnx, tmp_path / "a.ir", progress=False)


@amx_tolerance
def test_the_projects_qdq_int8_stays_int8_in_the_ir(tiny_onnx, tiny_market, tmp_path):
    int8 = quantize_int8(tiny_onnx, tmp_path / "t.int8.onnx", calibration_images(tiny_market, 16), progress=False)
    result = export_openvino(int8, tmp_path / "t.int8.xml", data=tiny_market, progress=False)
    assert result.precision == "int8" and _rt_info(result.path)[PRECISION_KEY] == "int8"
    with make_runtime("openvino", result.path) as rt:
        assert rt.precision == "int8"
    with pytest.raises(ExportError, match="already int8"):
        export_openvino(int8, tmp_path / "again.xml", nncf_int8=True, calib_data=tiny_market, progress=False)


@amx_tolerance
def test_nncf_int8_calibrates_on_training_images_and_records_it(tiny_onnx, tiny_market, tmp_path):
    result = export_openvino(tiny_onnx, tmp_path / "nncf.xml", nncf_int8=True, calib_data=tiny_market,
                             calib_images=16, data=tiny_market, progress=False)
    meta = _rt_info(result.path)
    record = json.loads(meta[CALIBRATION_KEY])
    assert meta[PRECISION_KEY] == "int8" and record["num_images"] == 16 and record["source"] == "bounding_box_train"
    assert result.parity["cosine_min"] > 0.98
    with make_runtime("openvino", result.path) as rt:
        assert rt.precision == "int8"


def test_nncf_needs_calibration_data_and_refuses_the_test_set(tiny_onnx, tiny_market, tmp_path, monkeypatch):
    with pytest.raises(ExportError, match="--calib-data"):
        export_openvino(tiny_onnx, tmp_path / "n.xml", nncf_int8=True, progress=False)
    import reid_export.export.openvino as module

    query = sorted((tiny_market / "query").glob("*.jpg"))[:4]
    monkeypatch.setattr(module, "calibration_images", lambda root, n: query)  # as if the folder were mislabelled
    with pytest.raises(DataError, match="leaks"):
        export_openvino(tiny_onnx, tmp_path / "n.xml", nncf_int8=True, calib_data=tiny_market, progress=False)
    assert not (tmp_path / "n.xml").exists()


@pytest.mark.slow
def test_cli_writes_ir_and_bench_runs_it_with_a_hint_and_drift_rows(tiny_onnx, tiny_market, tmp_path):
    import subprocess
    import sys

    def run_cli(*args):
        return subprocess.run([sys.executable, "-m", "reid_export.cli", *map(str, args)], capture_output=True,
                              text=True, timeout=600)

    ir = tmp_path / "tiny.xml"
    r = run_cli("openvino", tiny_onnx, "-o", ir, "--data", tiny_market, "-q")
    assert r.returncode == 0, r.stderr
    assert f"wrote {ir}" in r.stdout and "min cosine" in r.stdout
    out = tmp_path / "bench"
    r = run_cli("bench", "--data", tiny_market, "--model", tiny_onnx, "--model", f"openvino={ir}", "--batch-sizes", 2,
                "--no-stages", "--ov-hint", "throughput", "--preprocess-as", "cv2-linear", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    ov_row = report["rows"][1]
    assert ov_row["status"] == "ok" and ov_row["precision"] == "fp32" and "throughput hint" in ov_row["provider"]
    assert ov_row["cosine_min"] > 0.9999
    assert {(row["runtime"], row["preprocess_as"]) for row in report["drift"]} >= {("openvino", "cv2-linear")}
    assert "cv2-linear/stretch" in r.stdout  # the drift table is printed after the main one
    r = run_cli("bench", "--data", tiny_market, "--model", tiny_onnx, "--ov-hint", "fast", "-o", tmp_path / "b2")
    assert r.returncode == 2 and "latency or throughput" in r.stderr
