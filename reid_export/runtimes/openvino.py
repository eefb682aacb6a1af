"""OpenVINO, from a reid-export ONNX file or an OpenVINO IR (`.xml` + `.bin`), on the CPU by default.

    with make_runtime("openvino", "engines/model.xml") as rt:    # or "openvino-bf16", or an .onnx
        out = rt.infer(batch)

The contract comes from the ONNX metadata, or from the IR's `rt_info` (under `reid_export/...`, as
`reid-export openvino` writes it). Precision:

* `openvino` forces FP32 arithmetic (`INFERENCE_PRECISION_HINT=f32`). This matters: on CPUs with
  AVX-512 BF16 or AMX the CPU plugin's *default* is bf16, so an unset hint silently runs bf16.
* `openvino-bf16` asks for bf16; a CPU without bf16 support makes it a skipped row, not a slow one.
* An INT8 artefact (the project's Q/DQ ONNX, or an NNCF-quantised IR) runs as INT8 under either name:
  OpenVINO folds the Quantize/Dequantize pairs into INT8 kernels.

`precision` reports what really ran, read back from the compiled model: int8 when its convolutions
run in i8/u8, else the inference precision the plugin settled on.

Hints: `latency` (default) runs one request on every thread; `throughput` takes the streams OpenVINO
recommends and splits each batch across them (an async queue), which only pays off at large batches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..artefacts.onnx_metadata import (
    CALIBRATION_KEY,
    METADATA_KEY,
    MODEL_KEY,
    PRECISION_KEY,
    VERSION_KEY,
    contract_from_metadata,
    read_onnx_info,
)
from ..contract import Preprocess
from ..errors import RuntimeUnavailable
from .base import Runtime

__all__ = ["HINTS", "IR_KEYS", "IrInfo", "OpenVinoRuntime", "import_openvino", "ir_metadata", "set_ir_metadata"]

HINTS = ("latency", "throughput")
IR_KEYS = (METADATA_KEY, PRECISION_KEY, MODEL_KEY, VERSION_KEY, CALIBRATION_KEY)  # stored in rt_info, split on "."
_INFERENCE_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}
_INT8_TYPES = {"i8", "u8"}


@dataclass(frozen=True)
class IrInfo:
    """What an IR's rt_info says about itself (the counterpart of `OnnxInfo` for an .onnx artefact)."""

    path: Path
    contract: Preprocess
    precision: str  # fp32 | fp16 | int8, as recorded by `reid-export openvino`
    metadata: dict[str, str] = field(default_factory=dict)  # the reid_export.* entries
    model: dict = field(default_factory=dict)  # MODEL_KEY, parsed: arch, embedding_dim, ...
    calibration: dict = field(default_factory=dict)  # CALIBRATION_KEY, parsed ({} unless INT8)
    opset: None = None  # an IR has no ONNX opset


class OpenVinoRuntime(Runtime):
    name = "openvino"

    def __init__(self, artefact, *, device: str = "cpu", inference_precision: str = "fp32", hint: str = "latency",
                 threads: int = 0):
        super().__init__(artefact, device=device)
        self.inference_precision = inference_precision  # fp32 | bf16: INFERENCE_PRECISION_HINT, never left unset
        self.hint = hint  # latency | throughput: PERFORMANCE_HINT
        self.threads = threads  # INFERENCE_NUM_THREADS; 0 lets OpenVINO use every core
        self.info = None  # OnnxInfo (.onnx) or IrInfo (.xml): contract, precision, model, metadata
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
        model = core.read_model(path)
        if path.lower().endswith(".onnx"):
            self.info = read_onnx_info(path)
        else:
            meta = ir_metadata(model)
            self.info = IrInfo(path=Path(path), contract=contract_from_metadata(meta, source=path),
                               precision=meta.get(PRECISION_KEY, "fp32"), metadata=meta,
                               model=_json(meta.get(MODEL_KEY)), calibration=_json(meta.get(CALIBRATION_KEY)))
        self.contract = self.info.contract
        config = {
            hints.inference_precision: getattr(ov.Type, _INFERENCE_PRECISIONS[self.inference_precision]),
            hints.performance_mode: getattr(hints.PerformanceMode, self.hint.upper()),
        }
        if self.threads:
            config[props.inference_num_threads] = self.threads
        self._compiled = core.compile_model(model, device, config)
        self._outputs = [o.get_any_name() for o in self._compiled.outputs]
        streams = int(self._compiled.get_property(props.optimal_number_of_infer_requests))
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

    def _deactivate_impl(self) -> None:
        self._compiled = self._request = self._queue = None


def import_openvino():
    """The `openvino` module, or RuntimeUnavailable saying how to install it."""
    try:
        import openvino
    except ImportError as e:
        raise RuntimeUnavailable('openvino is not installed: pip install "reid-export[openvino]"') from e
    return openvino


def ir_metadata(model) -> dict[str, str]:
    """The reid-export entries of an OpenVINO model's rt_info, keyed as in ONNX metadata."""
    return {key: model.get_rt_info(key.split(".")).astype(str) for key in IR_KEYS if model.has_rt_info(key.split("."))}


def set_ir_metadata(model, meta: dict[str, str]) -> None:
    """Store reid-export metadata (ONNX metadata_props keys) in an OpenVINO model's rt_info."""
    for key in IR_KEYS:
        if key in meta:
            model.set_rt_info(meta[key], key.split("."))


def _json(text: str | None) -> dict:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _runs_int8(compiled) -> bool:
    """Whether the compiled model's convolutions / matmuls execute in int8 (i8 or u8)."""
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) in ("Convolution", "FullyConnected", "MatMul") and \
                info["runtimePrecision"].astype(str) in _INT8_TYPES:
            return True
    return False
