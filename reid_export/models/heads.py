"""Global pooling: how ReidNet turns the backbone's feature map (N, C, H, W) into one vector per image.

`ModelConfig.pooling` names one of POOLINGS:

    avg     global average pooling (the default, and what every model before this option used)
    max     global max pooling
    avgmax  global average + global max, summed
    gem     generalised mean (Radenovic, Tolias and Chum, 2018): (mean over H, W of x^p)^(1/p) with a
            learnable exponent p (p = 1 is average pooling, p -> infinity max pooling); x is clamped
            at 1e-6 first, so that a fractional power of a ReLU output is defined

    pool = build_pool("gem")
    pooled = pool(feature_map)        # (N, C, 1, 1)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["POOLINGS", "GeM", "AvgMaxPool", "build_pool"]

POOLINGS = ("avg", "max", "avgmax", "gem")
GEM_P = 3.0  # the exponent GeM starts from (the paper's initial value)
GEM_EPS = 1e-6  # the clamp before the power


class GeM(nn.Module):
    """Generalised-mean pooling with a learnable exponent `p`, (N, C, H, W) -> (N, C, 1, 1)."""

    def __init__(self, p: float = GEM_P, eps: float = GEM_EPS):
        super().__init__()
        self.p = nn.Parameter(torch.full((1,), float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), 1).pow(1.0 / self.p)


class AvgMaxPool(nn.Module):
    """Global average pooling plus global max pooling, (N, C, H, W) -> (N, C, 1, 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 1) + F.adaptive_max_pool2d(x, 1)


def build_pool(name: str) -> nn.Module:
    """The global pooling layer called `name` (one of POOLINGS); only `gem` holds a parameter (`p`)."""
    if name == "avg":
        return nn.AdaptiveAvgPool2d(1)
    if name == "max":
        return nn.AdaptiveMaxPool2d(1)
    if name == "avgmax":
        return AvgMaxPool()
    if name == "gem":
        return GeM()
    raise ValueError(f"unknown pooling {name!r}; choose one of {', '.join(POOLINGS)}")
