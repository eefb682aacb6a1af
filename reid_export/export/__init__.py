"""Export, the writers: ONNX (`onnx`), FP16/INT8 inside the graph (`precision`), TensorRT engines (`tensorrt`),
OpenVINO IR (`openvino`), AOTInductor packages (`aot`), an ONNX from elsewhere given the contract (`adopt`), a
user's module behind ReidNet's interface (`factory`), and the defaults (`settings`). Nothing here runs a runtime
or imports `runtimes` or `training` (a contract in pyproject); parity checks, accuracy-controlled INT8 and the
`reid-export onnx` pipeline, which export AND run, are `reid_export.verified`."""
