"""fast-reid checkpoints (JDAI-CV/fast-reid: the BoT "bagtricks" and SBS recipes) converted onto ReidNet exactly.

    config = read_fastreid_config("sbs_R50-ibn.yml")          # `_BASE_` files resolved, merged
    if looks_like_fastreid(state):                            # state = checkpoint["model"], `module.` stripped
        model, summary = convert_fastreid(state, source=path, config=config)

What fast-reid's `Baseline` computes in eval mode (read from its source, versions 1.0 to 1.4):

    x = (rgb_0_255 - MODEL.PIXEL_MEAN) / MODEL.PIXEL_STD     # in 0-255 units; the image resized (PIL bicubic)
                                                             #   to INPUT.SIZE_TEST
    backbone  ResNet 18/34/50/101 (MODEL.BACKBONE.DEPTH), torchvision's blocks, but the stem's 3x3/2 max pool
              has no padding and ceil mode; layer4's stride is MODEL.BACKBONE.LAST_STRIDE; WITH_IBN makes
              bn1 of every block in layers 1-3 an IBN-a norm (`bn1.IN` + `bn1.BN`)
    heads     pool_layer (MODEL.HEADS.POOL_LAYER), then `bottleneck`: a 1x1 conv to EMBEDDING_DIM if > 0,
              and the BNNeck if WITH_BNNECK
    output    the bottleneck's output. MODEL.HEADS.NECK_FEAT only picks the feature of the training losses;
              the evaluated (and so exported) embedding is always the one after the bottleneck

Keys -> ReidNet: `backbone.conv1|bn1|layer1..4.*` -> `backbone.0..7.*` (`bn1.IN|BN` -> `bn1.instance|batch`),
`heads.pool_layer.p` -> `pool.p`, the bottleneck's conv -> `reduce`, its BN -> `neck`; the ID classifier
(`heads.weight`, `heads.classifier.*`, `heads.cls_layer.*`) is dropped; `pixel_mean` / `pixel_std`
(saved by fast-reid 1.0 to 1.3) give the normalisation.

Each value that changes the result comes from the config (`--config`; fast-reid's own defaults for what the
file leaves out, as fast-reid reads it), from the tensors, from a flag, or from a default announced by a
warning that names the option to set. A block ReidNet cannot compute (non-local, SE, another backbone or
head) is refused by name, with what is supported.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..contract import Preprocess
from ..errors import CheckpointError
from .foreign import ImportDefaultWarning, ImportSummary
from .net import ModelConfig, ReidNet, infer_arch, normalise_backbone_keys

__all__ = ["SUPPORTED", "looks_like_fastreid", "read_fastreid_config", "convert_fastreid"]

SUPPORTED = ("fast-reid Baseline (BoT / SBS / AGW recipes) with build_resnet_backbone (DEPTH 18x, 34x, 50x, 101x; "
             "WITH_IBN true or false; any LAST_STRIDE) and EmbeddingHead (POOL_LAYER one of "
             "{pools}; optional EMBEDDING_DIM conv; optional BNNeck); WITH_NL and WITH_SE must be false")
# MODEL.HEADS.POOL_LAYER -> (ReidNet pooling, GeM exponent fast-reid fixes, or None)
_POOLS = {"GlobalAvgPool": ("avg", None), "FastGlobalAvgPool": ("avg", None), "GlobalMaxPool": ("max", None),
          "AdaptiveAvgMaxPool": ("avgmax", None), "GeneralizedMeanPooling": ("gem", 3.0),
          "GeneralizedMeanPoolingP": ("gem", None)}
SUPPORTED = SUPPORTED.format(pools=", ".join(_POOLS))
_DEPTHS = {"18x": "resnet18", "34x": "resnet34", "50x": "resnet50", "101x": "resnet101"}
# fast-reid's defaults (fastreid/config/defaults.py) for the keys read here: a config file that leaves a key
# out gets these from fast-reid itself
_DEFAULTS = {
    "MODEL.META_ARCHITECTURE": "Baseline", "MODEL.BACKBONE.NAME": "build_resnet_backbone",
    "MODEL.BACKBONE.DEPTH": "50x", "MODEL.BACKBONE.LAST_STRIDE": 1, "MODEL.BACKBONE.WITH_IBN": False,
    "MODEL.BACKBONE.WITH_SE": False, "MODEL.BACKBONE.WITH_NL": False, "MODEL.HEADS.NAME": "EmbeddingHead",
    "MODEL.HEADS.POOL_LAYER": "GlobalAvgPool", "MODEL.HEADS.WITH_BNNECK": False, "MODEL.HEADS.EMBEDDING_DIM": 0,
    "MODEL.HEADS.NECK_FEAT": "before", "INPUT.SIZE_TEST": [256, 128],
    "MODEL.PIXEL_MEAN": [0.485 * 255, 0.456 * 255, 0.406 * 255],
    "MODEL.PIXEL_STD": [0.229 * 255, 0.224 * 255, 0.225 * 255],
}
_REFUSED_BLOCKS = {"NL_": "non-local blocks (MODEL.BACKBONE.WITH_NL)", ".se.": "squeeze-excitation blocks "
                   "(MODEL.BACKBONE.WITH_SE)"}
_CLASSIFIER = ("heads.weight", "heads.classifier.", "heads.cls_layer.")
_RESIZE = "pil-bicubic-antialias"  # fast-reid's test transform: torchvision Resize(interpolation=3) on PIL images


def looks_like_fastreid(state: dict) -> bool:
    """Whether a (unwrapped) state dict is laid out as fast-reid's meta-architectures save it: a `backbone.`
    and a `heads.` part."""
    keys = [k for k in state if isinstance(k, str)]
    return any(k.startswith("backbone.") for k in keys) and any(k.startswith("heads.") for k in keys)


def read_fastreid_config(path: str | Path) -> dict:
    """A fast-reid YAML config as a nested dict, with `_BASE_` (a path relative to the file that names it)
    resolved as fast-reid does: the base is read first and the file's own values replace or extend it."""
    return _read_config(Path(path), chain=())


