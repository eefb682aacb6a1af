"""OSNet, the omni-scale network of Zhou, Yang, Cavallaro and Xiang (ICCV 2019, "Omni-Scale Feature Learning
for Person Re-Identification"), written from the paper's description; random init only.

    backbone = build_osnet("osnet_x0_25")
    features = backbone(x)            # (N, 512, 1, 1): the paper's 512-D feature, already pooled

Layout (channels at x1.0; x0.75, x0.5 and x0.25 multiply every width, the 512-D feature stays):

    conv1   7x7/2 conv, 64, BN, ReLU; 3x3/2 max-pool
    conv2   2 OSBlocks -> 256;  pool2: 1x1 conv + BN + ReLU, 2x2/2 average pool
    conv3   2 OSBlocks -> 384;  pool3: the same
    conv4   2 OSBlocks -> 512
    conv5   1x1 conv + BN + ReLU
    fc      global average pool, then the 512-D fc + BN + ReLU (a 1x1 conv on the pooled map)

An OSBlock: 1x1 reduce to a quarter of the output width; T = 4 streams of 1, 2, 3 and 4 stacked
Lite 3x3 layers (1x1 pointwise conv, 3x3 depthwise conv, BN, ReLU), so the streams see 3x3 to 9x9;
a unified aggregation gate (one small MLP shared by the streams: global average pool, 1x1 conv to
1/16 of the channels, ReLU, 1x1 conv back, sigmoid) weighs each stream channel by channel, and the
gated streams are summed; then 1x1 expand + BN, the residual (through a 1x1 conv + BN where the width
changes), ReLU. The IBN variant (`osnet_ibn_x1_0`) uses instance normalisation instead of BN in the
stem and adds it after the residual sum of the conv2 blocks, where appearance (colour, lighting) is
still close to the pixels; this is where the authors' code (torchreid) puts it, so torchreid's
`osnet_ibn_x1_0` weights load exactly (`models.torchreid` maps its module names onto these).

Design choice: the paper's fc layer is part of the backbone, so `ReidNet.forward_features` returns the
paper's 512-D feature and ReidNet's own pool sees a 1x1 map (a no-op); ReidNet's neck (BNNeck in the
recipes) and heads sit on top as they do for a ResNet. `last_stride` and torchvision's ImageNet weights
are ResNet options and do not apply.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CheckpointError

__all__ = ["OSNET_ARCHS", "OSNET_EMBEDDING_DIM", "OSNet", "OSBlock", "build_osnet", "osnet_arch_of"]

OSNET_EMBEDDING_DIM = 512
# arch -> (stem, conv2, conv3, conv4 widths, instance normalisation in the lower layers)
OSNET_ARCHS: dict[str, tuple[tuple[int, int, int, int], bool]] = {
    "osnet_x1_0": ((64, 256, 384, 512), False),
    "osnet_x0_75": ((48, 192, 288, 384), False),
    "osnet_x0_5": ((32, 128, 192, 256), False),
    "osnet_x0_25": ((16, 64, 96, 128), False),
    "osnet_ibn_x1_0": ((64, 256, 384, 512), True),
}
_STREAMS = 4  # T: streams of 1..T Lite 3x3 layers
_REDUCTION = 4  # bottleneck ratio of an OSBlock
_GATE_REDUCTION = 16  # hidden width of the aggregation gate's MLP


class ConvNormReLU(nn.Sequential):
    """k x k conv (no bias), BN (or instance norm), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1,
                 instance_norm: bool = False):
        norm = nn.InstanceNorm2d(out_channels, affine=True) if instance_norm else nn.BatchNorm2d(out_channels)
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.norm = norm
        self.relu = nn.ReLU(inplace=True)


