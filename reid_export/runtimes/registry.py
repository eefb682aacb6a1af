"""The runtime registry: names -> backend classes, imported only when used; model specs from the CLI.

Names: `torch`, `torch-cuda`, `torch-cuda-fp16`, `onnxruntime`, `onnxruntime-cuda`, `onnxruntime-trt`,
`tensorrt`, `torch-bf16` (CPU autocast + channels_last), `openvino` (FP32 forced), `openvino-bf16`,
`triton` (a running Triton server). A model spec on the command line is
`PATH` (the runtime follows from the file type), `NAME=PATH`, or `triton=http://HOST:PORT/NAME`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import ReidExportError
from .base import Runtime
from .triton import TritonAddress

__all__ = ["RUNTIMES", "make_runtime", "parse_model_spec", "default_runtime_for"]

# name -> (module, class, constructor options)
RUNTIMES: dict[str, tuple[str, str, dict]] = {
    "torch": ("reid_export.runtimes.torch", "TorchRuntime", {"device": "cpu"}),
    "torch-cuda": ("reid_export.runtimes.torch", "TorchRuntime", {"device": "cuda"}),
    "torch-cuda-fp16": ("reid_export.runtimes.torch", "TorchRuntime", {"device": "cuda", "half": True, "channels_last": True}),
    "onnxruntime": ("reid_export.runtimes.onnxruntime", "OnnxRuntime", {"device": "cpu"}),
    "onnxruntime-cuda": ("reid_export.runtimes.onnxruntime", "OnnxRuntime", {"device": "cuda"}),
    "onnxruntime-trt": ("reid_export.runtimes.onnxruntime", "OnnxRuntime", {"device": "tensorrt"}),
    "tensorrt": ("reid_export.runtimes.tensorrt", "TensorRTRuntime", {"device": "cuda"}),
    "torch-bf16": ("reid_export.runtimes.torch", "TorchRuntime", {"device": "cpu", "bf16": True, "channels_last": True}),
    "openvino": ("reid_export.runtimes.openvino", "OpenVinoRuntime", {"device": "cpu", "inference_precision": "fp32"}),
    "openvino-bf16": ("reid_export.runtimes.openvino", "OpenVinoRuntime", {"device": "cpu", "inference_precision": "bf16"}),
    "triton": ("reid_export.runtimes.triton", "TritonRuntime", {}),  # artefact: http://HOST:PORT/NAME, not a file
}
_BY_SUFFIX = {".pt": "torch", ".pth": "torch", ".onnx": "onnxruntime", ".engine": "tensorrt", ".xml": "openvino"}


def make_runtime(name: str, artefact, **options) -> Runtime:
    """Instantiate the runtime called `name` for `artefact` (not yet activated)."""
    if name not in RUNTIMES:
        raise ReidExportError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}")
    module, cls, defaults = RUNTIMES[name]
    # by name, so that a backend's heavy imports (torch, onnxruntime, tensorrt) happen only when it is used
    runtime = getattr(importlib.import_module(module), cls)(artefact, **{**defaults, **options})
    runtime.name = name
    return runtime


def default_runtime_for(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in _BY_SUFFIX:
        raise ReidExportError(
            f"{path}: cannot tell which runtime runs a '{suffix}' file; "
            f"use NAME=PATH with NAME one of {', '.join(RUNTIMES)}"
        )
    return _BY_SUFFIX[suffix]


def parse_model_spec(spec: str) -> tuple[str, Path | TritonAddress]:
    """`PATH` or `NAME=PATH` -> (runtime name, path); the file must exist. `triton=http://HOST:PORT/NAME` ->
    ("triton", TritonAddress): a server, checked when the runtime activates."""
    name, sep, path = spec.partition("=")
    if sep and name == "triton":
        return name, TritonAddress.parse(path)
    if sep and name not in RUNTIMES and "/" not in name and not Path(spec).exists():
        raise ReidExportError(f"--model {spec}: unknown runtime {name!r}; runtimes: {', '.join(RUNTIMES)} "
                              "(or give just the PATH and the runtime follows from the file type)")
    if not sep or name not in RUNTIMES:
        name, path = default_runtime_for(spec), spec
    path = Path(path)
    if not path.is_file():
        raise ReidExportError(f"model {path}: no such file")
    return name, path
