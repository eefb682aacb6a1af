"""reid-export: train a person re-identification model, export it, and benchmark every runtime.

Importing the package loads only the standard library and numpy; torch, ONNX, ONNX Runtime and
TensorRT are imported by the functions that need them.
"""

__version__ = "0.1.0"
