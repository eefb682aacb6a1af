"""The OpenVINO runtime and torch-bf16, on the tiny resnet18: real OpenVINO, no mocks."""

import importlib.util

import numpy as np
import pytest
from cpu_flags import amx_tolerance
from tiny_models import TINY, make_tiny_model


from reid_export.artefacts.onnx_metadata import read_contract
from reid_export.errors import ReidExportError, RuntimeUnavailable
from reid_export.evaluation.agreement import embedding_agreement
from reid_export.export.precision import calibration_images, quantize_int8
from reid_export.export.settings import Int8Settings
from reid_export.runtimes import default_runtime_for, make_runtime
from reid_export.runtimes.torch import cpu_bf16_features

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                    reason='OpenVINO is not installed (pip install "reid-export[openvino]")')


@pytest.fixture(scope="module")
def batch(tiny_market):
    return TINY.load_batch(sorted((tiny_market / "query").glob("*.jpg"))[:8])


@pytest.fixture(scope="module")
def qdq_int8(tiny_market, tiny_onnx, tmp_path_factory):
    return quantize_int8(tiny_onnx, tmp_path_factory.mktemp("ov-int8") / "tiny.int8.onnx",
                         calibration_images(tiny_market, 24), Int8Settings(), progress=False)


def _embed(name, path, batch, **options):
    with make_runtime(name, path, **options) as rt:
        return rt.infer(batch)["embedding"], rt


def _has_bf16() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@needs_openvino
def test_openvino_runs_onnx_in_fp32_even_where_the_cpu_defaults_to_bf16(tiny_onnx, batch):
    ort, _ = _embed("onnxruntime", tiny_onnx, batch)
    got, rt = _embed("openvino", tiny_onnx, batch)
    assert rt.contract == read_contract(tiny_onnx) and rt.precision == "fp32"
    assert got.dtype == np.float32 and got.shape == ort.shape
    assert embedding_agreement(ort, got)["cosine_min"] > 0.99999  # bf16 would land near 0.9999


@needs_openvino
@amx_tolerance
def test_openvino_bf16_reports_bf16_and_stays_close(tiny_onnx, batch):
    if not _has_bf16():
        pytest.skip("this CPU has no bf16 support (AVX-512 BF16 / AMX)")
    ort, _ = _embed("onnxruntime", tiny_onnx, batch)
    got, rt = _embed("openvino-bf16", tiny_onnx, batch)
    assert rt.precision == "bf16"
    assert 0.999 < embedding_agreement(ort, got)["cosine_min"] < 0.999999  # close, and visibly not fp32


@needs_openvino
def test_openvino_bf16_on_a_cpu_without_it_is_unavailable_not_slow(tiny_onnx, batch):
    if _has_bf16():
        pytest.skip("this CPU has bf16, so the refusal cannot be shown here")
    with pytest.raises(RuntimeUnavailable, match="bf16"):
        _embed("openvino-bf16", tiny_onnx, batch)


@needs_openvino
@amx_tolerance
def test_the_projects_qdq_int8_file_runs_as_int8(qdq_int8, batch):
    ort, _ = _embed("onnxruntime", qdq_int8, batch)
    got, rt = _embed("openvino", qdq_int8, batch)
    assert rt.precision == "int8"  # read from the compiled model's convolution precisions
    assert embedding_agreement(ort, got)["cosine_min"] > 0.98


@needs_openvino
def test_throughput_hint_splits_a_batch_and_gives_the_same_embeddings(tiny_onnx, batch):
    latency, _ = _embed("openvino", tiny_onnx, batch)
    throughput, rt = _embed("openvino", tiny_onnx, batch, hint="throughput")
    assert "throughput hint" in rt.provider
    np.testing.assert_allclose(throughput, latency, atol=1e-5)
    single, _ = _embed("openvino", tiny_onnx, batch[:1], hint="throughput")
    np.testing.assert_allclose(single, latency[:1], atol=1e-5)


@needs_openvino
def test_an_unknown_hint_is_refused_with_the_choices(tiny_onnx):
    with pytest.raises(RuntimeUnavailable, match="latency, throughput"):
        make_runtime("openvino", tiny_onnx, hint="fast").activate()


@needs_openvino
def test_xml_files_go_to_openvino_and_an_ir_without_a_contract_is_refused(tiny_onnx, tmp_path):
    import openvino as ov

    assert default_runtime_for("engines/model.xml") == "openvino"
    path = tmp_path / "bare.xml"
    ov.save_model(ov.Core().read_model(str(tiny_onnx)), str(path))  # no reid_export rt_info
    with pytest.raises(ReidExportError, match="reid_export.preprocess"):
        make_runtime("openvino", path).activate()


@amx_tolerance
def test_torch_bf16_autocasts_on_cpus_with_bf16_and_says_which_unit():
    model = make_tiny_model()
    x = np.random.default_rng(0).standard_normal((4, *TINY.input_shape)).astype(np.float32)
    rt = make_runtime("torch-bf16", model)
    if not cpu_bf16_features():
        with pytest.raises(RuntimeUnavailable, match="AVX-512 BF16 or AMX"):
            rt.activate()
        return
    with make_runtime("torch", model) as fp32, rt:
        ref, got = fp32.infer(x)["embedding"], rt.infer(x)["embedding"]
    assert rt.precision == "bf16" and "bf16 autocast" in rt.provider
    assert any(unit in rt.provider for unit in ("avx512_bf16", "amx_bf16"))
    assert 0.99 < embedding_agreement(ref, got)["cosine_min"] < 0.999999


def test_without_openvino_a_bench_row_is_skipped_with_the_install_line(tiny_market, tiny_onnx, monkeypatch):
    import sys

    from reid_export.bench import BenchSettings, ModelSpec, run_bench

    monkeypatch.setitem(sys.modules, "openvino", None)  # what `import openvino` meets when it is not installed
    settings = BenchSettings(batch_sizes=(2,), warmup_batches=0, min_batches=1, min_seconds=0.0, stages=False,
                             progress=False)
    specs = [ModelSpec("onnxruntime", tiny_onnx), ModelSpec("openvino", tiny_onnx)]
    rows = run_bench(tiny_market, specs, settings, log=lambda *_: None)["rows"]
    assert rows[0]["status"] == "ok"
    assert rows[1]["status"].startswith("skipped: ") and 'pip install "reid-export[openvino]"' in rows[1]["status"]
