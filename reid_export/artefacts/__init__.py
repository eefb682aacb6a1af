"""The formats that export writes and runtimes read: ONNX metadata (`onnx_metadata`) and the TensorRT
engine sidecar (`tensorrt_sidecar`). Imports neither `export` nor `runtimes`."""
