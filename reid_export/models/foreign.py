"""Weights trained by other projects (torchreid, fast-reid), recognised by content and converted exactly.

    model, summary = import_foreign(torch_load(path), IMPORTERS, source=str(path))   # None: not foreign

Every importer returns the ReidNet it built and an `ImportSummary`: what was found and where each value
that changes the result came from ("config", "tensors", "arch", "flag" or "default"). The summary is printed
as one line and written into the exported artefact's metadata, so an import is never silent; a value taken
by default (no evidence in the file or a config) is also a warning that names the flag to set it.

`import_foreign` unwraps what the projects save around a state dict (torchreid's `{'state_dict': ...,
'epoch': ...}`, fast-reid's `{'model': ...}`, DataParallel's `module.` prefix) and asks each `Importer` in
turn whether the tensors look like its layout. The importers themselves live beside this module
(`models.torchreid`, `models.fastreid`); the caller passes the list, so they may import `ImportSummary`
from here without an import circle.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

import torch

from .net import ReidNet

__all__ = ["ImportSummary", "Importer", "ImportDefaultWarning", "import_foreign", "unwrap_state_dict",
           "nearest_layouts"]

# a few keys of each layout a weights file may have, to name the nearest ones when a file matches none
LAYOUTS: dict[str, tuple[str, ...]] = {
    "torchreid OSNet": ("conv1.conv.weight", "conv1.bn.weight", "conv2.0.conv1.conv.weight",
                        "conv2.0.conv2a.conv1.weight", "conv2.0.gate.fc1.weight", "conv5.conv.weight",
                        "fc.0.weight", "classifier.weight"),
    "torchreid ResNet": ("conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer4.0.conv1.weight",
                         "classifier.weight"),
    "fast-reid ResNet ({'model': ...})": ("backbone.conv1.weight", "backbone.bn1.weight",
                                          "backbone.layer1.0.conv1.weight", "heads.bottleneck.0.weight"),
    "torchvision ResNet": ("conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer4.0.conv1.weight",
                           "fc.weight"),
    "seed backbone (nn.Sequential)": ("0.weight", "1.weight", "1.running_mean", "4.0.conv1.weight",
                                      "7.0.conv1.weight"),
    "reid-export OSNet backbone": ("conv1.conv.weight", "conv1.norm.weight", "conv2.0.reduce.conv.weight",
                                   "conv2.0.streams.0.0.pointwise.weight", "conv2.0.gate.fc1.weight"),
}


class ImportDefaultWarning(UserWarning):
    """A value that changes the result (input size, mean/std, ...) was taken by default: nothing in the
    file or a config says it. The message names the flag that sets it."""


@dataclass(frozen=True)
class ImportSummary:
    source: str  # the project that trained it: "torchreid", "fast-reid", ...
    arch: str  # the foreign architecture name, e.g. "osnet_x0_25", "resnet50_ibn_a"
    height: int  # input size the model expects
    width: int
    mean: tuple[float, float, float]  # in 0-1 units, RGB
    std: tuple[float, float, float]
    neck: str  # "none" | "bnneck"
    pooling: str  # "avg" | "gem" | ...
    last_stride: int | None  # None where the architecture has no last stride (OSNet)
    embedding_dim: int
    embedding: str  # which feature is exported: "pooled", "neck", "fc", ...
    # field name -> "config" | "tensors" | "arch" (fixed by the architecture the tensors show) | "flag" | "default"
    origin: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        """The one summary line the importer prints."""
        def tag(name: str) -> str:
            return f" [{self.origin[name]}]" if name in self.origin else ""

        return (f"imported {self.source} {self.arch}{tag('arch')}: input {self.height}x{self.width}{tag('input')}, "
                f"mean {list(self.mean)} std {list(self.std)}{tag('mean_std')}, neck {self.neck}{tag('neck')}, "
                f"pooling {self.pooling}{tag('pooling')}, last stride {self.last_stride}{tag('last_stride')}, "
                f"embedding {self.embedding} {self.embedding_dim}-D{tag('embedding')}")

    def to_dict(self) -> dict:
        return asdict(self)


class Importer(NamedTuple):
    name: str  # the project, as the summary names it
    looks_like: Callable[[dict], bool]  # state dict (unwrapped) -> whether it is this project's layout
    convert: Callable[..., tuple[ReidNet, ImportSummary]]  # (state, *, source, config) -> model, summary


def import_foreign(obj: object, importers: tuple[Importer, ...], *, source: str, config: dict | None = None,
                   input_size: tuple[int | None, int | None] | None = None,
                   mean: tuple[float, float, float] | None = None, std: tuple[float, float, float] | None = None,
                   log: Callable[[str], None] | None = print) -> tuple[ReidNet, ImportSummary] | None:
    """The model and summary of foreign weights, or None when no importer recognises `obj`'s tensors.

    `config` is the foreign project's parsed config file (fast-reid's YAML), `input_size` (height, width;
    either may be None), `mean` and `std` (0-1 units) are the user's flags: they win over the file and the
    defaults, and the summary says "flag". A value still at its default is an `ImportDefaultWarning`. The
    summary line goes to `log` and into `model.import_summary` (the exported metadata)."""
    state = unwrap_state_dict(obj)
    if state is None:
        return None
    importer = next((i for i in importers if i.looks_like(state)), None)
    if importer is None:
        return None
    model, summary = importer.convert(state, source=source, config=config)
    summary = _with_flags(summary, input_size, mean, std)
    model.config.preprocess = replace(model.config.preprocess, height=summary.height, width=summary.width,
                                      mean=tuple(summary.mean), std=tuple(summary.std))
    _warn_defaults(summary, source)
    model.import_summary = summary.to_dict()
    if log is not None:
        log(summary.line())
    return model, summary


def unwrap_state_dict(obj: object) -> dict[str, torch.Tensor] | None:
    """The tensors of a weights file, out of the wrappers foreign projects save: torchreid's
    `{'state_dict': ...}`, fast-reid's `{'model': ...}`, a `module.` prefix. None when `obj` holds no tensors."""
    if not isinstance(obj, dict):
        return None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        return None
    return {k.removeprefix("module."): v for k, v in tensors.items()}


