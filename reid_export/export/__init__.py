"""Exporters: PyTorch -> ONNX (and, in later modules, quantised ONNX and TensorRT engines)."""
