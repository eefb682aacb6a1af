"""The tracker sidecar (`NAME.onnx.metadata.json`) against boxmot 25's reader.

boxmot is an optional, heavy install: the schema test below mirrors what its reader does with each field
(`boxmot/reid/core/artifacts.py`, `core/registry.py`, `core/preprocessing.py`, `backends/onnx_backend.py`),
and the last test goes through boxmot itself when it is installed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest
from tiny_models import TINY, make_tiny_model

from reid_export.artefacts.tracker_sidecar import (
    BOXMOT_PREPROCESS,
    boxmot_differences,
    read_tracker_sidecar,
    tracker_sidecar_path,
)
from reid_export.contract import Preprocess
from reid_export.errors import ExportError
from reid_export.export.onnx import export_onnx
from reid_export.export.precision import export_at_precision
from reid_export.verified.parity import verify_export


def check_boxmot_schema(sidecar: dict, height: int, width: int) -> None:
    """What boxmot 25 requires of the sidecar for an ONNX ReID model to load at its intended size."""
    assert sidecar["schema_version"] == 1
    assert isinstance(sidecar["model_name"], str) and sidecar["model_name"]
    assert isinstance(sidecar["num_classes"], int)
    assert sidecar["preprocess"] in BOXMOT_PREPROCESS  # get_preprocess_fn raises on any other name
    assert sidecar["model_kwargs_schema_version"] == 1  # any other version is refused
    # with a schema version, boxmot refuses unknown model_kwargs keys; img_size becomes the crop (H, W)
    assert set(sidecar["model_kwargs"]) == {"img_size"}
    assert [int(v) for v in sidecar["model_kwargs"]["img_size"]] == [height, width]
    assert sidecar["img_size"] == [height, width]


def test_every_export_writes_a_boxmot_sidecar_with_the_contract(tiny_onnx):
    path = tracker_sidecar_path(tiny_onnx)
    assert path.name == tiny_onnx.name + ".metadata.json"
    sidecar = json.loads(path.read_text())
    check_boxmot_schema(sidecar, TINY.height, TINY.width)
    assert sidecar["preprocess"] == "resize"  # TINY stretches
    ours = sidecar["reid_export"]
    assert Preprocess.from_dict(ours["preprocess"]) == TINY
    assert ours["precision"] == "fp32" and ours["embedding_dim"] == 512
    assert read_tracker_sidecar(tiny_onnx) == sidecar


def test_a_malformed_sidecar_fails_the_schema_check(tiny_onnx):
    sidecar = json.loads(tracker_sidecar_path(tiny_onnx).read_text())
    for broken in ({"model_kwargs": {"img_size": [TINY.height, TINY.width], "mean": [0.5] * 3}},
                   {"preprocess": {"mean": [0.485, 0.456, 0.406]}}, {"img_size": [256, 128]},
                   {"model_kwargs_schema_version": 2}):
        with pytest.raises(AssertionError):
            check_boxmot_schema(sidecar | broken, TINY.height, TINY.width)


def test_fp16_export_gets_its_own_sidecar(tmp_path):
    out = export_at_precision(make_tiny_model(), tmp_path / "m.fp16.onnx", precision="fp16")
    sidecar = read_tracker_sidecar(out)
    check_boxmot_schema(sidecar, TINY.height, TINY.width)
    assert sidecar["reid_export"]["precision"] == "fp16"


def test_a_replaced_onnx_without_its_sidecar_is_refused(tmp_path):
    a = export_onnx(make_tiny_model(seed=0), tmp_path / "a.onnx")
    b = export_onnx(make_tiny_model(seed=1), tmp_path / "b.onnx")
    b.replace(a)  # a.onnx is now another model, its sidecar is stale
    with pytest.raises(ExportError, match="describes another file"):
        read_tracker_sidecar(a)


def test_overwriting_an_export_replaces_the_sidecar_with_a_warning(tmp_path):
    out = export_onnx(make_tiny_model(seed=0), tmp_path / "m.onnx")
    with pytest.warns(UserWarning, match="replacing a tracker sidecar"):
        export_onnx(make_tiny_model(seed=1), out, overwrite=True)
    read_tracker_sidecar(out)  # describes the new file


def test_differences_from_boxmot_preprocessing_are_named():
    assert boxmot_differences(replace(TINY, resize_method="cv2-linear")) == []
    found = boxmot_differences(replace(TINY, std=(1.0, 1.0, 1.0), color="BGR", aspect="keep-and-pad"))
    assert [d.split(":")[0] for d in found] == ["colour", "std", "aspect", "resize"]


def test_boxmot_loads_it_at_its_intended_size_without_a_warning(tiny_onnx, monkeypatch):
    pytest.importorskip("boxmot", reason="boxmot is an optional, heavy install; the schema test covers its format")
    import torch
    from boxmot.reid.backends.onnx_backend import ONNXBackend
    from boxmot.reid.core.preprocessing import get_preprocess_fn
    from boxmot.reid.core.registry import ReIDModelRegistry
    from boxmot.utils.checks import RequirementsChecker

    def refuse_install(self, missing, *args, **kwargs):  # boxmot pip-installs what it misses: never in a test
        pytest.skip(f"boxmot wants to install {missing}")

    monkeypatch.setattr(RequirementsChecker, "_install_packages", refuse_install)
    monkeypatch.setattr(ONNXBackend, "_ensure_onnxruntime_installed", lambda self: None)  # onnxruntime-gpu is it

    sidecar = json.loads(tracker_sidecar_path(tiny_onnx).read_text())
    assert ReIDModelRegistry.get_model_name(tiny_onnx) == sidecar["model_name"]
    assert ReIDModelRegistry.get_checkpoint_model_kwargs(tiny_onnx)["img_size"] == (TINY.height, TINY.width)
    get_preprocess_fn(sidecar["preprocess"])
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    boxmot_log = logging.getLogger("boxmot")  # boxmot's own logger does not propagate to the root
    boxmot_log.addHandler(handler)
    try:
        backend = ONNXBackend(tiny_onnx, torch.device("cpu"), False)
    finally:
        boxmot_log.removeHandler(handler)
    assert tuple(backend.input_shape) == (TINY.height, TINY.width)
    assert not [r.getMessage() for r in records if r.levelno >= logging.WARNING]  # e.g. "... overrides ..."


@pytest.mark.parametrize("keep_failed", [False, True])
def test_a_failed_export_takes_its_sidecar_along(tmp_path, keep_failed):
    path = export_onnx(make_tiny_model(seed=0), tmp_path / "m.onnx")
    result = verify_export(make_tiny_model(seed=1), path, keep_failed=keep_failed)  # another model: parity fails
    assert not result.passed and not tracker_sidecar_path(path).exists()
    if keep_failed:
        assert read_tracker_sidecar(result.path)["reid_export"]["onnx"]["sha256"]  # moved beside the renamed file
