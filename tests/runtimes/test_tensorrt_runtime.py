"""TensorRT runtime: registry, refusals without TensorRT, and real inference where TensorRT and a GPU exist."""

import json

import numpy as np
import pytest
from tensorrt_marks import needs_tensorrt, no_tensorrt  # noqa: F401  (no_tensorrt is a fixture)

from reid_export.artefacts.tensorrt_sidecar import sidecar_path
from reid_export.errors import ReidExportError, RuntimeUnavailable
from reid_export.export.tensorrt import BuildSettings, build_engine
from reid_export.runtimes import RUNTIMES, default_runtime_for, make_runtime, parse_model_spec
from reid_export.runtimes.tensorrt import TensorRTRuntime


# -- without TensorRT -------------------------------------------------------------------------
def test_engines_pick_the_tensorrt_runtime(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"stand-in")
    assert default_runtime_for(engine) == "tensorrt"
    assert parse_model_spec(str(engine)) == ("tensorrt", engine)
    assert RUNTIMES["tensorrt"].defaults == {"device": "cuda"}
    runtime = make_runtime("tensorrt", engine)  # constructing imports nothing heavy and loads nothing
    assert isinstance(runtime, TensorRTRuntime) and not runtime.is_active and runtime.device == "cuda"


def test_activate_without_tensorrt_says_it_is_not_installed_and_how_to_install(tmp_path, no_tensorrt):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"stand-in")
    with pytest.raises(RuntimeUnavailable) as err:
        make_runtime("tensorrt", engine).activate()
    message = str(err.value)
    assert "TensorRT is not installed" in message and "pip install tensorrt" in message
    assert "NVIDIA GPU" in message and "onnxruntime" in message


def test_a_build_callable_runs_only_inside_activate(no_tensorrt):
    calls = []
    runtime = TensorRTRuntime(lambda: calls.append("built") or "never.engine")
    assert calls == []
    with pytest.raises(RuntimeUnavailable, match="TensorRT is not installed"):
        runtime.activate()
    assert calls == [] and not runtime.is_active  # nothing is built where TensorRT cannot run it


def test_infer_before_activate_is_an_error():
    with pytest.raises(ReidExportError, match="activate"):
        TensorRTRuntime("model.engine").infer(np.zeros((1, 3, 64, 32), dtype=np.float32))


# -- with TensorRT and a GPU ------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(tmp_path_factory, tiny_onnx):
    out = tmp_path_factory.mktemp("trt-runtime") / "tiny.engine"
    return build_engine(tiny_onnx, out, BuildSettings(min_batch=1, opt_batch=4, max_batch=8, workspace="512MiB")).engine


def _cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@needs_tensorrt
@pytest.mark.parametrize("batch", [1, 8])
def test_tensorrt_embeddings_match_onnxruntime_cpu(engine, tiny_onnx, batch):
    x = np.random.default_rng(batch).standard_normal((batch, 3, 64, 32), dtype=np.float32)
    with make_runtime("onnxruntime", tiny_onnx) as ref, make_runtime("tensorrt", engine) as trt:
        expected, out = ref.infer(x), trt.infer(x)
        assert trt.contract == ref.contract and trt.precision == "fp32"
        assert trt.provider.startswith("TensorRT ") and " on " in trt.provider
    assert set(out) == {"embedding"} and out["embedding"].dtype == np.float32
    assert out["embedding"].shape == expected["embedding"].shape
    assert _cosine(out["embedding"], expected["embedding"]).min() > 0.999


@needs_tensorrt
def test_batches_outside_the_profile_are_refused(engine):
    with make_runtime("tensorrt", engine) as trt:
        with pytest.raises(ReidExportError, match=r"batch of 9 is outside the engine's optimisation profile \[1, 8\]"):
            trt.infer(np.zeros((9, 3, 64, 32), dtype=np.float32))


@needs_tensorrt
def test_an_engine_from_another_tensorrt_version_is_refused(engine, tmp_path):
    import shutil

    copy = tmp_path / "other.engine"
    shutil.copy(engine, copy)
    sidecar = json.loads(sidecar_path(engine).read_text())
    sidecar["tensorrt_version"] = "9.9.9"
    sidecar_path(copy).write_text(json.dumps(sidecar))
    with pytest.raises(RuntimeUnavailable, match=r"built with TensorRT 9\.9\.9 on .* cannot run here: TensorRT 1"):
        make_runtime("tensorrt", copy).activate()


@needs_tensorrt
def test_a_callable_builds_the_engine_inside_activate(tmp_path, tiny_onnx):
    path = tmp_path / "lazy.engine"
    runtime = TensorRTRuntime(lambda: build_engine(tiny_onnx, path, BuildSettings(opt_batch=2, max_batch=2,
                                                                                 workspace="512MiB")).engine)
    assert not path.exists()
    with runtime:
        assert runtime.engine_path == path and path.exists()
        assert runtime.infer(np.zeros((2, 3, 64, 32), dtype=np.float32))["embedding"].shape == (2, 512)
