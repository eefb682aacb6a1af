"""Tiny models for tests: resnet18 at 64x32 with non-trivial BN statistics."""

from __future__ import annotations

import torch

from reid_export.contract import Preprocess
from reid_export.models import ModelConfig, ReidNet

TINY = Preprocess(height=64, width=32)


def make_tiny_model(num_classes: int = 8, neck: str = "bnneck", seed: int = 0, attributes: bool = False) -> ReidNet:
    torch.manual_seed(seed)
    config = ModelConfig(arch="resnet18", num_classes=num_classes, neck=neck, preprocess=TINY, attributes=attributes)
    model = ReidNet(config).eval()
    # random BN statistics so the network is not near-identity and differences would show
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model
