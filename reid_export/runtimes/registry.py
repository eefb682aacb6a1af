"""The runtime registry: names -> backend classes, imported only when used; model specs from the CLI.

Names: `torch`, `torch-cuda`, `torch-cuda-fp16`, `onnxruntime`, `onnxruntime-cuda`, `onnxruntime-trt`,
`tensorrt`, `torch-bf16` (CPU autocast + channels_last), `torch-compile` (torch.compile, inductor, frozen
weights), `torch-aot` (an AOTInductor package, .pt2), `openvino` (FP32 forced), `openvino-bf16`,
`triton` (a running Triton server), `executorch` (an ExecuTorch program, .pte, XNNPACK), `litert` (a
LiteRT model, .tflite). A model spec on the command line is
`PATH` (the runtime follows from the file type), `NAME=PATH`, or `triton=http://HOST:PORT/NAME`
(`factory=package.module:function[@weights]`, a user's module, is read by `verified.factory` for the bench).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ReidExportError
from .base import Runtime
from .triton import TritonAddress

__all__ = ["RUNTIMES", "RuntimeSpec", "capabilities", "runtime_names", "make_runtime", "parse_model_spec",
           "default_runtime_for"]


@dataclass(frozen=True)
class RuntimeSpec:
    """What a registered runtime is and can do, declared once: `make_runtime` builds it, and the CLI help, the
    service and the bench ask these fields instead of comparing runtime names."""

    module: str  # the backend's module, imported only when the runtime is made (its heavy imports with it)
    cls: str  # the `Runtime` subclass in that module
    device: str  # where it computes: cpu | cuda | server (a Triton server holds the device)
    precisions: tuple[str, ...]  # the precisions it runs: the artefact's own, or the one it forces
    suffixes: tuple[str, ...]  # the artefact files it takes; () for a server address
    defaults: dict = field(default_factory=dict)  # the constructor options this name stands for
    options: tuple[str, ...] = ()  # constructor options a caller may set besides those (e.g. OpenVINO's hint)
    lanes: bool = False  # several instances of one model in a process pay off (serve --instances)
    needs_server: bool = False  # the artefact is an address of a running server, not a file
    reference: bool = False  # runs the trained model itself (PyTorch eager): its FP32 row is what others compare with


_TORCH, _ORT, _OV = "reid_export.runtimes.torch", "reid_export.runtimes.onnxruntime", "reid_export.runtimes.openvino"
_CHECKPOINT, _ONNX, _ANY = (".pt", ".pth"), (".onnx",), ("fp32", "fp16", "int8")
_ORT_OPTIONS = ("threads", "spinning")
_OV_OPTIONS = ("hint", "threads", "pinning")

# name -> what it is; a file type runs by default on the first runtime here that takes it (default_runtime_for)
RUNTIMES: dict[str, RuntimeSpec] = {
    "torch": RuntimeSpec(_TORCH, "TorchRuntime", "cpu", ("fp32",), _CHECKPOINT, {"device": "cpu"},
                         options=("embedding",), reference=True),
    "torch-cuda": RuntimeSpec(_TORCH, "TorchRuntime", "cuda", ("fp32",), _CHECKPOINT, {"device": "cuda"},
                              options=("embedding",), reference=True),
    "torch-cuda-fp16": RuntimeSpec(_TORCH, "TorchRuntime", "cuda", ("fp16",), _CHECKPOINT,
                                   {"device": "cuda", "half": True, "channels_last": True},
                                   options=("embedding",), reference=True),
    "onnxruntime": RuntimeSpec(_ORT, "OnnxRuntime", "cpu", _ANY, _ONNX, {"device": "cpu"}, options=_ORT_OPTIONS,
                               lanes=True),
    "onnxruntime-cuda": RuntimeSpec(_ORT, "OnnxRuntime", "cuda", _ANY, _ONNX, {"device": "cuda"}, options=_ORT_OPTIONS),
    "onnxruntime-trt": RuntimeSpec(_ORT, "OnnxRuntime", "cuda", _ANY, _ONNX, {"device": "tensorrt"},
                                   options=_ORT_OPTIONS),
    "tensorrt": RuntimeSpec("reid_export.runtimes.tensorrt", "TensorRTRuntime", "cuda", _ANY, (".engine",),
                            {"device": "cuda"}),
    "torch-bf16": RuntimeSpec(_TORCH, "TorchRuntime", "cpu", ("bf16",), _CHECKPOINT,
                              {"device": "cpu", "bf16": True, "channels_last": True},
                              options=("embedding",), reference=True),
    "torch-compile": RuntimeSpec("reid_export.runtimes.torch_compile", "TorchCompileRuntime", "cpu", ("fp32",),
                                 _CHECKPOINT, {"device": "cpu"}, options=("embedding", "warm_batches")),
    "torch-aot": RuntimeSpec("reid_export.runtimes.torch_aot", "TorchAotRuntime", "cpu", ("fp32",), (".pt2",),
                             {"device": "cpu"}),
    "openvino": RuntimeSpec(_OV, "OpenVinoRuntime", "cpu", ("fp32", "int8"), (".xml", ".onnx"),
                            {"device": "cpu", "inference_precision": "fp32"}, options=_OV_OPTIONS, lanes=True),
    "openvino-bf16": RuntimeSpec(_OV, "OpenVinoRuntime", "cpu", ("bf16", "int8"), (".xml", ".onnx"),
                                 {"device": "cpu", "inference_precision": "bf16"}, options=_OV_OPTIONS, lanes=True),
    "triton": RuntimeSpec("reid_export.runtimes.triton", "TritonRuntime", "server", _ANY, (), options=("timeout_s",),
                          needs_server=True),  # artefact: http://HOST:PORT/NAME, not a file
    # edge runtimes (the `edge` extra), on the CPU through XNNPACK as on a phone
    "executorch": RuntimeSpec("reid_export.runtimes.executorch", "ExecuTorchRuntime", "cpu", ("fp32", "int8"),
                              (".pte",), {"device": "cpu"}),
    "litert": RuntimeSpec("reid_export.runtimes.litert", "LiteRtRuntime", "cpu", ("fp32", "int8"), (".tflite",),
                          {"device": "cpu"}, options=("threads",)),
}


def capabilities(name: str) -> RuntimeSpec:
    """What the runtime called `name` can do (device, precisions, lanes, file types, options)."""
    if name not in RUNTIMES:
        raise ReidExportError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}")
    return RUNTIMES[name]


def runtime_names(**wanted) -> list[str]:
    """The registered names whose capabilities match `wanted`, e.g. `runtime_names(needs_server=False)`, in
    registration order (what the CLI help lists)."""
    return [name for name, spec in RUNTIMES.items() if all(getattr(spec, k) == v for k, v in wanted.items())]


def make_runtime(name: str, artefact, **options) -> Runtime:
    """Instantiate the runtime called `name` for `artefact` (not yet activated)."""
    spec = capabilities(name)
    # by name, so that a backend's heavy imports (torch, onnxruntime, tensorrt) happen only when it is used
    runtime = getattr(importlib.import_module(spec.module), spec.cls)(artefact, **{**spec.defaults, **options})
    runtime.name = name
    return runtime


def default_runtime_for(path: str | Path) -> str:
    """The first registered runtime that takes this file type."""
    suffix = Path(path).suffix.lower()
    name = next((name for name, spec in RUNTIMES.items() if suffix in spec.suffixes), None)
    if name is None:
        raise ReidExportError(
            f"{path}: cannot tell which runtime runs a '{suffix}' file; "
            f"use NAME=PATH with NAME one of {', '.join(RUNTIMES)}"
        )
    return name


def parse_model_spec(spec: str) -> tuple[str, Path | TritonAddress]:
    """`PATH` or `NAME=PATH` -> (runtime name, path); the file must exist. `triton=http://HOST:PORT/NAME` ->
    ("triton", TritonAddress): a server, checked when the runtime activates."""
    name, sep, path = spec.partition("=")
    if sep and name in RUNTIMES and RUNTIMES[name].needs_server:
        return name, TritonAddress.parse(path)
    if sep and name == "factory":  # built by verified.factory, above this layer
        raise ReidExportError(f"--model {spec}: a factory=package.module:function spec is read by `reid-export bench`; "
                              "elsewhere export it first with `reid-export onnx --model-factory ...` and use the ONNX")
    if sep and name not in RUNTIMES and "/" not in name and not Path(spec).exists():
        raise ReidExportError(f"--model {spec}: unknown runtime {name!r}; runtimes: {', '.join(RUNTIMES)} "
                              "(or give just the PATH and the runtime follows from the file type)")
    if not sep or name not in RUNTIMES:
        name, path = default_runtime_for(spec), spec
    path = Path(path)
    if not path.is_file():
        raise ReidExportError(f"model {path}: no such file")
    return name, path
