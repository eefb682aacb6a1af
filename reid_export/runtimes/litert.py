"""A LiteRT model (`.tflite`, written by `reid-export litert`) run with LiteRT's interpreter (`ai_edge_litert`, the
TFLite runtime; XNNPACK on the CPU): what an Android or embedded Linux box runs.

    with make_runtime("litert", "engines/model.int8.tflite") as rt:
        out = rt.infer(batch)            # {"embedding": (N, D)[, "attributes": (N, 30)]}

The contract, precision and output names come from the model's own metadata (`artefacts.litert_model`, read by
`artefacts.inspect`). The model was converted at batch 1; the input is resized to each batch when every output
follows the resize (checked on activate); a graph whose batch is fixed inside (e.g. a reshape in the attribute
heads) runs one converted batch per call instead (`info.extra["resizable_batch"]`). An INT8 model
takes an int8 input: the float32 batch is quantised here with the model's own input scale and zero point
(from the input tensor's quantisation parameters), and quantised outputs are dequantised the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..artefacts.info import inspect
from ..artefacts.litert_model import output_order
from ..errors import ExportError, RuntimeUnavailable
from .base import Runtime

__all__ = ["LiteRtRuntime"]


class LiteRtRuntime(Runtime):
    name = "litert"

    def __init__(self, artefact, *, device: str = "cpu", threads: int = 0):
        super().__init__(artefact, device=device)
        self.threads = threads  # interpreter threads; 0: every core
        self._interpreter = None
        self._input: dict = {}
        self._outputs: list[tuple[str, dict]] = []  # (our output name, the tensor's details)
        self._batch = 0  # the batch the input is sized for now
        self._resizable = True  # every output follows a resized input (else batches run one converted batch at a time)

    def _activate_impl(self) -> None:
        if self.device != "cpu":
            raise RuntimeUnavailable(f"litert: runs on the CPU (XNNPACK) here; got device {self.device}")
        try:
            from ai_edge_litert import __version__ as version  # lazy: the edge extra
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise RuntimeUnavailable("ai-edge-litert is not installed: pip install 'reid-export[edge]'") from e
        path = Path(self.artefact)
        self._artefact_info = inspect(path)  # contract, precision and outputs from the model's own metadata
        self.contract, self.precision = self._artefact_info.contract, self._artefact_info.precision
        try:
            interpreter = Interpreter(model_path=str(path), num_threads=self.threads or os.cpu_count() or 1)
            runner = interpreter.get_signature_runner()
        except Exception as e:  # noqa: BLE001 - the interpreter's own errors: a model with ops this LiteRT lacks
            raise ExportError(f"{path}: LiteRT {version} cannot load this model ({type(e).__name__}: "
                              f"{str(e)[:200]}); export it again with `reid-export litert`") from None
        (self._input,) = runner.get_input_details().values()
        details = runner.get_output_details()
        del runner  # it holds the interpreter's tensors, which a resize must not have referenced
        names = [t.name for t in self._artefact_info.outputs]
        self._outputs = [(name, details[key]) for name, key in zip(names, output_order(details))]
        shape = tuple(int(d) for d in self._input["shape"][1:])
        if shape != self.contract.input_shape:
            raise ExportError(f"{path}: its metadata contract says input {self.contract.input_shape} but the model's "
                              f"input is {list(shape)}; the metadata does not belong to this model: export it again")
        self._interpreter, self._batch = interpreter, 0
        self._converted = int(self._input["shape"][0])
        self._resizable = self._follows_resize(2 * self._converted)
        quantised = np.dtype(self._input["dtype"]) != np.float32
        self.provider = f"LiteRT {version} interpreter (XNNPACK){', int8 input quantised here' if quantised else ''}"

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        step = len(batch) if self._resizable else self._converted
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(batch), step):
            chunk = batch[start:start + step]
            if len(chunk) < step:  # the last, partial chunk of a model that cannot resize: padded, cut after
                chunk = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            for name, value in self._invoke(chunk).items():
                parts.setdefault(name, []).append(value)
        return {name: np.concatenate(values)[:len(batch)] for name, values in parts.items()}

    def _invoke(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self._resize(len(batch))
        self._interpreter.set_tensor(self._input["index"], _quantised(batch, self._input))
        self._interpreter.invoke()
        return {name: _dequantised(self._interpreter.get_tensor(d["index"]), d) for name, d in self._outputs}

    def _resize(self, batch: int) -> None:
        """Size the input for `batch` images (the model was converted at batch 1)."""
        if batch != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [batch, *self.contract.input_shape],
                                                  strict=False)
            self._interpreter.allocate_tensors()
            self._batch = batch

    def _follows_resize(self, batch: int) -> bool:
        """Whether every output takes the input's batch after a resize: a graph with a batch fixed inside (a
        reshape to the converted batch) keeps its old size, and then runs at its converted batch instead."""
        self._resize(batch)
        return all(int(self._interpreter.get_tensor(d["index"]).shape[0]) == batch for _, d in self._outputs)

    def _info_impl(self) -> dict:
        scale, zero_point = self._input["quantization"]
        extra = {"input_dtype": np.dtype(self._input["dtype"]).name, "threads": self.threads or os.cpu_count(),
                 "resizable_batch": self._resizable, "converted_batch": self._converted}
        if scale:
            extra["input_quantization"] = {"scale": float(scale), "zero_point": int(zero_point)}
        return {"artefact": self._artefact_info, "extra": extra}

    def _deactivate_impl(self) -> None:
        self._interpreter = None


def _quantised(batch: np.ndarray, details: dict) -> np.ndarray:
    """The float32 batch in the input's dtype: quantised with its scale and zero point when it is an integer."""
    dtype = np.dtype(details["dtype"])
    if dtype == np.float32:
        return batch
    scale, zero_point = details["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(batch / scale) + zero_point, info.min, info.max).astype(dtype)


def _dequantised(value: np.ndarray, details: dict) -> np.ndarray:
    scale, zero_point = details["quantization"]
    if np.issubdtype(value.dtype, np.integer) and scale:
        return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return np.asarray(value, dtype=np.float32).copy()  # the interpreter's buffer is reused by the next call