def nearest_layouts(obj: object, *, source: str, top: int = 2) -> str:
    """The error for a file that matches no supported layout: the nearest layouts (most of their keys present)
    and, for each, the first of its keys the file lacks, then the file's own first keys."""
    state = unwrap_state_dict(obj)
    if state is None:
        found = f"a {type(obj).__name__}" + (f" with keys {list(obj)[:5]}" if isinstance(obj, dict) else "")
        return (f"{source}: holds no tensors ({found}); expected a state dict or a checkpoint of a supported "
                f"layout: {', '.join(LAYOUTS)}")
    ranked = sorted(LAYOUTS.items(), key=lambda item: -sum(k in state for k in item[1]) / len(item[1]))
    nearest = "; ".join(f"{name} ({sum(k in state for k in keys)}/{len(keys)} of its keys, lacks "
                        f"{[k for k in keys if k not in state][:3]})" for name, keys in ranked[:top])
    return (f"{source}: matches no supported layout. Nearest: {nearest}. The file's first keys: {list(state)[:5]}. "
            f"Supported: {', '.join(LAYOUTS)}; see docs/models.md")


# -- private helpers -------------------------------------------------------------------


def _with_flags(summary: ImportSummary, input_size, mean, std) -> ImportSummary:
    height, width = input_size if input_size is not None else (None, None)
    changes, origin = {}, dict(summary.origin)
    if height is not None or width is not None:
        changes |= {"height": height or summary.height, "width": width or summary.width}
        origin["input"] = "flag" if height is not None and width is not None else f"flag+{origin.get('input', '?')}"
    if mean is not None or std is not None:
        changes |= {"mean": tuple(mean or summary.mean), "std": tuple(std or summary.std)}
        origin["mean_std"] = "flag" if mean is not None and std is not None else f"flag+{origin.get('mean_std', '?')}"
    return replace(summary, **changes, origin=origin)


def _warn_defaults(summary: ImportSummary, source: str) -> None:
    flags = {"input": ("input size", f"{summary.height}x{summary.width}", "--height/--width"),
             "mean_std": ("mean/std", f"{list(summary.mean)} / {list(summary.std)}", "--mean/--std")}
    for name, (what, value, flag) in flags.items():
        if summary.origin.get(name, "").endswith("default"):
            warnings.warn(f"{source}: {summary.source} {summary.arch}: {what} {value} is {summary.source}'s training "
                          f"default: the file does not record it. If the model was trained otherwise, set it with "
                          f"{flag}", ImportDefaultWarning, stacklevel=3)