class LiteConv3x3(nn.Sequential):
    """Lite 3x3: 1x1 pointwise conv, then 3x3 depthwise conv, BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.depthwise = nn.Conv2d(out_channels, out_channels, 3, padding=1, groups=out_channels, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)


class AggregationGate(nn.Module):
    """Channel-wise weights in (0, 1) from the globally pooled input: x * sigmoid(MLP(avgpool(x)))."""

    def __init__(self, channels: int):
        super().__init__()
        hidden = max(1, channels // _GATE_REDUCTION)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(self.relu(self.fc1(self.pool(x)))))


class OSBlock(nn.Module):
    """Omni-scale residual block: reduce, T gated streams of growing receptive field summed, expand, residual."""

    def __init__(self, in_channels: int, out_channels: int, *, instance_norm: bool = False):
        super().__init__()
        mid = out_channels // _REDUCTION
        self.reduce = ConvNormReLU(in_channels, mid)
        self.streams = nn.ModuleList(
            nn.Sequential(*(LiteConv3x3(mid, mid) for _ in range(depth))) for depth in range(1, _STREAMS + 1)
        )
        self.gate = AggregationGate(mid)  # one gate, shared by every stream
        self.expand = nn.Sequential(nn.Conv2d(mid, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.shortcut = (nn.Identity() if in_channels == out_channels else
                         nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)))
        self.instance_norm = nn.InstanceNorm2d(out_channels, affine=True) if instance_norm else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        fused = sum(self.gate(stream(reduced)) for stream in self.streams)
        out = self.expand(fused) + self.shortcut(x)
        if self.instance_norm is not None:
            out = self.instance_norm(out)
        return self.relu(out)


class OSNet(nn.Module):
    """The OSNet backbone; `forward` gives the pooled 512-D feature as (N, 512, 1, 1)."""

    def __init__(self, widths: tuple[int, int, int, int], *, instance_norm: bool = False,
                 zero_init_residual: bool = False):
        super().__init__()
        stem, c2, c3, c4 = widths
        self.conv1 = ConvNormReLU(3, stem, 7, stride=2, instance_norm=instance_norm)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = _stage(stem, c2, instance_norm)
        self.pool2 = _transition(c2)
        self.conv3 = _stage(c2, c3, False)
        self.pool3 = _transition(c3)
        self.conv4 = _stage(c3, c4, False)
        self.conv5 = ConvNormReLU(c4, c4)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = ConvNormReLU(c4, OSNET_EMBEDDING_DIM)  # the paper's fc layer, on the pooled 1x1 map
        _init_weights(self, zero_init_residual)

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The conv5 feature map (N, C, H/16, W/16), before pooling."""
        x = self.maxpool(self.conv1(x))
        x = self.pool2(self.conv2(x))
        x = self.pool3(self.conv3(x))
        return self.conv5(self.conv4(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.global_pool(self.forward_maps(x)))


def build_osnet(arch: str, *, zero_init_residual: bool = False) -> OSNet:
    """An OSNet backbone by name (one of OSNET_ARCHS), randomly initialised. `zero_init_residual` zeroes
    the last BN of every block's expand branch, so each block starts as its shortcut."""
    if arch not in OSNET_ARCHS:
        raise CheckpointError(f"unknown OSNet arch {arch!r}; choose one of {', '.join(OSNET_ARCHS)}")
    widths, instance_norm = OSNET_ARCHS[arch]
    return OSNet(widths, instance_norm=instance_norm, zero_init_residual=zero_init_residual)


def osnet_arch_of(state: dict) -> str | None:
    """Which OSNet a backbone state dict (keys as `OSNet.state_dict()`) holds, or None when it is no OSNet."""
    stem = state.get("conv1.conv.weight")
    if stem is None or "conv2.0.reduce.conv.weight" not in state:  # torchreid's OSNet has conv1 too: see models.torchreid
        return None
    instance_norm = "conv1.norm.running_mean" not in state  # instance norm keeps no running statistics
    for arch, (widths, ibn) in OSNET_ARCHS.items():
        if widths[0] == stem.shape[0] and ibn == instance_norm:
            return arch
    raise CheckpointError(
        f"an OSNet state dict with a {stem.shape[0]}-channel stem ({'IBN' if instance_norm else 'BN'}) matches "
        f"no supported width ({', '.join(OSNET_ARCHS)})"
    )


# -- private helpers -------------------------------------------------------------------


def _stage(in_channels: int, out_channels: int, instance_norm: bool) -> nn.Sequential:
    return nn.Sequential(OSBlock(in_channels, out_channels, instance_norm=instance_norm),
                         OSBlock(out_channels, out_channels, instance_norm=instance_norm))


def _transition(channels: int) -> nn.Sequential:
    return nn.Sequential(ConvNormReLU(channels, channels), nn.AvgPool2d(2, stride=2))


def _init_weights(model: nn.Module, zero_init_residual: bool) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, OSBlock):
                nn.init.zeros_(m.expand[1].weight)
