"""Checkpoints: a plain dict, written atomically, read back whatever its origin.

A reid-export checkpoint is
    {"format": "reid-export/1", "model": state_dict, "config": ModelConfig dict, "epoch": int,
     "optimizer": ..., "lr_scheduler": ..., "metrics": {...}, "recipe": {...}}

`load_model` also accepts the seed notebook's backbone file (`nn.Sequential` state dict,
keys `0.weight` ...), a torchvision ResNet state dict, and either with a `module.` prefix.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from .contract import Preprocess
from .errors import CheckpointError, ReidExportError
from .files import atomic_path, remove_stale_temps
from .models import ModelConfig, ReidNet, infer_arch, load_backbone_weights, normalise_backbone_keys, torch_load

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "load_model", "SEED_PREPROCESS"]

FORMAT = "reid-export/1"
# The seed notebook trained at 128x64 with ImageNet mean/std; its backbone outputs the pooled feature.
SEED_PREPROCESS = Preprocess(height=128, width=64, l2_normalized=True)


def save_checkpoint(path: str | Path, model: ReidNet, *, epoch: int, optimizer=None, lr_scheduler=None,
                    metrics: dict | None = None, recipe: dict | None = None, extra: dict | None = None) -> Path:
    """Write the checkpoint atomically: a temporary file in the same folder, fsync, then rename.
    A crash at any point leaves either the previous checkpoint or the new one, never half of one."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {
        "format": FORMAT,
        "model": model.state_dict(),
        "config": model.config.to_dict(),
        "epoch": epoch,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "lr_scheduler": lr_scheduler.state_dict() if lr_scheduler is not None else None,
        "metrics": dict(metrics or {}),
        "recipe": dict(recipe or {}),
        **(extra or {}),
    }
    path = Path(path)
    remove_stale_temps(path)  # leftovers of writers killed mid-write; a live writer's temp file is never touched
    with atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as e:  # torch's zip writer reports a full disk as "file write failed"
            raise ReidExportError(f"{path}: could not write the checkpoint ({str(e).splitlines()[0][:200]}); check "
                                  "the disk has space and the folder is writable, then run again") from None
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read a reid-export checkpoint dict (for resuming). Other formats are refused with the reason."""
    path = _existing(path)
    ckpt = torch_load(path)
    if not (isinstance(ckpt, dict) and ckpt.get("format") == FORMAT):
        raise CheckpointError(
            f"{path}: not a reid-export training checkpoint (no format={FORMAT!r} entry); "
            "--resume needs a checkpoint written by `reid-export train`"
        )
    return ckpt


def load_model(path: str | Path, *, arch: str | None = None, preprocess: Preprocess | None = None,
               input_size: tuple[int | None, int | None] | None = None,
               device: str | torch.device = "cpu") -> ReidNet:
    """Load any accepted weights file as an eval-mode ReidNet on `device`.

    For a reid-export checkpoint the config comes from the file. For a bare backbone (seed notebook or
    torchvision) the arch is inferred from the tensors, and the input contract is `preprocess`
    or, by default, the seed notebook's 128x64 ImageNet normalisation. `input_size` (height, width;
    either may be None to keep it) changes only the input size of whichever contract applies."""
    path = _existing(path)
    obj = torch_load(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        try:
            config = ModelConfig.from_dict(obj["config"])
        except (ReidExportError, TypeError, AttributeError) as e:  # unknown arch, bad contract, not a dict
            raise CheckpointError(f"{path}: its model config cannot be used ({e})") from None
        config.preprocess = _sized(preprocess or config.preprocess, input_size)
        model = ReidNet(config)
        try:
            model.load_state_dict(obj["model"], strict=True)
        except RuntimeError:
            raise CheckpointError(_mismatch(path, config.arch, model.state_dict(), obj["model"])) from None
    else:
        state = normalise_backbone_keys(obj, source=str(path))
        found = infer_arch(state, source=str(path))
        if arch is not None and arch != found:
            raise CheckpointError(f"{path}: --arch {arch} was given but the file holds a {found} backbone")
        model = ReidNet(ModelConfig(arch=found, preprocess=_sized(preprocess or SEED_PREPROCESS, input_size)))
        load_backbone_weights(model, state, source=str(path))
    return model.to(device).eval()


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


def _sized(contract: Preprocess, input_size) -> Preprocess:
    if input_size is None:
        return contract
    height, width = input_size
    return replace(contract, height=contract.height if height is None else height,
                   width=contract.width if width is None else width)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; pass a checkpoint from `reid-export train` or a backbone .pth")
    return path
