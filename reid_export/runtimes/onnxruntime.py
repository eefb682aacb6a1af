"""ONNX Runtime, with the CPU execution provider or CUDA's when present."""

from __future__ import annotations

import numpy as np

from ..errors import RuntimeUnavailable
from .base import Runtime

__all__ = ["OnnxRuntime"]

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def __init__(self, artefact, *, device: str = "cpu", threads: int = 0):
        super().__init__(artefact, device=device)
        self.threads = threads  # intra-op threads; 0 lets ONNX Runtime use every core
        self._session = None

    def _activate_impl(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise RuntimeUnavailable("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from e
        from ..export.onnx import PRECISION_KEY, read_contract, read_metadata

        kind = self.device.split(":")[0]
        if kind not in _PROVIDERS:
            raise RuntimeUnavailable(f"onnxruntime: unknown device {self.device!r}; choose one of {', '.join(_PROVIDERS)}")
        wanted = _PROVIDERS[kind]
        if wanted not in ort.get_available_providers():
            raise RuntimeUnavailable(
                f"onnxruntime: {wanted} is not available in this build (available: {', '.join(ort.get_available_providers())}); "
                "install onnxruntime-gpu with a matching CUDA, or use device cpu"
            )
        self.contract = read_contract(self.artefact)
        self.precision = read_metadata(self.artefact).get(PRECISION_KEY, "fp32")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.threads:
            options.intra_op_num_threads = self.threads
        self._session = ort.InferenceSession(str(self.artefact), sess_options=options, providers=[wanted])
        used = self._session.get_providers()
        if used[0] != wanted:
            raise RuntimeUnavailable(
                f"onnxruntime: asked for {wanted} but the session runs on {used[0]} "
                "(CUDA libraries missing or no GPU); use device cpu"
            )
        self.provider = used[0]
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        values = self._session.run(self._outputs, {self._input: batch})
        return {name: np.asarray(v, dtype=np.float32) for name, v in zip(self._outputs, values)}

    def _deactivate_impl(self) -> None:
        self._session = None
