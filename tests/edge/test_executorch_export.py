"""`reid-export executorch`: a real ExecuTorch conversion (XNNPACK) of a tiny model, parity on the real ExecuTorch
runtime, and the contract read back from the program's own `reid_export_metadata` method."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("executorch", reason="the edge extra (executorch) is not installed")

from reid_export.artefacts.info import inspect
from reid_export.errors import DataError, ExportError
from reid_export.runtimes import make_runtime
from reid_export.verified.edge import export_edge

pytestmark = pytest.mark.slow
BATCH = np.random.default_rng(1).standard_normal((20, 3, 64, 32), dtype=np.float32)  # more than the planned 15


def test_fp32_program_matches_torch_and_carries_the_contract(attributes_checkpoint, tiny_market, torch_outputs,
                                                             tmp_path):
    result = export_edge("executorch", attributes_checkpoint, tmp_path / "tiny.pte", data=tiny_market,
                         progress=False, log=None)
    assert result.parity.passed and result.parity.cosine_min >= 0.9999 and result.path == tmp_path / "tiny.pte"

    info = inspect(result.path)  # read from the program's flatbuffer, without the runtime
    assert info.kind == "executorch-program" and info.precision == "fp32" and info.arch == "resnet18"
    assert info.contract == result.contract and (info.contract.height, info.contract.width) == (64, 32)
    assert [t.name for t in info.outputs] == ["embedding", "attributes"] and info.embedding_dim == 512
    shown = subprocess.run([sys.executable, "-m", "reid_export.cli", "inspect", str(result.path), "--json"],
                           capture_output=True, text=True, timeout=300, check=False)  # `reid-export inspect model.pte`
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["contract"] == info.contract.to_dict()

    with make_runtime("executorch", result.path) as runtime:  # a batch above the memory plan's bound
        got = runtime.infer(BATCH)
        assert runtime.info.extra["planned_batch"] < len(BATCH)
    expected = torch_outputs(attributes_checkpoint, BATCH)
    assert got["embedding"].shape == (20, 512) and got["attributes"].shape == (20, 30)
    np.testing.assert_allclose(got["embedding"], expected["embedding"], atol=1e-4)
    np.testing.assert_allclose(got["attributes"], expected["attributes"], atol=1e-4)


def test_int8_program_is_calibrated_on_training_images_and_kept_only_within_the_bar(tiny_checkpoint, tiny_market,
                                                                                      tmp_path):
    from reid_export.export.settings import Int8Settings

    result = export_edge("executorch", tiny_checkpoint, tmp_path / "tiny.int8.pte", int8=True, calib_data=tiny_market,
                         int8_settings=Int8Settings(num_images=16), data=tiny_market, progress=False, log=None)
    assert result.precision == "int8" and result.parity.threshold == 0.98
    if not result.parity.passed:  # the bar decides: a miss leaves no INT8 file behind
        assert result.parity.removed and not (tmp_path / "tiny.int8.pte").exists()
        return
    info = inspect(result.path)
    assert info.precision == "int8"
    calibration = info.provenance["calibration"]
    assert calibration["num_images"] == 16 and calibration["source"] == "bounding_box_train"


def test_calibration_on_query_images_is_refused(tiny_model, tiny_market, tmp_path):
    from reid_export.export.executorch import write_executorch_program

    queries = sorted((tiny_market / "query").glob("*.jpg"))[:4]
    with pytest.raises(DataError, match="refusing to calibrate INT8 on 4 evaluation image"):
        write_executorch_program(tiny_model, tmp_path / "leak.pte", calibration=queries, progress=False)
    assert not (tmp_path / "leak.pte").exists()


def test_int8_without_calibration_data_is_refused_before_any_work(tiny_checkpoint, tmp_path):
    with pytest.raises(ExportError, match="--int8 needs --calib-data DIR"):
        export_edge("executorch", tiny_checkpoint, tmp_path / "m.pte", int8=True, log=None)


def test_an_output_that_is_not_a_pte_is_refused(tiny_checkpoint, tmp_path):
    with pytest.raises(ExportError, match=r"must end in \.pte"):
        export_edge("executorch", tiny_checkpoint, tmp_path / "m.onnx", log=None)
