"""Export refusals and tidy artefacts: unsupported opsets up front, failed parity never leaves a file that
looks good, no absolute paths or unused opset domains in the INT8 graph, usual file permissions."""

from __future__ import annotations

import json
import os
import shutil

import onnx
import pytest
from tiny_models import make_tiny_model

from reid_export.artefacts.onnx_metadata import CALIBRATION_KEY, read_metadata, read_onnx_info
from reid_export.errors import ExportError
from reid_export.export.onnx import export_onnx, supported_opsets
from reid_export.export.precision import calibration_images, quantize_int8
from reid_export.export.settings import DEFAULT_OPSET, Int8Settings
from reid_export.verified.parity import verify_export


def _usual_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@pytest.mark.parametrize("opset", [99, 5])
def test_unsupported_opsets_are_refused_up_front_with_the_range(tmp_path, opset):
    supported = supported_opsets()
    assert DEFAULT_OPSET in supported
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=rf"--opset {opset} is not supported: .* writes opsets "
                                          rf"{supported.start} to {supported.stop - 1}"):
        export_onnx(make_tiny_model(), out, opset=opset)
    assert list(tmp_path.iterdir()) == []


def test_the_file_has_the_opset_that_was_asked_for(tmp_path):
    opset = supported_opsets().stop - 1
    path = export_onnx(make_tiny_model(), tmp_path / "new.onnx", opset=opset)
    assert read_onnx_info(path).opset == opset
    assert path.stat().st_mode & 0o777 == _usual_mode()


@pytest.mark.parametrize("keep", [False, True])
def test_a_failed_parity_check_deletes_or_renames_the_export(tiny_onnx, tmp_path, keep):
    path = tmp_path / "m.onnx"
    shutil.copy(tiny_onnx, path)
    other = make_tiny_model(seed=1)  # different weights: parity must fail
    result = verify_export(other, path, keep_failed=keep)
    assert not result.passed and not path.exists()
    if keep:
        assert result.path == tmp_path / "m.failed.onnx" and result.path.is_file() and not result.removed
        assert "kept as" in result.failure()
    else:
        assert result.removed and list(tmp_path.glob("*.onnx")) == [] and "deleted" in result.failure()


@pytest.fixture(scope="module")
def int8_file(tiny_market, tiny_onnx, tmp_path_factory):
    paths = calibration_images(tiny_market, 16)
    return quantize_int8(tiny_onnx, tmp_path_factory.mktemp("q") / "m.int8.onnx", paths,
                         Int8Settings(num_images=16), progress=False)


def test_int8_metadata_holds_no_absolute_paths(int8_file, tiny_market):
    meta = read_metadata(int8_file)
    for key, value in meta.items():
        assert str(tiny_market) not in value and "/tmp" not in value, key
    record = json.loads(meta[CALIBRATION_KEY])
    assert record["source"] == "bounding_box_train" and len(record["files_sha256"]) == 64


def test_int8_graph_declares_only_the_domains_its_nodes_use(int8_file):
    proto = onnx.load(str(int8_file))
    used = {""} | {n.domain for n in proto.graph.node}
    declared = {o.domain for o in proto.opset_import}
    assert declared <= used | {"ai.onnx"}, declared - used


def test_int8_file_has_the_usual_permissions(int8_file):
    assert int8_file.stat().st_mode & 0o777 == _usual_mode()
