"""The formats that export writes and runtimes read: ONNX metadata (`onnx_metadata`), the TensorRT
engine sidecar (`tensorrt_sidecar`) and the tracker sidecar boxmot reads (`tracker_sidecar`). Imports
neither `export` nor `runtimes`."""
