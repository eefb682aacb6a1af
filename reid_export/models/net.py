"""ReidNet: a torchvision ResNet or an OSNet (`osnet`) backbone, a global pooling (`heads`), an optional reduction
and BNNeck, an ID classifier head, attribute heads.

Reading order: the config, the network, its builder, then weight-loading helpers.

    features = model.forward_features(x)   # (N, C) globally pooled backbone output
    emb = model.embed(x)                   # the embedding that is exported and ranked
    out = model(x)                         # training: dict with features, embedding, logits, attributes
    probs = attribute_probabilities(out["attributes"])   # (N, 30): age softmax | 9 binary | 8 + 9 colours

The attribute heads sit on the shared embedding: age is a 4-way softmax, the 9 binary attributes
and the 8 upper / 9 lower colours are independent sigmoids (real labels mark none or several
colours for some ids).

The backbone is held as `nn.Sequential(conv1, bn1, relu, maxpool, layer1..layer4)`, the same
indices as the seed notebook's `nn.Sequential(*list(resnet.children())[:-1])`, so its
`resnet50_market1501_backbone.pth` (keys `0.weight`, `1.running_mean`, `4.0.conv1.weight`, ...)
loads into `model.backbone` as it is.

Options for models trained elsewhere (fast-reid's BoT / SBS): `ibn` (ResNet-IBN-a: the first BN of every
block in layers 1-3 is half instance norm, half batch norm), `stem_pool="ceil"` (the stem's max pool without
padding, in ceil mode), `pooling` (average, max, both, GeM) and `reduction` (a bias-free linear map from the
pooled feature to a smaller embedding, before the neck).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
from torch import nn

from ..contract import Preprocess
from ..data.attributes import HEAD_OUTPUTS, NUM_AGE_CLASSES, split_attributes
from ..errors import CheckpointError
from .heads import POOLINGS, build_pool
from .osnet import OSNET_ARCHS, OSNET_EMBEDDING_DIM, build_osnet, osnet_arch_of

__all__ = ["ARCHS", "ATTRIBUTE_LOGITS", "EMBEDDINGS", "STEM_POOLS", "InstanceBatchNorm", "ModelConfig", "ReidNet", "build_model", "with_embedding", "load_backbone_weights", "infer_arch",
           "attribute_probabilities", "split_attributes", "normalise_backbone_keys", "torch_load"]

# arch -> (blocks per stage, bottleneck?, embedding dim)
ARCHS: dict[str, tuple[tuple[int, int, int, int], bool, int]] = {
    "resnet18": ((2, 2, 2, 2), False, 512),
    "resnet34": ((3, 4, 6, 3), False, 512),
    "resnet50": ((3, 4, 6, 3), True, 2048),
    "resnet101": ((3, 4, 23, 3), True, 2048),
    # OSNet (osnet.py): blocks per stage, no bottleneck, the paper's 512-D feature at every width
    **{name: ((2, 2, 2), False, OSNET_EMBEDDING_DIM) for name in OSNET_ARCHS},
}
ATTRIBUTE_LOGITS = HEAD_OUTPUTS  # age classes | binary attributes | upper colours | lower colours
EMBEDDINGS = ("neck", "pooled")  # the two features `ReidNet.embed` can return
STEM_POOLS = ("padded", "ceil")  # the ResNet stem's 3x3/2 max pool: padding 1 (torchvision) | none, ceil mode
_TV_NAMES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


@dataclass
class ModelConfig:
    arch: str = "resnet50"  # one of ARCHS
    num_classes: int = 0  # training identities; 0 = no ID head (export / eval only)
    neck: str = "none"  # "none": embedding = pooled feature; "bnneck": BN after pooling (Luo et al.)
    last_stride: int = 2  # 1 doubles the final feature map (BoT trick)
    zero_init_residual: bool = False  # zero the last BN of every residual block at init
    attributes: bool = False  # add the 27 Market-1501 attribute heads (30 logits) on the embedding
    preprocess: Preprocess = field(default_factory=Preprocess)  # the input contract
    embedding: str = "neck"  # what `embed` returns (exported, ranked): "neck" output or "pooled" feature
    pooling: str = "avg"  # global pooling, one of heads.POOLINGS: avg | max | avgmax | gem (learnable p)
    ibn: bool = False  # ResNet-IBN-a: bn1 of every block in layers 1-3 is half InstanceNorm, half BN (ResNet only)
    stem_pool: str = "padded"  # one of STEM_POOLS; "ceil" is fast-reid's stem (ResNet only)
    reduction: int = 0  # > 0: a bias-free linear map pooled -> this many dims before the neck (the embedding size)
    fc_dim: int = 0  # > 0: torchreid's fc after pooling, Linear + BN1d + ReLU to this many dims (the embedding size)
    base_channels: int = 64  # ResNet: channels of the stem and first stage, doubled at each later stage; 64 = the
    #                          standard ResNet, 32 = half as wide (a quarter of the convolution FLOPs, half the embedding)

    def __post_init__(self) -> None:
        if isinstance(self.preprocess, dict):
            self.preprocess = Preprocess.from_dict(self.preprocess, source="model config")
        if self.arch not in ARCHS:
            raise CheckpointError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.neck not in ("none", "bnneck"):
            raise CheckpointError(f"unknown neck {self.neck!r}; choose 'none' or 'bnneck'")
        if self.last_stride not in (1, 2):
            raise CheckpointError(f"last_stride must be 1 or 2, got {self.last_stride}")
        if self.arch in OSNET_ARCHS and self.last_stride != 2:
            raise CheckpointError(f"last_stride={self.last_stride} is a ResNet option; {self.arch} has no last stride "
                                  "to change: set last_stride = 2 (or pick a resnet arch)")
        if self.embedding not in EMBEDDINGS:
            raise CheckpointError(f"unknown embedding {self.embedding!r}; choose one of {', '.join(EMBEDDINGS)}")
        if self.pooling not in POOLINGS:
            raise CheckpointError(f"unknown pooling {self.pooling!r}; choose one of {', '.join(POOLINGS)}")
        if self.stem_pool not in STEM_POOLS:
            raise CheckpointError(f"unknown stem_pool {self.stem_pool!r}; choose one of {', '.join(STEM_POOLS)}")
        if self.reduction < 0:
            raise CheckpointError(f"reduction must be 0 (none) or a positive embedding size, got {self.reduction}")
        if self.fc_dim < 0 or (self.fc_dim and (self.reduction or self.arch in OSNET_ARCHS)):
            raise CheckpointError(f"fc_dim={self.fc_dim}: a ResNet option (OSNet has its fc inside the backbone) that "
                                  "excludes reduction; set fc_dim = 0, or a positive size with reduction = 0")
        if self.base_channels < 8 or self.base_channels % 8:
            raise CheckpointError(f"base_channels must be a multiple of 8 (64: the standard ResNet, 32: half as wide), "
                                  f"got {self.base_channels}")
        resnet_only = {"ibn": (self.ibn, False), "stem_pool": (self.stem_pool, "padded"), "pooling": (self.pooling, "avg"),
                       "base_channels": (self.base_channels, 64)}
        changed = [f"{name}={value!r}" for name, (value, default) in resnet_only.items() if value != default]
        if self.arch in OSNET_ARCHS and changed:
            raise CheckpointError(f"{', '.join(changed)}: ResNet options; {self.arch} pools inside its backbone and "
                                  "has no IBN-a blocks or max-pool stem to change: leave them at their defaults "
                                  "(or pick a resnet arch)")

    @property
    def backbone_dim(self) -> int:
        """Channels of the pooled backbone output (512 for ResNet-18, 2048 for ResNet-50, at width 64)."""
        if self.arch in OSNET_ARCHS:
            return ARCHS[self.arch][2]
        return ARCHS[self.arch][2] * self.base_channels // 64

    @property
    def embedding_dim(self) -> int:
        return self.fc_dim or self.reduction or self.backbone_dim

    def to_dict(self) -> dict:
        d = asdict(self)
        d["preprocess"] = self.preprocess.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class InstanceBatchNorm(nn.Module):
    """IBN-a's normalisation (Pan, Luo, Shi and Tang, ECCV 2018): the first half of the channels (rounded down)
    go through an affine InstanceNorm, the rest through BatchNorm, concatenated back in order."""

    def __init__(self, channels: int):
        super().__init__()
        self.sizes = [channels // 2, channels - channels // 2]
        self.instance = nn.InstanceNorm2d(self.sizes[0], affine=True)
        self.batch = nn.BatchNorm2d(self.sizes[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, rest = torch.split(x, self.sizes, dim=1)
        return torch.cat([self.instance(first.contiguous()), self.batch(rest.contiguous())], dim=1)


class ReidNet(nn.Module):
    """Backbone -> global pool -> (reduction) -> (BNNeck) -> embedding -> ID logits."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.backbone = (build_osnet(config.arch, zero_init_residual=config.zero_init_residual)
                         if config.arch in OSNET_ARCHS else _torchvision_backbone(config))
        self.pool = build_pool(config.pooling)
        self.reduce = nn.Linear(config.backbone_dim, config.reduction, bias=False) if config.reduction else None
        self.fc = _fc_layer(config.backbone_dim, config.fc_dim) if config.fc_dim else None
        self.import_summary: dict | None = None  # what an importer of foreign weights found (models.foreign)
        dim = config.embedding_dim
        if config.neck == "bnneck":
            self.neck = nn.BatchNorm1d(dim)
            self.neck.bias.requires_grad_(False)  # BNNeck: no shift, so the embedding stays centred
        else:
            self.neck = nn.Identity()
        self.classifier = nn.Linear(dim, config.num_classes, bias=False) if config.num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.001)
        self.attribute_head = nn.Linear(dim, ATTRIBUTE_LOGITS) if config.attributes else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled backbone output, (N, C), reduced to `config.reduction` dims when that is set, or
        through torchreid's fc (`config.fc_dim`)."""
        pooled = self.pool(self.backbone(x)).flatten(1)
        if self.fc is not None:
            return self.fc(pooled)
        return pooled if self.reduce is None else self.reduce(pooled)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding used for ranking and exported to ONNX, (N, C): the neck's output or the pooled
        feature before it, as `config.embedding` says."""
        return self.embed_with_attributes(x)[0]

    def embed_with_attributes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(`embed(x)`, attribute logits or None) from one backbone pass; the heads always read the neck output."""
        features = self.forward_features(x)
        neck = self.neck(features)
        attributes = self.attribute_head(neck) if self.attribute_head is not None else None
        return (features if self.config.embedding == "pooled" else neck), attributes

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.forward_features(x)
        embedding = self.neck(features)
        out = {"features": features, "embedding": embedding}
        if self.classifier is not None:
            out["logits"] = self.classifier(embedding)
        if self.attribute_head is not None:
            out["attributes"] = self.attribute_head(embedding)
        return out


