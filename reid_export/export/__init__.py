"""Export: ONNX (`onnx`), FP16/INT8 inside the graph (`precision`), TensorRT engines (`tensorrt`), parity with
PyTorch and its pass/fail rule (`verify`), defaults (`settings`), and `run.export_model`, the one call
behind `reid-export onnx`."""
