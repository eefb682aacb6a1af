"""The formats that export writes and runtimes read: ONNX metadata (`onnx_metadata`), OpenVINO IR metadata
(`openvino_ir`), the TensorRT engine sidecar (`tensorrt_sidecar`) and what building or running an engine needs
from TensorRT (`tensorrt_engine`), the tracker sidecar boxmot reads (`tracker_sidecar`), and one description of
any of them, `inspect(path) -> ArtefactInfo` (`info`). Imports neither `export` nor `runtimes`."""

from .info import ArtefactInfo, inspect

__all__ = ["ArtefactInfo", "inspect"]
