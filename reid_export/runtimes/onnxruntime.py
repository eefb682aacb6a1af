"""ONNX Runtime with the CPU, CUDA or TensorRT execution provider.

On CUDA and TensorRT the input is copied to the device once and outputs are bound on the device
(I/O binding), so host-device copies are not paid twice per call. The TensorRT EP caches its
engines under `engines/ort-trt-cache/` so only the first session of a shape pays the build.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artefacts.onnx_metadata import INPUT_NAME, read_onnx_info
from ..errors import RuntimeUnavailable
from ..files import ENGINES_DIR
from .base import Runtime

__all__ = ["OnnxRuntime", "TRT_CACHE_DIR"]

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
TRT_CACHE_DIR = ENGINES_DIR / "ort-trt-cache"


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def __init__(self, artefact, *, device: str = "cpu", threads: int = 0, trt_cache_dir: str | Path = TRT_CACHE_DIR,
                 max_batch: int = 128):
        super().__init__(artefact, device=device)
        self.threads = threads  # intra-op threads; 0 lets ONNX Runtime use every core
        self.trt_cache_dir = Path(trt_cache_dir)
        self.max_batch = max_batch  # TensorRT EP profile: batch 1..max_batch
        self._session = None

    def _activate_impl(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise RuntimeUnavailable("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from e

        kind = self.device.split(":")[0]
        if kind not in _PROVIDERS:
            raise RuntimeUnavailable(f"onnxruntime: unknown device {self.device!r}; choose one of {', '.join(_PROVIDERS)}")
        wanted = _PROVIDERS[kind]
        if wanted not in ort.get_available_providers():
            raise RuntimeUnavailable(
                f"onnxruntime: {wanted} is not available in this build (available: {', '.join(ort.get_available_providers())}); "
                "install onnxruntime-gpu with a matching CUDA, or use device cpu"
            )
        self.info = read_onnx_info(self.artefact)  # parsed once: contract, precision, opset
        self.contract, self.precision = self.info.contract, self.info.precision
        if kind != "cpu":
            _require_cuda_device(wanted)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.threads:
            options.intra_op_num_threads = self.threads
        providers = self._provider_list(kind, wanted, INPUT_NAME)
        try:
            self._session = ort.InferenceSession(str(self.artefact), sess_options=options, providers=providers)
        except Exception as e:  # ORT raises its own exception types for missing CUDA/TensorRT libraries
            raise RuntimeUnavailable(f"onnxruntime: could not start {wanted} ({str(e).splitlines()[0]})") from e
        used = self._session.get_providers()
        if used[0] != wanted:
            raise RuntimeUnavailable(
                f"onnxruntime: asked for {wanted} but the session runs on {used[0]} "
                "(CUDA/TensorRT libraries missing or no GPU); use device cpu"
            )
        self.provider = used[0]
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._on_device = kind != "cpu"

    def _provider_list(self, kind: str, wanted: str, input_name: str) -> list:
        if kind == "cpu":
            return [wanted]
        if kind == "cuda":
            return [(wanted, {"device_id": _device_index(self.device)}), "CPUExecutionProvider"]
        c = self.contract
        shape = f"{c.height}x{c.width}"
        self.trt_cache_dir.mkdir(parents=True, exist_ok=True)
        trt_options = {
            "device_id": _device_index(self.device),
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(self.trt_cache_dir),
            "trt_timing_cache_enable": True,
            "trt_fp16_enable": self.precision == "fp16",
            "trt_int8_enable": self.precision == "int8",  # explicit Q/DQ: no calibration table needed
            "trt_profile_min_shapes": f"{input_name}:1x3x{shape}",
            "trt_profile_opt_shapes": f"{input_name}:32x3x{shape}",
            "trt_profile_max_shapes": f"{input_name}:{self.max_batch}x3x{shape}",
        }
        return [(wanted, trt_options), ("CUDAExecutionProvider", {"device_id": _device_index(self.device)})]

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if not self._on_device:
            values = self._session.run(self._outputs, {self._input: batch})
            return {name: np.asarray(v, dtype=np.float32) for name, v in zip(self._outputs, values)}
        return self._infer_staged_impl(batch)[0]

    def _infer_staged_impl(self, batch: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """On CUDA/TensorRT: input copied once, outputs bound on the device (I/O binding), each part timed."""
        import time

        if not self._on_device:
            t0 = time.perf_counter()
            out = self._infer_impl(batch)
            return out, {"h2d": 0.0, "inference": (time.perf_counter() - t0) * 1e3, "d2h": 0.0}
        import onnxruntime as ort

        device_index = _device_index(self.device)
        binding = self._session.io_binding()
        t0 = time.perf_counter()
        x = ort.OrtValue.ortvalue_from_numpy(batch, "cuda", device_index)  # returns after the copy
        t1 = time.perf_counter()
        binding.bind_ortvalue_input(self._input, x)
        for name in self._outputs:
            binding.bind_output(name, "cuda", device_index)
        self._session.run_with_iobinding(binding)  # synchronous: returns when the outputs are ready
        t2 = time.perf_counter()
        values = binding.copy_outputs_to_cpu()
        t3 = time.perf_counter()
        out = {name: np.asarray(v, dtype=np.float32) for name, v in zip(self._outputs, values)}
        return out, {"h2d": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3, "d2h": (t3 - t2) * 1e3}

    def _deactivate_impl(self) -> None:
        self._session = None


def _device_index(device: str) -> int:
    _, _, index = device.partition(":")
    return int(index) if index else 0


def _require_cuda_device(provider: str) -> None:
    """onnxruntime-gpu lists CUDA providers even on machines without a GPU; ask the driver first."""
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        return  # no torch to ask: let ONNX Runtime find out
    if not has_gpu:
        raise RuntimeUnavailable(f"onnxruntime: {provider} needs a CUDA device and none is visible (no CUDA device)")