def convert_fastreid(state: dict, *, source: str, config: dict | None) -> tuple[ReidNet, ImportSummary]:
    """The eval-mode ReidNet that computes what fast-reid's `Baseline` computes for `state`, and the summary
    of what was found. `config` is `read_fastreid_config`'s dict or None. The last stride and the pooling,
    when no config or tensor says them, are an `ImportDefaultWarning` naming --config; the input size and
    mean/std defaults are warned about by `foreign.import_foreign`, after the --height/--width/--mean/--std flags."""
    _refuse_what_cannot_be_expressed(state, source, config)
    found = _read_tensors(state, source)
    values, origin = _resolve(found, config, source)
    height, width = values["input"]
    _warn_about_defaults(origin, source)
    mean = tuple(float(v) / 255.0 for v in values["mean"])
    std = tuple(float(v) / 255.0 for v in values["std"])
    preprocess = Preprocess(height=int(height), width=int(width), mean=mean, std=std, interpolation="bicubic",
                            resize_method=_RESIZE)
    model_config = ModelConfig(arch=found["arch"], neck="bnneck" if found["bnneck"] else "none",
                               last_stride=int(values["last_stride"]), pooling=values["pooling"], ibn=found["ibn"],
                               stem_pool="ceil", reduction=found["reduction"], preprocess=preprocess)
    tensors = dict(found["tensors"])
    if values["gem_p"] is not None:  # fast-reid's fixed-exponent GeM: no tensor, p from the pool layer's name
        tensors["pool.p"] = torch.tensor([values["gem_p"]])
    model = ReidNet(model_config)
    _load(model, tensors, source)
    summary = ImportSummary(
        source="fast-reid", arch=found["arch"] + ("_ibn_a" if found["ibn"] else ""), height=preprocess.height,
        width=preprocess.width, mean=preprocess.mean, std=preprocess.std, neck=model_config.neck,
        pooling=f"{values['pooling']} ({values['pooling_name']})", last_stride=model_config.last_stride, embedding_dim=model_config.embedding_dim,
        embedding="neck" if found["bnneck"] else ("reduction" if found["reduction"] else "pooled"), origin=origin)
    return model.eval(), summary


# -- the checkpoint's own evidence ---------------------------------------------------------------------------

