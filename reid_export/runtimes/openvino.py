"""OpenVINO, from a reid-export ONNX file or an OpenVINO IR (`.xml` + `.bin`), on the CPU by default.

    with make_runtime("openvino", "engines/model.xml") as rt:    # or "openvino-bf16", or an .onnx
        out = rt.infer(batch)

The contract comes from the ONNX metadata, or from the IR's `rt_info` (under `reid_export/...`, as
`reid-export openvino` writes it, read by `artefacts.openvino_ir`). Precision:

* `openvino` forces FP32 arithmetic (`INFERENCE_PRECISION_HINT=f32`). This matters: on CPUs with
  AVX-512 BF16 or AMX the CPU plugin's *default* is bf16, so an unset hint silently runs bf16.
* `openvino-bf16` asks for bf16; a CPU without bf16 support makes it a skipped row, not a slow one.
* An INT8 artefact (the project's Q/DQ ONNX, or an NNCF-quantised IR) runs as INT8 under either name:
  OpenVINO folds the Quantize/Dequantize pairs into INT8 kernels.

`precision` reports what really ran, read back from the compiled model: int8 when its convolutions
run in i8/u8, else the inference precision the plugin settled on.

Hints: `latency` (default) runs one request on every thread; `throughput` takes the streams OpenVINO
recommends and splits each batch across them (an async queue), which only pays off at large batches.

Model instances (`serve --instances N`, the registry's `lanes`): N compiled models of `threads` each (one by
default), `pinning=False`, each run from its own thread. OpenVINO's streams pin their threads to cores
(ENABLE_CPU_PINNING); unpinned one-thread instances let the OS move a lane off the core the service's event
loop is using, as ONNX Runtime's one-thread sessions do, so no lane waits for a core held by HTTP work.
"""

from __future__ import annotations

import numpy as np

from ..artefacts.info import inspect
from ..artefacts.openvino_ir import import_openvino
from ..errors import RuntimeUnavailable
from .base import Runtime

__all__ = ["HINTS", "OpenVinoRuntime"]

HINTS = ("latency", "throughput")
_INFERENCE_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}
_INT8_TYPES = {"i8", "u8"}


class OpenVinoRuntime(Runtime):
    name = "openvino"

    def __init__(self, artefact, *, device: str = "cpu", inference_precision: str = "fp32", hint: str = "latency",
                 threads: int = 0, pinning: bool | None = None):
        super().__init__(artefact, device=device)
        self.inference_precision = inference_precision  # fp32 | bf16: INFERENCE_PRECISION_HINT, never left unset
        self.hint = hint  # latency | throughput: PERFORMANCE_HINT
        self.threads = threads  # INFERENCE_NUM_THREADS; 0 lets OpenVINO use every core
        self.pinning = pinning  # ENABLE_CPU_PINNING; None: OpenVINO's default (False for serve's lanes)
        self._compiled = self._request = self._queue = None

    def _activate_impl(self) -> None:
        ov = import_openvino()
        import openvino.properties as props
        import openvino.properties.hint as hints

        if self.hint not in HINTS:
            raise RuntimeUnavailable(f"openvino: unknown hint {self.hint!r}; choose one of {', '.join(HINTS)}")
        if self.inference_precision not in _INFERENCE_PRECISIONS:
            raise RuntimeUnavailable(f"openvino: unknown inference precision {self.inference_precision!r}; "
                                     f"choose one of {', '.join(_INFERENCE_PRECISIONS)}")
        core = ov.Core()
        device = self.device.split(":")[0].upper()
        if device not in core.available_devices:
            raise RuntimeUnavailable(f"openvino: no {device} device (available: {', '.join(core.available_devices)})")
        capabilities = core.get_property(device, props.device.capabilities)
        if self.inference_precision == "bf16" and "BF16" not in capabilities:
            raise RuntimeUnavailable(f"openvino: this {device} has no bf16 support (its capabilities: "
                                     f"{', '.join(capabilities)}); bf16 needs AVX-512 BF16 or AMX")
        path = str(self.artefact)
        # read (and checked: external data inside the model's folder) before OpenVINO opens any file it names
        self._artefact_info = inspect(path)  # the ONNX metadata or the IR's rt_info: contract, precision, model
        model = core.read_model(path)
        self.contract = self._artefact_info.contract
        config = {
            hints.inference_precision: getattr(ov.Type, _INFERENCE_PRECISIONS[self.inference_precision]),
            hints.performance_mode: getattr(hints.PerformanceMode, self.hint.upper()),
        }
        if self.threads:
            config[props.inference_num_threads] = self.threads
        if self.pinning is not None:
            config[hints.enable_cpu_pinning] = self.pinning
        self._compiled = core.compile_model(model, device, config)
        self._outputs = [o.get_any_name() for o in self._compiled.outputs]
        self._streams = streams = int(self._compiled.get_property(props.optimal_number_of_infer_requests))
        self._request = self._compiled.create_infer_request()
        if streams > 1:
            self._queue = ov.AsyncInferQueue(self._compiled, streams)
        ran = self._compiled.get_property(hints.inference_precision)  # what the plugin settled on
        self.precision = "int8" if _runs_int8(self._compiled) else ("bf16" if ran == ov.Type.bf16 else "fp32")
        threads = self._compiled.get_property(props.inference_num_threads)
        self.provider = f"OpenVINO {ov.get_version().split('-')[0]} {device}, {self.hint} hint, {streams} streams, {threads} threads"

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if self._queue is None or len(batch) < 2:
            result = self._request.infer({0: batch})
            return {name: np.array(result[i], dtype=np.float32) for i, name in enumerate(self._outputs)}
        return self._infer_split(batch)

    def _infer_split(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Throughput hint: the batch split into one part per stream, run concurrently, joined in order."""
        parts = np.array_split(batch, min(len(self._queue), len(batch)))
        results: list = [None] * len(parts)

        def done(request, index):
            results[index] = [np.array(request.get_output_tensor(i).data, dtype=np.float32)
                              for i in range(len(self._outputs))]

        self._queue.set_callback(done)
        for index, part in enumerate(parts):
            self._queue.start_async({0: np.ascontiguousarray(part)}, index)
        self._queue.wait_all()
        return {name: np.concatenate([r[i] for r in results]) for i, name in enumerate(self._outputs)}

    def _info_impl(self) -> dict:
        return {"artefact": self._artefact_info, "instances": self._streams}

    def _deactivate_impl(self) -> None:
        self._compiled = self._request = self._queue = None


def _runs_int8(compiled) -> bool:
    """Whether the compiled model's convolutions / matmuls execute in int8 (i8 or u8)."""
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) in ("Convolution", "FullyConnected", "MatMul") and \
                info["runtimePrecision"].astype(str) in _INT8_TYPES:
            return True
    return False
