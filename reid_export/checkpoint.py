"""Checkpoints: a plain dict on disk, typed in memory (`Checkpoint`), written atomically, read back whatever its
origin.

A reid-export checkpoint is, on disk,
    {"format": "reid-export/1", "model": state_dict, "config": ModelConfig dict, "epoch": int,
     "optimizer": ..., "lr_scheduler": ..., "metrics": {...}, "recipe": {...},
     "train_state": {...} (reid-export train: what --resume needs), "validation": {...} (the held-out ids)}
and `Checkpoint.from_dict` / `to_dict` are the one reader and writer of that dict (`load_checkpoint`,
`save_checkpoint`); files written before a key existed load with its default.

`load_model` also accepts weights trained elsewhere, recognised by their tensors (`models.foreign`):
torchreid's and fast-reid's checkpoints (`IMPORTERS`), the seed notebook's backbone file (`nn.Sequential`
state dict, keys `0.weight` ...), a torchvision ResNet state dict, each bare, wrapped or with a `module.`
prefix. `init_model` builds the model `reid-export train --init` starts from.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch

from .contract import Preprocess
from .errors import CheckpointError, ReidExportError
from .files import atomic_path, remove_stale_temps
from .models import (ModelConfig, ReidNet, build_model, infer_arch, load_backbone_weights, normalise_backbone_keys,
                     torch_load)
from .models.fastreid import convert_fastreid, looks_like_fastreid, read_fastreid_config
from .models.foreign import ImportDefaultWarning, Importer, import_foreign, nearest_layouts, unwrap_state_dict
from .models.torchreid import convert_torchreid, looks_like_torchreid

__all__ = ["FORMAT", "IMPORTERS", "Checkpoint", "ResumeState", "save_checkpoint", "load_checkpoint", "load_model",
           "read_weights", "model_from_weights", "init_model", "SEED_PREPROCESS"]

FORMAT = "reid-export/1"
# The seed notebook trained at 128x64 with ImageNet mean/std; its backbone outputs the pooled feature.
SEED_PREPROCESS = Preprocess(height=128, width=64, l2_normalized=True)
# weights trained by other projects, asked in this order whether a file's tensors are theirs
IMPORTERS = (Importer("torchreid", looks_like_torchreid, convert_torchreid),
             Importer("fast-reid", looks_like_fastreid, convert_fastreid))


@dataclass
class ResumeState:
    """What `reid-export train --resume` needs beyond weights, optimizer and schedule to end where an
    uninterrupted run would."""

    rng: dict  # torch, numpy, python and CUDA generator states
    sampler_epoch: int  # the epoch the batch sampler draws next
    steps_per_epoch: int  # batches per epoch when it was written (the batch may have halved)
    history: list[dict] = field(default_factory=list)  # per-epoch metrics so far
    scaler: dict | None = None  # AMP GradScaler state
    criterion: dict = field(default_factory=dict)  # the loss's own state (center-loss centers)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, state: dict) -> ResumeState:
        return cls(**{f.name: state[f.name] for f in fields(cls) if f.name in state})


@dataclass
class Checkpoint:
    """A reid-export checkpoint in memory; `to_dict` is what the file holds (torch.save of plain dicts, so
    `weights_only` loading reads it)."""

    model: dict  # the ReidNet state dict
    config: dict  # ModelConfig.to_dict(): arch, neck, input contract, embedding, ...
    epoch: int = 0  # epochs trained
    optimizer: dict | None = None  # optimizer state dict
    lr_scheduler: dict | None = None  # scheduler state dict
    metrics: dict = field(default_factory=dict)  # the last epoch's metrics (loss, rank1, mAP, val_*_mAP, ...)
    recipe: dict = field(default_factory=dict)  # the TrainConfig as run (batch size after any halving)
    train_state: ResumeState | None = None  # reid-export train's resume state
    validation: dict | None = None  # held-out training ids: source, ids, num_query, num_gallery, choice
    extra: dict = field(default_factory=dict)  # keys this version does not know, written back as read
    format: str = FORMAT

    @property
    def validation_ids(self) -> list[int] | None:
        """The training ids held out for validation (the embedding choice, INT8 search); None when none."""
        return list((self.validation or {}).get("ids") or []) or None

    @property
    def embedding_choice(self) -> dict | None:
        """The `embedding = "auto"` choice: {"embedding", "neck", "pooled", "reason"}; None when not chosen."""
        return (self.validation or {}).get("choice")

    def to_dict(self) -> dict:
        out = {"format": self.format}
        for f in fields(self):
            if f.name not in ("format", "extra"):
                out[f.name] = getattr(self, f.name)
        if self.train_state is not None:
            out["train_state"] = self.train_state.to_dict()
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, obj: object, *, source: str = "the checkpoint") -> Checkpoint:
        """A checkpoint dict of any version so far; CheckpointError naming `source` for anything else."""
        if not cls.holds(obj):
            raise CheckpointError(f"{source}: not a reid-export training checkpoint (no format={FORMAT!r} entry); "
                                  "--resume needs a checkpoint written by `reid-export train`")
        missing = [key for key in ("model", "config") if not isinstance(obj.get(key), dict)]
        if missing:
            raise CheckpointError(f"{source}: a reid-export checkpoint without its {' and '.join(missing)} (expected "
                                  "a dict each); the file was edited or cut short: use one `reid-export train` wrote")
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {key: value for key, value in obj.items() if key in known and value is not None}
        if isinstance(values.get("train_state"), dict):
            values["train_state"] = ResumeState.from_dict(values["train_state"])
        return cls(**values, extra={key: value for key, value in obj.items() if key not in known})

    @staticmethod
    def holds(obj: object) -> bool:
        """Whether `obj` (a loaded file) is a reid-export checkpoint dict."""
        return isinstance(obj, dict) and obj.get("format") == FORMAT


def save_checkpoint(path: str | Path, model: ReidNet, *, epoch: int, optimizer=None, lr_scheduler=None,
                    metrics: dict | None = None, recipe: dict | None = None, train_state: ResumeState | None = None,
                    validation: dict | None = None) -> Path:
    """Write the checkpoint atomically: a temporary file in the same folder, fsync, then rename.
    A crash at any point leaves either the previous checkpoint or the new one, never half of one."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = Checkpoint(model=model.state_dict(), config=model.config.to_dict(), epoch=epoch,
                       optimizer=optimizer.state_dict() if optimizer is not None else None,
                       lr_scheduler=lr_scheduler.state_dict() if lr_scheduler is not None else None,
                       metrics=dict(metrics or {}), recipe=dict(recipe or {}), train_state=train_state,
                       validation=validation).to_dict()
    path = Path(path)
    remove_stale_temps(path)  # leftovers of writers killed mid-write; a live writer's temp file is never touched
    with atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as e:  # torch's zip writer reports a full disk as "file write failed"
            raise ReidExportError(f"{path}: could not write the checkpoint ({str(e).splitlines()[0][:200]}); check "
                                  "the disk has space and the folder is writable, then run again") from None
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a reid-export checkpoint (for resuming, or its records). Other formats are refused with the reason."""
    path = _existing(path)
    return Checkpoint.from_dict(torch_load(path), source=str(path))


def load_model(path: str | Path, **options) -> ReidNet:
    """Load any accepted weights file as an eval-mode ReidNet: `model_from_weights(read_weights(path), path, ...)`."""
    return model_from_weights(read_weights(path), path, **options)


def read_weights(path: str | Path) -> object:
    """The objects in a weights file (`torch.load` with `weights_only=True`: no pickled code runs); a missing
    file is refused naming what to pass. Read once, then given to `model_from_weights` (and
    `artefacts.info.describe_checkpoint`)."""
    return torch_load(_existing(path))


def model_from_weights(obj: object, path: str | Path, *, arch: str | None = None,
                       preprocess: Preprocess | None = None, input_size: tuple[int | None, int | None] | None = None,
                       mean: tuple[float, float, float] | None = None, std: tuple[float, float, float] | None = None,
                       config: dict | None = None, device: str | torch.device = "cpu",
                       log: Callable[[str], None] | None = print) -> ReidNet:
    """The eval-mode ReidNet on `device` for weights `read_weights(path)` returned.

    For a reid-export checkpoint the config comes from the file. Weights of another project (`IMPORTERS`)
    are converted by content; `config` is that project's parsed config file (fast-reid's YAML), and the
    one-line import summary goes to `log`. For a bare backbone (seed notebook or torchvision) the arch is
    inferred from the tensors, and the input contract is `preprocess` or, by default, the seed notebook's
    128x64 ImageNet normalisation. `input_size` (height, width; either may be None to keep it), `mean` and
    `std` (0-1 units) change only those fields of whichever contract applies."""
    path = Path(path)
    if Checkpoint.holds(obj):
        ckpt = Checkpoint.from_dict(obj, source=str(path))
        try:
            model_config = ModelConfig.from_dict(ckpt.config)
        except (ReidExportError, TypeError, AttributeError) as e:  # unknown arch, bad contract, not a dict
            raise CheckpointError(f"{path}: its model config cannot be used ({e})") from None
        model_config.preprocess = _sized(preprocess or model_config.preprocess, input_size, mean, std)
        model = ReidNet(model_config)
        try:
            model.load_state_dict(ckpt.model, strict=True)
        except RuntimeError:
            raise CheckpointError(_mismatch(path, model_config.arch, model.state_dict(), ckpt.model)) from None
        return model.to(device).eval()
    if config is None:
        config = _config_beside(path, obj, log)
    imported = import_foreign(obj, IMPORTERS, source=str(path), config=config, input_size=input_size, mean=mean,
                              std=std, log=log)
    if imported is not None:
        model = imported[0]
        if arch is not None and arch != model.config.arch:
            raise CheckpointError(f"{path}: --arch {arch} was given but the file holds a {imported[1].source} "
                                  f"{imported[1].arch} ({model.config.arch})")
        return model.to(device).eval()
    state = _backbone_state(obj, path)
    found = infer_arch(state, source=str(path))
    if arch is not None and arch != found:
        raise CheckpointError(f"{path}: --arch {arch} was given but the file holds a {found} backbone")
    model = ReidNet(ModelConfig(arch=found, preprocess=_sized(preprocess or SEED_PREPROCESS, input_size, mean, std)))
    load_backbone_weights(model, state, source=str(path))
    return model.to(device).eval()


def init_model(config: ModelConfig, init: str, *, log: Callable[[str], None] | None = print) -> ReidNet:
    """The model `reid-export train` starts from: `build_model(config, init=init)` ("random", "imagenet", a
    backbone .pth), or, for another project's weights (`IMPORTERS`), the converted model with this run's
    classifier (re-initialised for `config.num_classes`), neck, attribute heads and input contract. What the
    file fixes (arch, last stride, pooling, fc) must agree with `config`, or the error names the option."""
    path = Path(init)
    obj = torch_load(path) if init not in ("random", "imagenet") and path.is_file() else None
    with warnings.catch_warnings():  # the run trains at the recipe's contract, not the file's default one
        warnings.simplefilter("ignore", ImportDefaultWarning)
        foreign_config = _config_beside(path, obj, log) if obj is not None else None  # not the run's `config`
        imported = (import_foreign(obj, IMPORTERS, source=init, config=foreign_config, log=log) if obj is not None
                    else None)
    if imported is None:
        return build_model(config, init=init)
    converted = imported[0]
    if converted.config.arch != config.arch:
        raise CheckpointError(f"--init {init}: the file holds a {imported[1].source} {imported[1].arch} "
                              f"({converted.config.arch}) but the recipe trains {config.arch}; pass --arch "
                              f"{converted.config.arch}")
    if converted.config.last_stride != config.last_stride:
        raise CheckpointError(f"--init {init}: {imported[1].arch} has last stride {converted.config.last_stride} but "
                              f"the recipe sets {config.last_stride}; pass --set last_stride="
                              f"{converted.config.last_stride}")
    if converted.config.neck == "bnneck" and config.neck != "bnneck":
        raise CheckpointError(f"--init {init}: the file has a BNNeck that the recipe (neck = {config.neck!r}) would "
                              "drop; pass --set neck=bnneck")
    run = replace(converted.config, num_classes=config.num_classes, neck=config.neck, attributes=config.attributes,
                  preprocess=config.preprocess, embedding=config.embedding,
                  zero_init_residual=config.zero_init_residual)
    model = ReidNet(run)  # fresh classifier, attribute heads (and a BNNeck the file lacks)
    own = model.state_dict()
    model.load_state_dict({**own, **{k: v for k, v in converted.state_dict().items() if k in own}}, strict=True)
    model.import_summary = converted.import_summary
    return model


def _mismatch(path: Path, arch: str, own: dict, given: dict) -> str:
    """One line: the arch the tensors belong to vs the config's, and the first differing keys."""
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    reshaped = sorted(k for k in set(own) & set(given) if tuple(own[k].shape) != tuple(given[k].shape))
    backbone = {k.removeprefix("backbone."): v for k, v in given.items() if k.startswith("backbone.")}
    try:
        found = infer_arch(backbone, source=str(path)) if backbone else "unknown"
    except CheckpointError:
        found = "no supported arch"
    parts = [f"{len(missing)} missing {missing[:3]}", f"{len(unexpected)} unexpected {unexpected[:3]}"]
    if reshaped:
        parts.append(f"{len(reshaped)} of another shape {reshaped[:3]}")
    return (f"{path}: its weights are for {found} but its config says {arch}: " + ", ".join(parts)
            + "; the file was edited or mixed up: use the checkpoint `reid-export train` wrote")


