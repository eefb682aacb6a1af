"""`--model-factory package.module:function`: any PyTorch module through the same export, parity, precision
and bench path as the project's own models.

    factory = ModelFactory.parse("mypkg.nets:build_net", weights="net.pth", height=256, width=128,
                                 mean="0.485,0.456,0.406", std="0.229,0.224,0.225", color="rgb")
    result = export_factory(factory, "engines/net.onnx", ExportOptions(precision="fp16"))   # verified.factory

`function()` returns an `nn.Module` mapping a float32 (N, 3, H, W) batch, preprocessed by the contract, to
embeddings (N, D). `weights` (optional) is a state dict, read with `torch.load(weights_only=True)` (never
unpickled code) and loaded strictly. The contract comes from the flags, else from a `preprocess` attribute
on the module (a dict with height, width, mean, std, color and optionally input_scale, resize_method,
aspect; or a `contract.Preprocess`, all of whose fields count as given). The input size, mean/std and
colour order are never assumed: without them the factory is refused, naming the flags.

`FactoryNet` wraps the module behind ReidNet's interface (`config`, `embed_with_attributes`,
`attribute_head`), so `verified.run.export_loaded_model`, `verified.parity.verify_export` and the torch runtime
take it as they take a checkpoint. A bench row: `--model factory=package.module:function[@weights]` (the
contract from the module's attribute), parsed by `verified.factory.parse_model_or_factory`; a `ModelFactory` is
a builder the torch runtime calls on activate.
"""

from __future__ import annotations

import importlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..artefacts.tensorrt_sidecar import file_sha256
from ..contract import Preprocess
from ..errors import ReidExportError
from .adopt import REQUIRED, contract_evidence, parse_channels, resolve_contract

__all__ = ["FACTORY_PREFIX", "FactoryConfig", "FactoryNet", "ModelFactory"]

FACTORY_PREFIX = "factory="  # a bench model spec: factory=package.module:function[@weights]
_FLAGS = REQUIRED | {"input_scale": "--input-scale", "resize_method": "--resize-method"}


@dataclass(frozen=True)
class FactoryConfig:
    """What ReidNet's `config` holds, for a user's module: read by export (metadata) and the runtimes."""
    arch: str  # "factory:package.module:function": the bench pairs an exported file with its torch row by it
    preprocess: Preprocess  # the contract, from the flags or the module's `preprocess` attribute
    embedding_dim: int  # D of the module's (N, D) output
    embedding: str = "output"  # the module's one output (no neck/pooled choice)
    source: dict = field(default_factory=dict)  # factory, weights file and sha256, where each contract value came from

    def __post_init__(self) -> None:
        if self.embedding != "output":
            raise ReidExportError(f"{self.arch}: a --model-factory module outputs one embedding; --embedding "
                                  f"{self.embedding} applies to reid-export checkpoints only (use auto)")

    def to_dict(self) -> dict:
        return {"arch": self.arch, "embedding_dim": self.embedding_dim, "embedding": self.embedding, **self.source,
                "preprocess": self.preprocess.to_dict()}


class FactoryNet(nn.Module):
    """A user's module with ReidNet's interface: `embed_with_attributes(x)` -> (embedding, None)."""

    def __init__(self, module: nn.Module, config: FactoryConfig):
        super().__init__()
        self.module = module
        self.config = config
        self.attribute_head = None  # no attribute outputs

    def embed_with_attributes(self, x: torch.Tensor):
        return self.module(x), None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


