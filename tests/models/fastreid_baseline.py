"""fast-reid's `Baseline` (BoT / SBS / AGW recipes) for tests, WRITTEN HERE from fast-reid's published source
(JDAI-CV/fast-reid, the code of PyPI `fastreid` 1.4.0: modeling/backbones/resnet.py, layers/batch_norm.py (IBN),
layers/pooling.py, modeling/heads/embedding_head.py, modeling/meta_arch/baseline.py, config/defaults.py).

Why not the package itself: `pip install fastreid` (1.4.0) does not install beside this project, as it pins
torch==1.13.1 and torchvision==0.14.1. This model follows fast-reid's module tree, state-dict keys and
eval-mode computation, and is independent of reid-export (no torchvision, nothing imported from the project).
When fast-reid's own code is importable, tests/models/test_fastreid_import.py checks this model against it.

    model = build_baseline({"MODEL": {"BACKBONE": {"WITH_IBN": True}, "HEADS": {"WITH_BNNECK": True}}})
    embedding = model.eval()(images_0_255)      # fast-reid's eval output: after heads.bottleneck
    pooled = model.pooled(images_0_255)          # heads.pool_layer's output (what dropping the BNNeck gives)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

DEPTHS = {"18x": ("basic", [2, 2, 2, 2]), "34x": ("basic", [3, 4, 6, 3]), "50x": ("bottleneck", [3, 4, 6, 3]),
          "101x": ("bottleneck", [3, 4, 23, 3])}
DEFAULTS = {"DEPTH": "50x", "LAST_STRIDE": 1, "WITH_IBN": False, "POOL_LAYER": "GlobalAvgPool", "WITH_BNNECK": False,
            "EMBEDDING_DIM": 0, "NECK_FEAT": "before", "NUM_CLASSES": 751,
            "PIXEL_MEAN": [0.485 * 255, 0.456 * 255, 0.406 * 255], "PIXEL_STD": [0.229 * 255, 0.224 * 255, 0.225 * 255]}


class IBN(nn.Module):
    """Instance norm on the first int(planes / 2) channels, batch norm on the rest (keys `IN.*`, `BN.*`)."""

    def __init__(self, planes: int):
        super().__init__()
        self.half = int(planes / 2)
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(planes - self.half)

    def forward(self, x):
        first, second = torch.split(x, self.half, 1)
        return torch.cat((self.IN(first.contiguous()), self.BN(second.contiguous())), 1)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, with_ibn, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = IBN(planes) if with_ibn else nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, with_ibn, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = IBN(planes) if with_ibn else nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)  # the stride sits here
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    def __init__(self, depth: str, last_stride: int, with_ibn: bool):
        super().__init__()
        kind, blocks = DEPTHS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)  # no padding, unlike torchvision
        self.layer1 = self._make_layer(block, 64, blocks[0], 1, with_ibn)
        self.layer2 = self._make_layer(block, 128, blocks[1], 2, with_ibn)
        self.layer3 = self._make_layer(block, 256, blocks[2], 2, with_ibn)
        self.layer4 = self._make_layer(block, 512, blocks[3], last_stride, False)  # never IBN in layer4

    def _make_layer(self, block, planes, count, stride, with_ibn):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, with_ibn, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, with_ibn) for _ in range(1, count)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class GeneralizedMeanPooling(nn.Module):
    def __init__(self, norm=3.0, eps=1e-6):
        super().__init__()
        self.p = float(norm)
        self.eps = eps

    def forward(self, x):
        return F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), (1, 1)).pow(1.0 / self.p)


class GeneralizedMeanPoolingP(GeneralizedMeanPooling):
    def __init__(self, norm=3.0, eps=1e-6):
        super().__init__(norm, eps)
        self.p = nn.Parameter(torch.ones(1) * norm)


class AdaptiveAvgMaxPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.gmp = nn.AdaptiveMaxPool2d(1)

    def forward(self, x):
        return self.gap(x) + self.gmp(x)


POOLS = {"GlobalAvgPool": lambda: nn.AdaptiveAvgPool2d(1), "GlobalMaxPool": lambda: nn.AdaptiveMaxPool2d(1),
         "GeneralizedMeanPooling": GeneralizedMeanPooling, "GeneralizedMeanPoolingP": GeneralizedMeanPoolingP,
         "AdaptiveAvgMaxPool": AdaptiveAvgMaxPool}


class EmbeddingHead(nn.Module):
    def __init__(self, feat_dim, embedding_dim, num_classes, neck_feat, pool_type, with_bnneck):
        super().__init__()
        self.pool_layer = POOLS[pool_type]()
        self.neck_feat = neck_feat  # the training losses' feature only; eval always returns the bottleneck's output
        neck = []
        if embedding_dim > 0:
            neck.append(nn.Conv2d(feat_dim, embedding_dim, 1, 1, bias=False))
            feat_dim = embedding_dim
        if with_bnneck:
            bn = nn.BatchNorm2d(feat_dim)
            bn.bias.requires_grad_(False)
            neck.append(bn)
        self.bottleneck = nn.Sequential(*neck)
        self.weight = nn.Parameter(torch.randn(num_classes, feat_dim) * 0.01)  # the ID classifier

    def forward(self, features):
        assert not self.training, "this test model has only fast-reid's eval path"
        return self.bottleneck(self.pool_layer(features))[..., 0, 0]


class Baseline(nn.Module):
    def __init__(self, backbone, heads, pixel_mean, pixel_std):
        super().__init__()
        self.backbone = backbone
        self.heads = heads
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(1, -1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(1, -1, 1, 1), False)

    def forward(self, images):
        """RGB images in 0-255 (N, 3, H, W) -> fast-reid's eval embedding."""
        return self.heads(self.backbone((images - self.pixel_mean) / self.pixel_std))

    def pooled(self, images):
        """The pooled feature before heads.bottleneck (what an importer that dropped the BNNeck would export)."""
        return self.heads.pool_layer(self.backbone((images - self.pixel_mean) / self.pixel_std))[..., 0, 0]


