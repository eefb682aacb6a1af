"""Weights trained with torchreid (Zhou et al.'s deep-person-reid, PyPI `torchreid`), recognised by their keys
and converted exactly: the export computes what torchreid's own `model.eval()(x)` returns.

    model, summary = convert_torchreid(state, source="osnet_x0_25_msmt17.pt")

Supported architectures (torchreid's model names):
    osnet_x1_0, osnet_x0_75, osnet_x0_5, osnet_x0_25, osnet_ibn_x1_0   the fc's 512-D output
    resnet18, resnet34, resnet50, resnet101                             the pooled feature, last stride 2
    resnet50_fc512                                                     the fc's 512-D output, last stride 1

torchreid's OSNet module names are mapped onto `osnet.OSNet`'s (`conv2a..d` -> `streams`, `conv3` -> `expand`,
`downsample` -> `shortcut`, the stage's third module -> `pool2/3`). Its fc is a Linear with a bias followed by
BN; the project's OSNet fc is a bias-free 1x1 conv + BN, so the bias is folded into the BN's running mean,
which BN subtracts right after (exact, in training too, where the batch mean absorbs it). A ResNet maps onto
torchvision's names, and its fc onto `ReidNet.fc` (the same keys). The classifier is dropped.

torchreid records neither the input size nor the normalisation in its files: both are its training defaults
(256x128, ImageNet mean/std), taken with a warning naming --height/--width/--mean/--std. The last stride is
not in the tensors either; torchreid's model zoo fixes it per architecture (2, and 1 for resnet50_fc512).
"""

from __future__ import annotations

import re

import torch

from ..contract import IMAGENET_MEAN, IMAGENET_STD
from ..errors import CheckpointError
from .foreign import ImportSummary
from .net import ModelConfig, ReidNet, infer_arch, normalise_backbone_keys
from .osnet import OSNET_ARCHS

__all__ = ["TORCHREID_ARCHS", "looks_like_torchreid", "convert_torchreid"]

TORCHREID_ARCHS = ("osnet_x1_0", "osnet_x0_75", "osnet_x0_5", "osnet_x0_25", "osnet_ibn_x1_0",
                   "resnet18", "resnet34", "resnet50", "resnet101", "resnet50_fc512")
_HEIGHT, _WIDTH = 256, 128  # torchreid's default input size (its ImageDataManager's height, width)
_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")  # torchreid ResNets the project's ARCHS has
# torchreid's OSNet names -> osnet.OSNet's, tried in order on each key; a block is conv2-4's module 0 or 1
_BLOCK = r"^(conv[234]\.[01])\."
_OSNET_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^conv1\.bn\.", "conv1.norm."),
    (r"^conv([23])\.2\.0\.conv\.", r"pool\1.0.conv."),
    (r"^conv([23])\.2\.0\.bn\.", r"pool\1.0.norm."),
    (r"^conv5\.bn\.", "conv5.norm."),
    (r"^fc\.1\.", "fc.norm."),
    (_BLOCK + r"conv1\.bn\.", r"\1.reduce.norm."),
    (_BLOCK + r"conv1\.conv\.", r"\1.reduce.conv."),
    (_BLOCK + r"conv2a\.", r"\1.streams.0.0."),
    (_BLOCK + r"conv2b\.", r"\1.streams.1."),
    (_BLOCK + r"conv2c\.", r"\1.streams.2."),
    (_BLOCK + r"conv2d\.", r"\1.streams.3."),
    (_BLOCK + r"conv3\.conv\.", r"\1.expand.0."),
    (_BLOCK + r"conv3\.bn\.", r"\1.expand.1."),
    (_BLOCK + r"downsample\.conv\.", r"\1.shortcut.0."),
    (_BLOCK + r"downsample\.bn\.", r"\1.shortcut.1."),
    (_BLOCK + r"IN\.", r"\1.instance_norm."),
)
_LITE_RENAMES = {"conv1": "pointwise", "conv2": "depthwise", "bn": "norm"}  # LightConv3x3 -> LiteConv3x3


def looks_like_torchreid(state: dict) -> bool:
    """Whether an unwrapped state dict has torchreid's OSNet, OSNet-AIN or ResNet layout (a ResNet is told
    from torchvision's by its `classifier` or its fc512 head instead of torchvision's `fc`)."""
    if _is_osnet(state) or _is_osnet_ain(state):
        return True
    resnet = "conv1.weight" in state and "layer4.0.conv1.weight" in state and "fc.weight" not in state
    return resnet and ("classifier.weight" in state or "fc.0.weight" in state)


def convert_torchreid(state: dict, *, source: str, config: dict | None = None) -> tuple[ReidNet, ImportSummary]:
    """A ReidNet computing torchreid's eval output from `state` (unwrapped, no `module.`), and its summary.
    `config` is unused: torchreid saves none beside its weights."""
    if _is_osnet_ain(state):
        raise CheckpointError(
            f"{source}: a torchreid OSNet-AIN (osnet_ain_*): its blocks (instance norm inside the residual branch, "
            "two block types per stage) are not the project's OSNet, so it cannot be exported exactly. Supported "
            f"torchreid architectures: {', '.join(TORCHREID_ARCHS)}")
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    if _is_osnet(state):
        return _convert_osnet(state, source)
    return _convert_resnet(state, source)


