"""ONNX Runtime with the CPU, CUDA or TensorRT execution provider.

On CUDA and TensorRT the input is copied to the device once and outputs are bound on the device
(I/O binding), so host-device copies are not paid twice per call. The TensorRT EP caches its
engines under `engines/ort-trt-cache/` so only the first session of a shape pays the build.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artefacts.info import inspect
from ..artefacts.onnx_metadata import INPUT_NAME
from ..errors import ReidExportError, RuntimeUnavailable
from ..files import ENGINES_DIR
from .base import Runtime

__all__ = ["OnnxRuntime", "TRT_CACHE_DIR"]

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
TRT_CACHE_DIR = ENGINES_DIR / "ort-trt-cache"


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def __init__(self, artefact, *, device: str = "cpu", threads: int = 0, spinning: bool = True, trt_cache_dir: str | Path = TRT_CACHE_DIR,
                 trt_profile_max_batch: int = 128):
        super().__init__(artefact, device=device)
        self.threads = threads  # intra-op threads; 0 lets ONNX Runtime use every core
        self.spinning = spinning  # False: idle threads sleep (a server sharing its cores with decoding and I/O)
        self.trt_cache_dir = Path(trt_cache_dir)
        self.trt_profile_max_batch = trt_profile_max_batch  # TensorRT EP profile: batch 1..this (its max_batch)
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
        self._artefact_info = inspect(self.artefact)  # parsed once: contract, precision, opset (and `info`)
        self.contract, self.precision = self._artefact_info.contract, self._artefact_info.precision
        if kind != "cpu":
            _require_cuda_device(wanted)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.threads:
            options.intra_op_num_threads = self.threads
        if not self.spinning:  # idle intra-op threads sleep instead of spinning, leaving the cores to others
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = self._provider_list(kind, wanted, INPUT_NAME)
        try:
            self._session = ort.InferenceSession(str(self.artefact), sess_options=options, providers=providers)
        except Exception as e:  # ORT raises its own exception types for missing CUDA/TensorRT libraries
            raise _session_error(self.artefact, wanted, e) from None
        used = self._session.get_providers()
        if used[0] != wanted:
            raise RuntimeUnavailable(
                f"onnxruntime: asked for {wanted} but the session runs on {used[0]} "
                "(CUDA/TensorRT libraries missing or no GPU); use device cpu"
            )
        self.provider = used[0]
        if wanted == _PROVIDERS["tensorrt"]:
            self.max_batch = self.trt_profile_max_batch
        _check_graph_input(self.artefact, self._session.get_inputs()[0].shape, self.contract)
        fixed = self._session.get_inputs()[0].shape[0]
        if isinstance(fixed, int) and fixed > 0:  # a batch axis fixed in the graph (an adopted export): its limit
            self.max_batch = min(self.max_batch or fixed, fixed)
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
            "trt_profile_max_shapes": f"{input_name}:{self.trt_profile_max_batch}x3x{shape}",
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

    def _info_impl(self) -> dict:
        device = f"cuda:{_device_index(self.device)}" if self._on_device else "cpu"
        return {"artefact": self._artefact_info, "device": device}

    def _deactivate_impl(self) -> None:
        self._session = None


def _session_error(path, provider: str, error: Exception) -> ReidExportError:
    """A broken or unsafe model is a failure; a provider that cannot start here is "unavailable"."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "escapes model directory" in text or "External data path" in text:
        return ReidExportError(f"{path}: its external weight data lies outside the model's folder, so ONNX Runtime "
                               f"refused to load it (refused for safety; {text[:300]}); keep the .onnx and its data "
                               "file in one folder")
    if provider == "CPUExecutionProvider" or any(s in text for s in ("INVALID_GRAPH", "INVALID_PROTOBUF",
                                                                      "IR version", "NOT_IMPLEMENTED")):
        return ReidExportError(f"{path}: ONNX Runtime cannot load this model ({text[:400]}); re-export it with "
                               "`reid-export onnx`")
    return RuntimeUnavailable(f"onnxruntime: could not start {provider} ({text[:400]})")


def _check_graph_input(path, shape, contract) -> None:
    """The graph's input (N, 3, H, W) must be what the metadata contract promises."""
    expected = contract.input_shape
    found = tuple(shape[1:]) if len(shape) == 4 else None
    if found is None or any(isinstance(d, int) and d != e for d, e in zip(found, expected)):
        raise ReidExportError(
            f"{path}: its metadata contract says input {expected[1]}x{expected[2]} (3 x H x W = {expected}) but the "
            f"graph's input is {list(shape)}; the metadata does not belong to this graph: re-export the model with "
            "`reid-export onnx` instead of editing its metadata")


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
