"""Shared fixtures: a tiny synthetic Market-1501 set and tiny models, built once per session."""

from __future__ import annotations

import pytest
import torch

from reid_export.contract import Preprocess
from reid_export.model import ModelConfig, ReidNet

TINY = Preprocess(height=64, width=32)


@pytest.fixture(scope="session")
def tiny_market(tmp_path_factory):
    """A small synthetic Market-1501 folder: 8 train ids, 6 test ids, a few distractors and junk."""
    from reid_export.data.synthetic import generate_market1501

    root = tmp_path_factory.mktemp("market") / "Market"
    generate_market1501(root, train_ids=8, test_ids=6, seed=3, distractors=10, junk=5,
                        train_images=(6, 8), gallery_images=(4, 6), cameras_per_id=(2, 3), progress=False)
    return root


def make_tiny_model(num_classes: int = 8, neck: str = "bnneck", seed: int = 0) -> ReidNet:
    torch.manual_seed(seed)
    model = ReidNet(ModelConfig(arch="resnet18", num_classes=num_classes, neck=neck, preprocess=TINY)).eval()
    # random BN statistics so the network is not near-identity and differences would show
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


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
