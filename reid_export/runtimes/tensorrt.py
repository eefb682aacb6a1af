"""TensorRT runtime: a `.engine` built by `reid-export trt`, run on CUDA with torch tensors as buffers.

The artefact is an engine path, or a callable that builds one and returns its path (the build then
happens inside `activate()`). The engine's sidecar (NAME.engine.json) supplies the preprocessing
contract, the precision and the batch profile, and is checked against the running TensorRT and GPU
before the engine is deserialized. Needs an NVIDIA GPU, TensorRT 10+ and a CUDA build of torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artefacts.info import inspect
from ..artefacts.tensorrt_engine import import_tensorrt, tensorrt_logger
from ..artefacts.tensorrt_sidecar import check_batch, check_compatible, read_sidecar
from ..contract import Preprocess
from ..errors import ReidExportError, RuntimeUnavailable
from .base import Runtime

__all__ = ["TensorRTRuntime"]


class TensorRTRuntime(Runtime):
    name = "tensorrt"

    def __init__(self, artefact, *, device: str = "cuda"):
        super().__init__(artefact, device=device)
        self.engine_path: Path | None = None  # set by activate(), after building when the artefact is a callable
        self.sidecar: dict | None = None
        self._trt = self._logger = self._runtime = self._engine = self._context = self._stream = None
        self._device = None

    def _activate_impl(self) -> None:

        trt = import_tensorrt()
        import torch

        if not torch.cuda.is_available():
            raise RuntimeUnavailable("tensorrt: no CUDA device (torch.cuda.is_available() is False); TensorRT runs "
                                     "only on an NVIDIA GPU with a CUDA build of torch; use the onnxruntime runtime here")
        self._device = torch.device(self.device)
        if self._device.type != "cuda":
            raise RuntimeUnavailable(f"tensorrt: runs on cuda devices only, got device {self.device!r}")
        path = Path(self.artefact() if callable(self.artefact) else self.artefact)
        sidecar = read_sidecar(path)
        gpu = torch.cuda.get_device_name(self._device)
        check_compatible(sidecar, trt_version=trt.__version__, gpu_name=gpu,
                         compute_capability=torch.cuda.get_device_capability(self._device))
        self._logger = tensorrt_logger(trt, [])  # must outlive the runtime, engine and context made with it
        with torch.cuda.device(self._device):
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
            if self._engine is None:  # documented failure signal: a null engine (with the reason in the log)
                raise RuntimeUnavailable(f"tensorrt: TensorRT {trt.__version__} could not deserialize {path}; see its "
                                         f"messages above; rebuild with `reid-export trt ... -o {path} --overwrite`")
            self._context = self._engine.create_execution_context()
            # a stream of our own: enqueueing on the legacy default stream makes TensorRT add synchronisations
            self._stream = torch.cuda.Stream(self._device)
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if n not in self._inputs]
        if len(self._inputs) != 1:
            raise ReidExportError(f"tensorrt: {path} has inputs {self._inputs}; reid-export engines have exactly one")
        self._dtypes = {n: _torch_dtype(trt, self._engine.get_tensor_dtype(n)) for n in names}
        self._trt, self.engine_path, self.sidecar = trt, path, sidecar
        self.contract = Preprocess.from_dict(sidecar["preprocess"], source=f"{path}.json")
        flag = "+fp16-flag" if sidecar.get("builder", {}).get("fp16_flag") else ""
        self.precision = f"{sidecar['precision']}{flag}"
        self.provider = f"TensorRT {trt.__version__} on {gpu}"
        self.max_batch = int(sidecar["profile"]["max"][0])  # the engine's profile maximum

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self._infer_staged_impl(batch)[0]

    def _infer_staged_impl(self, batch: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Copy in, run, copy out on the runtime's stream, syncing it before each clock read."""
        import time

        import torch

        check_batch(self.sidecar, len(batch))
        name, ctx = self._inputs[0], self._context
        with torch.cuda.device(self._device), torch.cuda.stream(self._stream):
            stream = torch.cuda.current_stream(self._device)  # self._stream, made current above
            t0 = time.perf_counter()
            x = torch.from_numpy(batch).to(self._device).to(self._dtypes[name]).contiguous()
            stream.synchronize()
            t1 = time.perf_counter()
            if not ctx.set_input_shape(name, tuple(x.shape)):
                raise ReidExportError(f"tensorrt: the engine rejected input shape {tuple(x.shape)} for {name!r}")
            ctx.set_tensor_address(name, x.data_ptr())
            outputs = {}
            for out in self._outputs:  # output shapes are known once the input shape is set
                outputs[out] = torch.empty(tuple(ctx.get_tensor_shape(out)), dtype=self._dtypes[out], device=self._device)
                ctx.set_tensor_address(out, outputs[out].data_ptr())
            if not ctx.execute_async_v3(stream.cuda_stream):
                raise ReidExportError(f"tensorrt: execute_async_v3 failed for a batch of {len(batch)}; "
                                      "see the TensorRT messages above")
            stream.synchronize()
            t2 = time.perf_counter()
            host = {n: t.float().cpu().numpy() for n, t in outputs.items()}  # .cpu() waits for the copy
            t3 = time.perf_counter()
        return host, {"h2d": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3, "d2h": (t3 - t2) * 1e3}

    def _info_impl(self) -> dict:
        # the engine built on activate() when the artefact is a builder; its sidecar and, beside it, its ONNX
        return {"artefact": inspect(self.engine_path), "device": str(self._device)}

    def _deactivate_impl(self) -> None:
        # release in reverse order of creation; the logger goes last
        self._context = self._engine = self._runtime = self._stream = None
        self._logger = self._trt = None


def _torch_dtype(trt, dtype):
    import torch

    table = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT8": torch.int8,
             "UINT8": torch.uint8, "INT32": torch.int32, "INT64": torch.int64, "BOOL": torch.bool}
    for member, torch_dtype in table.items():
        if getattr(trt.DataType, member, None) == dtype:
            return torch_dtype
    raise ReidExportError(f"tensorrt: I/O tensors of type {dtype} are not supported; "
                          "reid-export engines have float32 (or float16) inputs and outputs")
