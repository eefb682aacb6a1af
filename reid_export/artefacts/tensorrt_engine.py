"""What reading or writing a TensorRT engine needs from TensorRT itself: the import, the version, a logger.

    trt = import_tensorrt()                         # TensorRT 10+, or RuntimeUnavailable with how to get it
    logger = tensorrt_logger(trt, messages)         # warnings and errors printed and kept for error messages

Shared by the engine builder (`export.tensorrt`) and the engine runner (`runtimes.tensorrt`), which import
neither each other. The engine's own description is its JSON sidecar (`tensorrt_sidecar`), read without
TensorRT. Importing this module imports nothing heavy; TensorRT is imported when asked for.
"""

from __future__ import annotations

import sys

from ..errors import RuntimeUnavailable

__all__ = ["import_tensorrt", "tensorrt_logger", "tensorrt_major"]


def import_tensorrt():
    """`import tensorrt` (10 or newer), or RuntimeUnavailable saying how to get it."""
    try:
        import tensorrt  # lazy: needs an NVIDIA GPU and driver, absent on most machines
    except (ImportError, OSError) as e:
        raise RuntimeUnavailable(
            f"TensorRT is not installed ({type(e).__name__}: {e}). TensorRT needs an NVIDIA GPU and driver: on such "
            "a machine run `pip install tensorrt` (it fetches NVIDIA's CUDA wheels), or work inside NVIDIA's TensorRT "
            "container (nvcr.io/nvidia/tensorrt). It cannot work on a machine without an NVIDIA GPU; use the "
            "onnxruntime runtime there"
        ) from e
    if tensorrt_major(tensorrt.__version__) < 10:
        raise RuntimeUnavailable(f"TensorRT {tensorrt.__version__} is too old: reid-export uses the TensorRT 10+ "
                                 "API (named I/O tensors, execute_async_v3); `pip install -U tensorrt`")
    return tensorrt


def tensorrt_logger(trt, messages: list[str]):
    """A TensorRT logger that prints warnings and errors and keeps them for error messages."""

    shown = {trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR, trt.ILogger.Severity.WARNING}

    class _Logger(trt.ILogger):  # the documented way: subclass ILogger and call its __init__ explicitly
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            if severity in shown:
                messages.append(f"[TensorRT {severity.name}] {msg}")
                print(messages[-1], file=sys.stderr, flush=True)

    return _Logger()  # TensorRT needs the logger alive as long as anything created with it


def tensorrt_major(version: str) -> int:
    """The major version number of a TensorRT version string."""
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        raise RuntimeUnavailable(f"cannot read the TensorRT version {version!r}; reinstall tensorrt") from None