def build_baseline(cfg: dict) -> Baseline:
    """A Baseline from a fast-reid config dict (MODEL.BACKBONE / MODEL.HEADS / MODEL.PIXEL_*; defaults as fast-reid's)."""
    model = cfg.get("MODEL", {})
    backbone_cfg = {**DEFAULTS, **model.get("BACKBONE", {})}
    heads_cfg = {**DEFAULTS, **model.get("HEADS", {})}
    backbone = ResNet(backbone_cfg["DEPTH"], backbone_cfg["LAST_STRIDE"], backbone_cfg["WITH_IBN"])
    feat_dim = 512 * (4 if DEPTHS[backbone_cfg["DEPTH"]][0] == "bottleneck" else 1)
    heads = EmbeddingHead(feat_dim, heads_cfg["EMBEDDING_DIM"], heads_cfg["NUM_CLASSES"], heads_cfg["NECK_FEAT"],
                          heads_cfg["POOL_LAYER"], heads_cfg["WITH_BNNECK"])
    return Baseline(backbone, heads, model.get("PIXEL_MEAN", DEFAULTS["PIXEL_MEAN"]),
                    model.get("PIXEL_STD", DEFAULTS["PIXEL_STD"]))


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Random weights everywhere, as a trained model has: conv/linear weights, norm scales and shifts, BN running
    statistics, and GeM's exponent."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) * 1.5 + 0.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif name.endswith("pool_layer.p"):
                t.copy_(torch.rand(t.shape, generator=g) * 1.5 + 2.5)
            elif t.dim() == 1:  # norm scales
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            else:  # He init keeps activations in range through a deep net
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5)
    return model


def save_like_fastreid(model: Baseline, path) -> None:
    """As fast-reid's Checkpointer.save writes it: the model's state dict under 'model', beside the training state."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3.5e-4)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 59, "iteration": 12345},
               path)