# -- private helpers -------------------------------------------------------------------


def _is_osnet(state: dict) -> bool:
    return "conv2.0.conv2a.conv1.weight" in state


def _is_osnet_ain(state: dict) -> bool:
    return "conv2.0.conv2.0.layers.0.conv1.weight" in state


def _convert_osnet(state: dict, source: str) -> tuple[ReidNet, ImportSummary]:
    stem = state["conv1.conv.weight"].shape[0]
    instance_norm = "conv1.bn.running_mean" not in state  # instance norm keeps no running statistics
    arch = next((a for a, (widths, ibn) in OSNET_ARCHS.items() if widths[0] == stem and ibn == instance_norm), None)
    if arch is None:
        raise CheckpointError(f"{source}: a torchreid OSNet with a {stem}-channel stem "
                              f"({'IBN' if instance_norm else 'BN'}) is none of the supported widths "
                              f"({', '.join(a for a in TORCHREID_ARCHS if a.startswith('osnet'))})")
    fc, bias = state.get("fc.0.weight"), state.get("fc.0.bias")
    if fc is None or bias is None or "fc.3.weight" in state:
        raise CheckpointError(f"{source}: a torchreid {arch} whose fc is not one Linear + BN + ReLU (found "
                              f"{sorted(k for k in state if k.startswith('fc.'))[:4]}); torchreid's builders make "
                              "a 512-D one, the only layout supported")
    backbone = {}
    for key, value in state.items():
        if key in ("fc.0.weight", "fc.0.bias"):
            continue
        backbone[_osnet_key(key)] = value
    backbone["fc.conv.weight"] = fc[:, :, None, None]
    backbone["fc.norm.running_mean"] = state["fc.1.running_mean"] - bias  # BN(Wx + b) = BN'(Wx), mean' = mean - b
    model = ReidNet(ModelConfig(arch=arch))
    _load_exactly(model, {f"backbone.{k}": v for k, v in backbone.items()}, source, arch)
    return model, _summary(arch, model, neck="none", last_stride=None, embedding="fc")


def _convert_resnet(state: dict, source: str) -> tuple[ReidNet, ImportSummary]:
    head = {k: v for k, v in state.items() if k.startswith("fc.")}
    backbone = normalise_backbone_keys({k: v for k, v in state.items() if k not in head}, source=source)
    arch = infer_arch(backbone, source=source)
    fc = head.get("fc.0.weight")
    if arch not in _RESNETS or (fc is not None and (arch != "resnet50" or fc.shape[0] != 512)):
        found = f"{arch} with a {fc.shape[0]}-D fc" if fc is not None else arch
        raise CheckpointError(f"{source}: a torchreid {found} is none of the supported torchreid ResNets "
                              f"({', '.join(a for a in TORCHREID_ARCHS if a.startswith('resnet'))}); its last stride "
                              "is known only for those")
    name = "resnet50_fc512" if fc is not None else arch
    fc_dim = 512 if fc is not None else 0
    model = ReidNet(ModelConfig(arch=arch, last_stride=1 if fc_dim else 2, fc_dim=fc_dim))
    _load_exactly(model, {f"backbone.{k}": v for k, v in backbone.items()} | head, source, name)
    return model, _summary(name, model, neck="none", last_stride=model.config.last_stride,
                           embedding="fc" if fc_dim else "pooled")


def _osnet_key(key: str) -> str:
    for pattern, replacement in _OSNET_RENAMES:
        renamed, hits = re.subn(pattern, replacement, key)
        if hits:
            key = renamed
            break
    match = re.match(r"^(.*\.streams\.\d\.\d)\.(conv1|conv2|bn)\.(.*)$", key)
    if match:
        key = f"{match[1]}.{_LITE_RENAMES[match[2]]}.{match[3]}"
    return key


def _load_exactly(model: ReidNet, state: dict, source: str, arch: str) -> None:
    """Load every tensor of the model from `state` and nothing else, or say which keys differ."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or reshaped:
        raise CheckpointError(
            f"{source}: looks like a torchreid {arch} but does not match its layout: {len(missing)} missing "
            f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, {len(reshaped)} of another shape "
            f"{reshaped[:3]}; was it edited, or saved from another model? Supported torchreid architectures: "
            f"{', '.join(TORCHREID_ARCHS)}")
    with torch.no_grad():
        model.load_state_dict(state, strict=True)
    model.eval()


def _summary(arch: str, model: ReidNet, *, neck: str, last_stride: int | None, embedding: str) -> ImportSummary:
    return ImportSummary(
        source="torchreid", arch=arch, height=_HEIGHT, width=_WIDTH, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        neck=neck, pooling="avg", last_stride=last_stride, embedding_dim=model.config.embedding_dim,
        embedding=embedding,
        origin={"arch": "tensors", "input": "default", "mean_std": "default", "neck": "tensors", "pooling": "arch",
                "last_stride": "arch", "embedding": "arch"})
