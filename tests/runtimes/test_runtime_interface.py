import numpy as np
import pytest

from reid_export.errors import ReidExportError, RuntimeUnavailable
from reid_export.runtimes import RUNTIMES, make_runtime, parse_model_spec

BATCH = np.random.default_rng(0).standard_normal((3, 3, 64, 32), dtype=np.float32)


@pytest.mark.parametrize("name,artefact", [("torch", "tiny_checkpoint"), ("onnxruntime", "tiny_onnx")])
def test_every_runtime_returns_the_same_keys_shapes_and_dtype(name, artefact, request):
    with make_runtime(name, request.getfixturevalue(artefact)) as rt:
        out = rt.infer(BATCH)
        assert rt.contract.input_shape == (3, 64, 32)
        assert rt.provider in ("cpu", "CPUExecutionProvider")
    assert set(out) == {"embedding"}
    assert out["embedding"].shape == (3, 512) and out["embedding"].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out["embedding"], axis=1), 1.0, rtol=1e-5)


def test_wrong_input_shape_names_the_expected_shape(tiny_onnx):
    with make_runtime("onnxruntime", tiny_onnx) as rt:
        with pytest.raises(ReidExportError, match=r"\(N>0, 3, 64, 32\)"):
            rt.infer(np.zeros((2, 3, 128, 64), dtype=np.float32))


def test_infer_before_activate_is_an_error(tiny_onnx):
    with pytest.raises(ReidExportError, match="activate"):
        make_runtime("onnxruntime", tiny_onnx).infer(BATCH)


def test_unknown_runtime_lists_the_known_ones(tiny_onnx):
    with pytest.raises(ReidExportError, match="unknown runtime 'tflite'.*onnxruntime.*openvino"):
        make_runtime("tflite", tiny_onnx)


def test_cuda_runtimes_without_a_gpu_say_so(tiny_onnx, tiny_checkpoint):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present; this test checks the message without one")
    with pytest.raises(RuntimeUnavailable, match="no CUDA device"):
        make_runtime("torch-cuda", tiny_checkpoint).activate()
    with pytest.raises(RuntimeUnavailable, match="CUDA"):
        make_runtime("onnxruntime-cuda", tiny_onnx).activate()


def test_model_specs_pick_the_runtime_from_the_file_or_the_prefix(tiny_onnx, tiny_checkpoint, tmp_path):
    assert parse_model_spec(str(tiny_onnx)) == ("onnxruntime", tiny_onnx)
    assert parse_model_spec(str(tiny_checkpoint))[0] == "torch"
    assert parse_model_spec(f"onnxruntime-cuda={tiny_onnx}")[0] == "onnxruntime-cuda"
    with pytest.raises(ReidExportError, match="no such file"):
        parse_model_spec(str(tmp_path / "nope.onnx"))
    odd = tmp_path / "model.bin"
    odd.write_bytes(b"")
    with pytest.raises(ReidExportError, match="NAME=PATH"):
        parse_model_spec(str(odd))
    assert {"torch", "onnxruntime"} <= set(RUNTIMES)
