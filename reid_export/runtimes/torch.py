"""PyTorch eager runtime, on CPU or CUDA (optionally FP16 + channels_last), from a checkpoint, a backbone
.pth, a ReidNet in memory, or a callable that builds one (a `--model-factory`, built on activate). (The
registry imports this module only when a torch runtime is asked for.)

`bf16` (the `torch-bf16` runtime) runs CPU inference under bf16 autocast with channels_last: on CPUs
with AVX-512 BF16 or AMX oneDNN then uses bf16 kernels. Without either the row is skipped, since
emulated bf16 is slower than FP32; `provider` says which of the two the CPU has.
"""

from __future__ import annotations

import numpy as np
import torch

from ..artefacts.info import ArtefactInfo, describe_checkpoint
from ..checkpoint import model_from_weights, read_weights
from ..errors import RuntimeUnavailable
from ..models import attribute_probabilities, with_embedding
from .base import Runtime

__all__ = ["TorchRuntime", "cpu_bf16_features"]


class TorchRuntime(Runtime):
    name = "torch"

    def __init__(self, artefact, *, device: str = "cpu", channels_last: bool = False, half: bool = False, bf16: bool = False,
                 embedding: str | None = None):
        super().__init__(artefact, device=device)
        self.channels_last = channels_last  # NHWC memory layout: faster convolutions on tensor cores and many CPUs
        self.half = half  # FP16 weights and activations (CUDA only)
        self.bf16 = bf16  # bf16 autocast (CPU with AVX-512 BF16 or AMX only)
        self.embedding = embedding  # "neck" | "pooled" overrides the checkpoint's choice; None keeps it
        self._model = None
        self._described_file: ArtefactInfo | None = None  # the checkpoint file, described from the one read of it

    def _activate_impl(self) -> None:
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeUnavailable("torch: no CUDA device (torch.cuda.is_available() is False); use device cpu")
        if self.half and not self.device.startswith("cuda"):
            raise RuntimeUnavailable("torch: FP16 inference is only offered on CUDA; use the fp32 torch runtime on CPU")
        bf16_units = cpu_bf16_features() if self.bf16 else []
        if self.bf16 and (self.device != "cpu" or not bf16_units):
            where = "this CPU has neither" if self.device == "cpu" else f"the device is {self.device}"
            raise RuntimeUnavailable(f"torch: bf16 autocast is offered on CPUs with AVX-512 BF16 or AMX, and {where}; "
                                     "use the fp32 torch runtime")
        artefact = self.artefact
        if callable(artefact) and not isinstance(artefact, torch.nn.Module):
            artefact = artefact()  # a builder (e.g. export.factory.ModelFactory): the model is made here, on activate
        if isinstance(artefact, torch.nn.Module):  # a ReidNet, or a module with its interface (config, embed_...)
            model = artefact.to(self.device).eval()
        else:  # the file is read once: the model and `info.artefact` both come from that read
            weights = read_weights(artefact)
            model = model_from_weights(weights, artefact, device=self.device)
            self._described_file = describe_checkpoint(artefact, weights, model)
        if self.embedding is not None:
            model = with_embedding(model, self.embedding)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.half:
            model = model.half()
            self.precision = "fp16"
        self._model = model
        self.arch = model.config.arch
        self.contract = model.config.preprocess
        self.provider = str(torch.device(self.device))
        if self.bf16:
            self.precision = "bf16"
            self.provider += f" ({', '.join(bf16_units)}, bf16 autocast, channels_last)"

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self._to_host(self._forward(self._to_device(batch)))

    def _infer_staged_impl(self, batch: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        import time

        import torch

        sync = torch.cuda.synchronize if self.device.startswith("cuda") else (lambda: None)
        sync()
        t0 = time.perf_counter()
        x = self._to_device(batch)
        sync()
        t1 = time.perf_counter()
        on_device = self._forward(x)
        sync()
        t2 = time.perf_counter()
        out = self._to_host(on_device)
        t3 = time.perf_counter()
        return out, {"h2d": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3, "d2h": (t3 - t2) * 1e3}

    def _to_device(self, batch: np.ndarray):
        import torch

        x = torch.from_numpy(batch).to(self.device, non_blocking=True)
        if self.half:
            x = x.half()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _forward(self, x) -> dict:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            raw, attributes = self._model.embed_with_attributes(x)  # the embedding model.config.embedding names
            emb = raw.float()
            if self.contract.l2_normalized:
                emb = torch.nn.functional.normalize(emb, dim=1)
            out = {"embedding": emb}
            if attributes is not None:
                out["attributes"] = attribute_probabilities(attributes.float())
        return out

    @staticmethod
    def _to_host(tensors: dict) -> dict[str, np.ndarray]:
        return {name: t.cpu().numpy() for name, t in tensors.items()}

    def _deactivate_impl(self) -> None:
        self._model = None

    def _info_impl(self) -> dict:
        return {"artefact": self._described_file}


def cpu_bf16_features() -> list[str]:
    """The bf16 units this CPU has, as /proc/cpuinfo names them: avx512_bf16, amx_bf16 (empty if none or unknown)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return [unit for unit in ("avx512_bf16", "amx_bf16") if unit in flags]