@dataclass(frozen=True)
class ModelFactory:
    """`package.module:function` (+ weights, + contract flags): a builder of a `FactoryNet`, called on use."""
    target: str  # package.module:function
    weights: Path | None = None  # a state dict for the module, loaded with weights_only=True
    flags: tuple[tuple[str, object], ...] = ()  # contract values given on the command line

    @classmethod
    def parse(cls, text: str, *, weights: str | Path | None = None, height: int | None = None,
              width: int | None = None, mean=None, std=None, color: str | None = None, input_scale=None,
              resize_method: str | None = None) -> "ModelFactory":
        """`package.module:function[@weights]`, with `weights` and the contract flags (None where not given)."""
        target, at, inline = text.partition("@")
        module, colon, function = target.partition(":")
        if not colon or not module.strip() or not function.strip() or not function.isidentifier():
            raise ReidExportError(f"--model-factory {text!r}: expected package.module:function (a function returning "
                                  "an nn.Module), e.g. mypkg.nets:build_net")
        if at and weights is not None:
            raise ReidExportError(f"--model-factory {text!r} names weights after '@' and --weights {weights} gives "
                                  "others; give them once")
        weights = Path(inline) if at else None if weights is None else Path(weights)
        if weights is not None and not weights.is_file():
            raise ReidExportError(f"--weights {weights}: no such file (a state dict saved with "
                                  "torch.save(model.state_dict(), PATH))")
        given = {"height": height, "width": width, "color": color, "input_scale": input_scale,
                 "resize_method": resize_method, "mean": None if mean is None else parse_channels(mean, "--mean"),
                 "std": None if std is None else parse_channels(std, "--std")}
        return cls(target=target, weights=weights, flags=tuple((k, v) for k, v in given.items() if v is not None))

    @property
    def name(self) -> str:
        return self.target + (f"@{self.weights.name}" if self.weights else "")

    def __str__(self) -> str:
        return FACTORY_PREFIX + self.target + (f"@{self.weights}" if self.weights else "")

    def __call__(self) -> FactoryNet:
        return self.load()

    def load(self) -> FactoryNet:
        """Import and call the function, load the weights, resolve the contract, check the output is (N, D)."""
        module = _build(self.target)
        source = {"factory": self.target}
        if self.weights is not None:
            _load_weights(module, self.weights)
            source["weights"] = {"file": self.weights.name, "sha256": file_sha256(self.weights)}
        module.eval()
        contract, sources = resolve_contract(dict(self.flags), _attribute_evidence(module, self.target),
                                             flag_names=_FLAGS,
                                             hint=f"--model-factory {self.target}: the module has no `preprocess` "
                                                  "attribute that says its contract")
        with torch.no_grad():
            out = module(torch.zeros(2, *contract.input_shape))
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
            found = type(out).__name__ if not isinstance(out, torch.Tensor) else f"a tensor of shape {list(out.shape)}"
            raise ReidExportError(f"--model-factory {self.target}: the module returned {found} for a (2, 3, "
                                  f"{contract.height}, {contract.width}) batch; it must return the embeddings alone, "
                                  "a tensor (N, D)")
        config = FactoryConfig(arch=f"factory:{self.target}", preprocess=contract, embedding_dim=int(out.shape[1]),
                               source=source | {"contract_sources": sources})
        return FactoryNet(module, config).eval()


# -- private helpers --------------------------------------------------------------------------------------


def _build(target: str) -> nn.Module:
    module_name, _, function_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ReidExportError(f"--model-factory {target}: cannot import {module_name!r} ({e}); install its package "
                              "or put its folder on PYTHONPATH") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        found = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
        raise ReidExportError(f"--model-factory {target}: {module_name} has no function {function_name!r}; its "
                              f"callables: {', '.join(found[:12]) or 'none'}")
    model = function()
    if not isinstance(model, nn.Module):
        raise ReidExportError(f"--model-factory {target}: {function_name}() returned {type(model).__name__}, not a "
                              "torch.nn.Module")
    return model


def _load_weights(module: nn.Module, path: Path) -> None:
    """A state dict (or one under 'state_dict' / 'model'), read without unpickling code, loaded strictly."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise ReidExportError(f"--weights {path}: not readable as tensors with weights_only=True "
                              f"({str(e).splitlines()[0][:200]}); save the state dict alone: "
                              "torch.save(model.state_dict(), PATH)") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ReidExportError(f"--weights {path}: holds a {type(state).__name__}, not a state dict")
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ReidExportError(f"--weights {path} does not fit the module: {len(result.missing_keys)} missing "
                              f"{result.missing_keys[:3]}, {len(result.unexpected_keys)} unexpected "
                              f"{result.unexpected_keys[:3]}; save it from the same architecture")


def _attribute_evidence(module: nn.Module, target: str) -> dict[str, tuple[object, str]]:
    """Contract values from the module's `preprocess` attribute (field -> (value, where from))."""
    given = getattr(module, "preprocess", None)
    where = f"{target}'s `preprocess` attribute"
    if given is None:
        return {}
    if isinstance(given, Preprocess):
        return contract_evidence(given, where)
    if not isinstance(given, dict):
        raise ReidExportError(f"{where} is a {type(given).__name__}; expected a dict (height, width, mean, std, color, "
                              "...) or a reid_export.contract.Preprocess")
    keys = ("height", "width", "mean", "std", "color", "input_scale", "resize_method", "aspect")
    values = {k: (given[k], where) for k in keys if given.get(k) not in (None, "")}
    for key in ("mean", "std"):
        if key in values:
            values[key] = (parse_channels(values[key][0], f"{where}[{key!r}]"), where)
    return values
