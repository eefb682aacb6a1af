"""`reid-export litert`: a real litert-torch conversion of a tiny model, parity on the real LiteRT interpreter, the
contract read back from the flatbuffer's own metadata, and an INT8 model whose int8 input the runtime quantises
from the model's own scale and zero point."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("litert_torch", reason="the edge extra (litert-torch) is not installed")

from reid_export.artefacts.info import inspect
from reid_export.artefacts.litert_model import read_tflite_info, write_tflite
from reid_export.errors import ExportError
from reid_export.runtimes import make_runtime
from reid_export.verified.edge import export_edge

pytestmark = pytest.mark.slow
BATCH = np.random.default_rng(2).standard_normal((5, 3, 64, 32), dtype=np.float32)


def test_fp32_model_with_two_outputs_matches_torch_at_any_batch(attributes_checkpoint, tiny_market, torch_outputs,
                                                                 tmp_path):
    result = export_edge("litert", attributes_checkpoint, tmp_path / "tiny.tflite", data=tiny_market, progress=False,
                         log=None)
    assert result.parity.passed and result.parity.cosine_min >= 0.9999

    info = inspect(result.path)  # the flatbuffer's metadata list, without the interpreter
    assert info.kind == "litert-model" and info.precision == "fp32" and info.contract == result.contract
    assert [t.name for t in info.outputs] == ["embedding", "attributes"] and info.embedding_dim == 512

    with make_runtime("litert", result.path) as runtime:
        got = runtime.infer(BATCH)
    expected = torch_outputs(attributes_checkpoint, BATCH)
    assert got["embedding"].shape == (5, 512) and got["attributes"].shape == (5, 30)  # every image, every output
    np.testing.assert_allclose(got["embedding"], expected["embedding"], atol=1e-4)
    np.testing.assert_allclose(got["attributes"], expected["attributes"], atol=1e-4)


def test_int8_model_takes_int8_input_quantised_by_the_runtime(tiny_checkpoint, tiny_market, torch_outputs, tmp_path):
    from reid_export.export.settings import Int8Settings

    result = export_edge("litert", tiny_checkpoint, tmp_path / "tiny.int8.tflite", int8=True, calib_data=tiny_market,
                         int8_settings=Int8Settings(num_images=16), data=tiny_market, progress=False, log=None)
    assert result.precision == "int8"
    if not result.parity.passed:  # the bar decides: a miss leaves no INT8 file behind
        assert result.parity.removed and not (tmp_path / "tiny.int8.tflite").exists()
        return
    info = inspect(result.path)
    assert info.precision == "int8" and info.provenance["calibration"]["source"] == "bounding_box_train"
    scale_zero = info.extras["input_quantization"]  # the model's own input quantisation
    assert info.extras["input_dtype"] == "int8" and scale_zero["scale"] > 0

    with make_runtime("litert", result.path) as runtime:
        got = runtime.infer(BATCH)
        assert runtime.info.extra["input_dtype"] == "int8"
        assert runtime.info.extra["input_quantization"] == scale_zero
    expected = torch_outputs(tiny_checkpoint, BATCH)["embedding"]
    cosine = (got["embedding"] * expected).sum(1) / np.linalg.norm(got["embedding"], axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() >= 0.98


def test_a_tflite_without_the_contract_is_refused_naming_the_command(tmp_path):
    import shutil

    from tiny_models import make_tiny_model

    from reid_export.export.litert import write_litert_model

    written = write_litert_model(make_tiny_model(), tmp_path / "ours.tflite", progress=False)
    meta = read_tflite_info(written).metadata
    write_tflite(written.read_bytes(), tmp_path / "again.tflite", meta)  # the writer replaces its own entry
    assert read_tflite_info(tmp_path / "again.tflite").metadata == meta

    foreign = tmp_path / "foreign.tflite"
    shutil.copy(written, foreign)
    data = bytearray(foreign.read_bytes())
    at = data.find(b"reid_export\x00")  # the metadata entry's name: renamed, as a file written elsewhere would be
    data[at:at + 11] = b"other_entry"
    foreign.write_bytes(bytes(data))
    with pytest.raises(ExportError, match="has no 'reid_export' metadata.*reid-export litert CKPT"):
        inspect(foreign)