def with_embedding(model: ReidNet, embedding: str) -> ReidNet:
    """`model` with `config.embedding` set to "neck" or "pooled": a shallow copy sharing its weights."""
    import copy
    from dataclasses import replace

    clone = copy.copy(model)
    clone.config = replace(model.config, embedding=embedding)  # validated by ModelConfig
    return clone


def attribute_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Attribute logits -> probabilities in the same layout: softmax over age, sigmoid elsewhere."""
    parts = split_attributes(logits)
    return torch.cat([parts["age"].softmax(dim=1), logits[:, NUM_AGE_CLASSES:].sigmoid()], dim=1)


def build_model(config: ModelConfig, *, init: str = "random") -> ReidNet:
    """Build a ReidNet. `init`: "random", "imagenet" (torchvision weights, needs network) or a path
    to a torchvision ResNet state dict (or a seed-style backbone state dict)."""
    model = ReidNet(config)
    if init == "random":
        return model
    if init == "imagenet" and config.arch in OSNET_ARCHS:
        raise CheckpointError(f"--init imagenet: torchvision has no ImageNet weights for {config.arch}; use --init "
                              "random, or --init PATH to an OSNet backbone state dict saved from a reid-export model")
    if init == "imagenet":
        state = _imagenet_state_dict(config.arch)
        load_backbone_weights(model, state, source=f"torchvision {config.arch} ImageNet weights")
        return model
    from pathlib import Path

    path = Path(init)
    if not path.is_file():
        raise CheckpointError(
            f"--init {init!r} is neither 'random', 'imagenet' nor an existing file; "
            "pass a torchvision ResNet state dict (.pth) or one of the two keywords"
        )
    state = torch_load(path)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    load_backbone_weights(model, state, source=str(path))
    return model


def load_backbone_weights(model: ReidNet, state: dict, *, source: str) -> None:
    """Load backbone weights given as a seed `nn.Sequential` state dict (`0.weight`, `4.0.conv1.weight`)
    or a torchvision ResNet state dict (`conv1.weight`, `layer1.0.conv1.weight`, `fc.*` ignored).
    A `module.` prefix (DataParallel) is stripped."""
    state = normalise_backbone_keys(state, source=source)
    found = infer_arch(state, source=source)
    if found != model.config.arch:
        raise CheckpointError(
            f"{source}: weights are for {found} but the model is {model.config.arch}; "
            f"pass --arch {found} (or weights for {model.config.arch})"
        )
    stem = state.get("0.weight")
    if stem is not None and found not in OSNET_ARCHS and stem.shape[0] != model.config.base_channels:
        raise CheckpointError(f"{source}: the weights are a {found} with {stem.shape[0]} stem channels, the model has "
                              f"{model.config.base_channels}; set base_channels = {stem.shape[0]} "
                              f"(--set base_channels={stem.shape[0]})")
    own = model.backbone.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise CheckpointError(f"{source}: backbone weights lack {len(missing)} tensors, e.g. {missing[:3]}")
    for key, tensor in state.items():
        if key in own and own[key].shape != tensor.shape:
            raise CheckpointError(
                f"{source}: tensor {key} has shape {tuple(tensor.shape)}, the model expects {tuple(own[key].shape)}"
            )
    model.backbone.load_state_dict({k: v for k, v in state.items() if k in own}, strict=True)


def normalise_backbone_keys(state: dict, *, source: str) -> dict:
    """Map any accepted backbone key style to the `nn.Sequential` indices used by `ReidNet.backbone`."""
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{source}: expected a state dict (a dict of tensors), found {type(state).__name__}")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    if any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    if osnet_arch_of(state) is not None:  # an OSNet backbone: its own module names
        return state
    if "conv1.weight" in state:  # torchvision naming
        index = {name: str(i) for i, name in enumerate(_TV_NAMES)}
        out = {}
        for k, v in state.items():
            head, _, rest = k.partition(".")
            if head in index:
                out[f"{index[head]}.{rest}"] = v
        return out
    if "0.weight" in state:
        return {k: v for k, v in state.items() if k.split(".")[0].isdigit() and int(k.split(".")[0]) < 8}
    raise CheckpointError(
        f"{source}: not a ResNet backbone state dict; expected keys like '0.weight' (seed backbone) or "
        f"'conv1.weight' (torchvision), found e.g. {list(state)[:5]}"
    )


def infer_arch(state: dict, *, source: str) -> str:
    """Which ResNet a backbone state dict (Sequential indices) belongs to, from its block counts, or which
    OSNet (from its own keys and stem width)."""
    osnet = osnet_arch_of(state)
    if osnet is not None:
        return osnet
    blocks = []
    for stage in range(4, 8):
        ids = {int(k.split(".")[1]) for k in state if k.startswith(f"{stage}.") and k.split(".")[1].isdigit()}
        blocks.append(len(ids))
    bottleneck = any(k.endswith("conv3.weight") for k in state)
    for arch, (arch_blocks, arch_bottleneck, _) in ARCHS.items():
        if tuple(blocks) == arch_blocks and bottleneck == arch_bottleneck:
            return arch
    raise CheckpointError(
        f"{source}: backbone with blocks {blocks} ({'bottleneck' if bottleneck else 'basic'}) matches no "
        f"supported arch ({', '.join(ARCHS)})"
    )


def _torchvision_backbone(config: ModelConfig) -> nn.Sequential:
    import torchvision

    resnet = getattr(torchvision.models, config.arch)(weights=None, zero_init_residual=config.zero_init_residual)
    if config.base_channels != 64:
        _set_base_channels(resnet, config)
    if config.last_stride == 1:
        block = resnet.layer4[0]
        strided = block.conv2 if ARCHS[config.arch][1] else block.conv1
        strided.stride = (1, 1)
        block.downsample[0].stride = (1, 1)
    if config.ibn:  # IBN-a: not in layer4, whose features stay discriminative (Pan et al., 2018)
        for block in (*resnet.layer1, *resnet.layer2, *resnet.layer3):
            block.bn1 = InstanceBatchNorm(block.bn1.num_features)
    if config.stem_pool == "ceil":
        resnet.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)
    return nn.Sequential(*(getattr(resnet, name) for name in _TV_NAMES))


def _set_base_channels(resnet, config: ModelConfig) -> None:
    """Rebuild a torchvision ResNet's stem and stages at `config.base_channels` (doubling per stage), with the
    same module names (so the state-dict keys stay torchvision's) and torchvision's initialisation."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    blocks, bottleneck, _ = ARCHS[config.arch]
    block, width = (Bottleneck if bottleneck else BasicBlock), config.base_channels
    resnet.inplanes = width
    resnet.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    resnet.bn1 = nn.BatchNorm2d(width)
    for stage, count in enumerate(blocks):
        setattr(resnet, f"layer{stage + 1}", resnet._make_layer(block, width * 2 ** stage, count,
                                                                  stride=1 if stage == 0 else 2))
    for m in resnet.modules():  # torchvision's ResNet initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if config.zero_init_residual:  # every block starts as identity
        for m in resnet.modules():
            last = getattr(m, "bn3" if bottleneck else "bn2", None) if isinstance(m, block) else None
            if last is not None:
                nn.init.zeros_(last.weight)


def _fc_layer(in_features: int, out_features: int) -> nn.Sequential:
    """torchreid's `fc` (same keys: fc.0 Linear, fc.1 BN1d): its eval embedding where a model has one."""
    return nn.Sequential(nn.Linear(in_features, out_features), nn.BatchNorm1d(out_features), nn.ReLU(inplace=True))


def _imagenet_state_dict(arch: str) -> dict:
    import torchvision

    weights = torchvision.models.get_model_weights(arch).DEFAULT
    try:
        return weights.get_state_dict(progress=True)
    except Exception as e:  # network errors come in many types
        raise CheckpointError(
            f"could not download ImageNet weights for {arch} ({e}); this needs network access. "
            "Without network, pass --init PATH to a torchvision ResNet .pth you have, or --init random"
        ) from e


def torch_load(path) -> object:
    """`torch.load` with `weights_only=True` (no pickled code runs) and a clear error for a bad file."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e):  # not a refused object: a corrupt or foreign file
            raise CheckpointError(f"{path}: cannot be read as a PyTorch file (not a torch.save archive). Is it "
                                  "complete (not a partial download) and a .pth/.pt written by torch.save?") from None
        # weights_only refused a pickled object; torch's advice (weights_only=False) would be unsafe
        found = str(e).split("Unsupported global:", 1)[-1].split(" was not")[0].strip(" :") if "global" in str(e) else ""
        raise CheckpointError(
            f"{path}: not a plain tensor checkpoint: it holds pickled Python objects{f' ({found})' if found else ''}, "
            "and was not loaded, for safety (unpickling can run code). Load it in the code that wrote it and save "
            "`model.state_dict()` with torch.save, or train with `reid-export train`"
        ) from None
    except Exception as e:
        raise CheckpointError(
            f"{path}: cannot be read as a PyTorch file ({type(e).__name__}: {e}). "
            "Is it complete (not a partial download) and a .pth/.pt written by torch.save?"
        ) from e