def _sized(contract: Preprocess, input_size, mean=None, std=None) -> Preprocess:
    height, width = input_size if input_size is not None else (None, None)
    return replace(contract, height=contract.height if height is None else height,
                   width=contract.width if width is None else width,
                   mean=contract.mean if mean is None else tuple(mean), std=contract.std if std is None else tuple(std))


def _config_beside(path: Path, obj: object, log) -> dict | None:
    """fast-reid writes its run's `config.yaml` into the folder of its checkpoints: for a fast-reid file without
    --config, that file is read (and said), so bench, serve, index and train --init get the same values as
    `onnx --config`. None for other layouts or when there is no such file (the importer then infers and warns)."""
    beside = path.parent / "config.yaml"
    state = unwrap_state_dict(obj)
    if state is None or not looks_like_fastreid(state) or not beside.is_file():
        return None
    if log is not None:
        log(f"{path}: reading fast-reid's config beside it, {beside} (pass --config to use another)")
    return read_fastreid_config(beside)


def _backbone_state(obj: object, path: Path) -> dict:
    """A seed or torchvision backbone's tensors in `ReidNet.backbone`'s names; a file of no supported layout
    names the nearest ones."""
    try:
        return normalise_backbone_keys(unwrap_state_dict(obj) or obj, source=str(path))
    except CheckpointError:
        raise CheckpointError(nearest_layouts(obj, source=str(path))) from None


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; pass a checkpoint from `reid-export train` or a backbone .pth")
    return path
