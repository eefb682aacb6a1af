"""Shared fixtures: a tiny synthetic Market-1501 set and tiny models, built once per session."""

from __future__ import annotations

import pytest
from tiny_models import make_tiny_model

from reid_export.models import ReidNet


@pytest.fixture(scope="session")
def tiny_market(tmp_path_factory):
    """A small synthetic Market-1501 folder: 8 train ids, 6 test ids, a few distractors and junk."""
    from reid_export.data.synthetic import generate_market1501

    root = tmp_path_factory.mktemp("market") / "Market"
    generate_market1501(root, train_ids=8, test_ids=6, seed=3, distractors=10, junk=5,
                        train_images=(6, 8), gallery_images=(4, 6), cameras_per_id=(2, 3), progress=False)
    return root


@pytest.fixture
def tiny_model() -> ReidNet:
    return make_tiny_model()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    from reid_export.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, make_tiny_model(), epoch=1, metrics={"rank1": 0.0})
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    from reid_export.export.onnx import export_onnx

    return export_onnx(make_tiny_model(), tmp_path_factory.mktemp("onnx") / "tiny.onnx")