def _refuse_what_cannot_be_expressed(state: dict, source: str, config: dict | None) -> None:
    """Refuse, by name, a block or a part ReidNet cannot compute, before any tensor is read."""
    keys = [k for k in state if isinstance(k, str)]
    for marker, block in _REFUSED_BLOCKS.items():
        hits = [k for k in keys if k.startswith("backbone.") and marker in k]
        if hits:
            raise CheckpointError(f"{source}: a fast-reid checkpoint with {block} (e.g. {hits[0]}): reid-export "
                                  f"cannot compute that block. Supported: {SUPPORTED}")
    for flag in ("WITH_NL", "WITH_SE"):
        if config is not None and _get(config, f"MODEL.BACKBONE.{flag}"):
            block = next(b for b in _REFUSED_BLOCKS.values() if flag in b)
            raise CheckpointError(f"{source}: its config sets MODEL.BACKBONE.{flag}: true, {block}, which "
                                  f"reid-export cannot compute. Supported: {SUPPORTED}")
    parts = sorted({k.split(".")[0] for k in keys} - {"backbone", "heads", "pixel_mean", "pixel_std"})
    if parts:
        raise CheckpointError(f"{source}: a fast-reid checkpoint with parts other than backbone and heads "
                              f"({', '.join(parts)}: another meta-architecture, e.g. MGN or a distiller); "
                              f"supported: {SUPPORTED}")
    backbone = sorted({k.split(".")[1] for k in keys if k.startswith("backbone.")}
                      - {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4"})
    if backbone or "backbone.conv1.weight" not in state:
        raise CheckpointError(f"{source}: a fast-reid backbone other than build_resnet_backbone (its modules: "
                              f"{', '.join(backbone) or 'no conv1'}); supported: {SUPPORTED}")
    heads = [k for k in keys if k.startswith("heads.") and not k.startswith(_CLASSIFIER)
             and not k.startswith(("heads.pool_layer.", "heads.bottleneck."))]
    if heads:
        raise CheckpointError(f"{source}: a fast-reid head other than EmbeddingHead (e.g. {heads[0]}); "
                              f"supported: {SUPPORTED}")


def _read_tensors(state: dict, source: str) -> dict:
    """What the tensors say: arch, IBN, GeM exponent, reduction, BNNeck, normalisation, and ReidNet's tensors."""
    backbone = {_ibn_key(k): v for k, v in state.items() if k.startswith("backbone.")}
    backbone = normalise_backbone_keys(backbone, source=source)
    tensors = {f"backbone.{k}": v for k, v in backbone.items()}
    if "heads.pool_layer.p" in state:
        tensors["pool.p"] = state["heads.pool_layer.p"].reshape(1)
    stages = sorted({int(k.split(".")[2]) for k in state if k.startswith("heads.bottleneck.")})
    reduction = 0
    bnneck = False
    for stage in stages:
        prefix = f"heads.bottleneck.{stage}."
        weight = state.get(prefix + "weight")
        if weight is not None and weight.dim() == 4:  # the EMBEDDING_DIM 1x1 conv (no bias)
            reduction = int(weight.shape[0])
            tensors["reduce.weight"] = weight.flatten(1)
        elif prefix + "running_mean" in state:  # the BNNeck
            bnneck = True
            tensors.update({"neck." + k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        else:
            raise CheckpointError(f"{source}: heads.bottleneck.{stage} is neither the EMBEDDING_DIM conv nor the "
                                  f"BNNeck (its keys: {[k for k in state if k.startswith(prefix)]}); "
                                  f"supported: {SUPPORTED}")
    normalisation = {name: state[name].flatten().tolist() for name in ("pixel_mean", "pixel_std") if name in state}
    return {"arch": infer_arch(backbone, source=source), "ibn": any(".bn1.IN." in k for k in state),
            "gem": "heads.pool_layer.p" in state, "reduction": reduction, "bnneck": bnneck,
            "normalisation": normalisation, "tensors": tensors}


def _resolve(found: dict, config: dict | None, source: str) -> tuple[dict, dict]:
    """Every value that changes the result, and where it came from; the config is checked against the tensors."""
    values: dict = {"gem_p": None}
    if config is None:
        values["last_stride"] = _DEFAULTS["MODEL.BACKBONE.LAST_STRIDE"]
        values["pooling"], values["pooling_name"] = ("gem", "GeneralizedMeanPoolingP") if found["gem"] else \
            ("avg", "GlobalAvgPool")
        values["input"] = _DEFAULTS["INPUT.SIZE_TEST"]
        values["mean"] = found["normalisation"].get("pixel_mean", _DEFAULTS["MODEL.PIXEL_MEAN"])
        values["std"] = found["normalisation"].get("pixel_std", _DEFAULTS["MODEL.PIXEL_STD"])
        from_tensors = len(found["normalisation"]) == 2
        origin = {"arch": "tensors", "neck": "tensors", "embedding": "tensors", "last_stride": "default",
                  "pooling": "tensors" if found["gem"] else "default", "input": "default",
                  "mean_std": "tensors" if from_tensors else "default"}
        return values, origin
    _check(config, found, source)
    pool = _setting(config, "MODEL.HEADS.POOL_LAYER")
    values["pooling"], values["gem_p"] = _POOLS[pool]
    values["pooling_name"] = pool
    values["last_stride"] = _setting(config, "MODEL.BACKBONE.LAST_STRIDE")
    size = _setting(config, "INPUT.SIZE_TEST")
    if len(size) != 2:  # one value: fast-reid resizes the shorter side to it and keeps the aspect ratio
        raise CheckpointError(f"{source}: its config sets INPUT.SIZE_TEST: {size}, a resize that keeps the aspect "
                              "ratio; an exported model takes one fixed size: set INPUT.SIZE_TEST: [height, width] "
                              "in the config, the size the model was evaluated at")
    values["input"] = tuple(size)
    values["mean"], values["std"] = _setting(config, "MODEL.PIXEL_MEAN"), _setting(config, "MODEL.PIXEL_STD")
    origin = dict.fromkeys(("arch", "neck", "embedding", "last_stride", "pooling", "input", "mean_std"), "config")
    return values, origin


def _check(config: dict, found: dict, source: str) -> None:
    """Refuse a config that describes another model than the tensors (or one reid-export cannot compute)."""
    expected = {"MODEL.META_ARCHITECTURE": ("Baseline",), "MODEL.BACKBONE.NAME": ("build_resnet_backbone",),
                "MODEL.HEADS.NAME": ("EmbeddingHead",), "MODEL.HEADS.POOL_LAYER": tuple(_POOLS),
                "MODEL.BACKBONE.LAST_STRIDE": (1, 2), "MODEL.HEADS.NECK_FEAT": ("before", "after")}
    for key, allowed in expected.items():
        if _setting(config, key) not in allowed:
            raise CheckpointError(f"{source}: its config sets {key}: {_setting(config, key)!r}; reid-export takes "
                                  f"{' | '.join(map(str, allowed))}. Supported: {SUPPORTED}")
    depth = _setting(config, "MODEL.BACKBONE.DEPTH")
    disagreements = [
        ("MODEL.BACKBONE.DEPTH", depth, f"{found['arch']} blocks", _DEPTHS.get(depth) == found["arch"]),
        ("MODEL.BACKBONE.WITH_IBN", _setting(config, "MODEL.BACKBONE.WITH_IBN"),
         "IBN-a norms (bn1.IN)" if found["ibn"] else "no IBN-a norm", bool(_setting(config, "MODEL.BACKBONE.WITH_IBN")) == found["ibn"]),
        ("MODEL.HEADS.WITH_BNNECK", _setting(config, "MODEL.HEADS.WITH_BNNECK"),
         "a BNNeck" if found["bnneck"] else "no BNNeck", bool(_setting(config, "MODEL.HEADS.WITH_BNNECK")) == found["bnneck"]),
        ("MODEL.HEADS.EMBEDDING_DIM", _setting(config, "MODEL.HEADS.EMBEDDING_DIM"),
         f"a {found['reduction']}-D embedding conv" if found["reduction"] else "no embedding conv",
         int(_setting(config, "MODEL.HEADS.EMBEDDING_DIM")) == found["reduction"]),
        ("MODEL.HEADS.POOL_LAYER", _setting(config, "MODEL.HEADS.POOL_LAYER"),
         "a learnable GeM exponent (heads.pool_layer.p)" if found["gem"] else "no pooling parameter",
         (_setting(config, "MODEL.HEADS.POOL_LAYER") == "GeneralizedMeanPoolingP") == found["gem"]),
    ]
    for key, said, holds, agree in disagreements:
        if not agree:
            raise CheckpointError(f"{source}: the config says {key}: {said!r} but the checkpoint holds {holds}; "
                                  "pass the config this checkpoint was trained with (the config.yaml fast-reid "
                                  "wrote beside it in OUTPUT_DIR)")


def _load(model: ReidNet, tensors: dict, source: str) -> None:
    """Load the converted tensors; every tensor of ReidNet must come from the checkpoint (BN step counters,
    which some norms do not save, excepted)."""
    own = model.state_dict()
    missing = sorted(k for k in set(own) - set(tensors) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(tensors) - set(own))
    reshaped = sorted(k for k in set(own) & set(tensors) if tuple(own[k].shape) != tuple(tensors[k].shape))
    if missing or unexpected or reshaped:
        raise CheckpointError(f"{source}: the fast-reid tensors do not fill a {model.config.arch} ReidNet: "
                              f"{len(missing)} missing {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, "
                              f"{len(reshaped)} of another shape {reshaped[:3]}; supported: {SUPPORTED}")
    model.load_state_dict({**own, **tensors}, strict=True)


def _warn_about_defaults(origin: dict, source: str) -> None:
    """One warning per structural value that changes the result and was taken without evidence, naming how
    to set it (the input size and mean/std are the dispatcher's, which knows the flags)."""
    told = {
        "last_stride": "last stride 1 (fast-reid's default and BoT/SBS's; the tensors cannot tell 1 from 2): pass "
                       "--config config.yaml (MODEL.BACKBONE.LAST_STRIDE)",
        "pooling": "average pooling (fast-reid's default GlobalAvgPool; without a GeM parameter the tensors cannot "
                   "tell average, max or fixed GeM apart): pass --config config.yaml (MODEL.HEADS.POOL_LAYER)",
    }
    for name, message in told.items():
        if origin.get(name) == "default":
            warnings.warn(f"{source}: no fast-reid config given, so {message}", ImportDefaultWarning, stacklevel=3)


# -- the config file ---------------------------------------------------------------------------------------

def _read_config(path: Path, chain: tuple[Path, ...]) -> dict:
    try:
        import yaml  # lazy: PyYAML is needed only to read fast-reid configs (the `interop` extra)
    except ImportError:
        raise CheckpointError(f"--config {path}: reading a fast-reid config needs PyYAML: "
                              "pip install 'reid-export[interop]' (or pyyaml)") from None
    path = path.resolve()
    if path in chain:
        raise CheckpointError(f"--config {chain[0]}: its _BASE_ chain comes back to {path}; fix the _BASE_ entries")
    if not path.is_file():
        named = f" (the _BASE_ of {chain[-1]})" if chain else ""
        raise CheckpointError(f"--config {path}{named}: no such file; pass the config.yaml fast-reid wrote beside "
                              "the checkpoint")
    try:
        own = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise CheckpointError(f"--config {path}: not a YAML file ({str(e).splitlines()[0]}); pass fast-reid's "
                              "config.yaml") from None
    if not isinstance(own, dict):
        raise CheckpointError(f"--config {path}: expected a YAML mapping (MODEL:, INPUT:, ...), found "
                              f"{type(own).__name__}; pass fast-reid's config.yaml")
    base = own.pop("_BASE_", None)
    if base is None:
        return own
    return _merged(_read_config(path.parent / str(base), (*chain, path)), own)


def _merged(base: dict, own: dict) -> dict:
    out = dict(base)
    for key, value in own.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _get(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _setting(config: dict, dotted: str):
    """A config value as fast-reid reads it: the file's, or fast-reid's default where the file has none."""
    value = _get(config, dotted)
    return _DEFAULTS[dotted] if value is None else value


def _ibn_key(key: str) -> str:
    return key.replace(".bn1.IN.", ".bn1.instance.").replace(".bn1.BN.", ".bn1.batch.")
