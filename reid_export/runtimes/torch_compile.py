"""PyTorch through `torch.compile` (the `torch-compile` runtime): the checkpoint's model, eval, its weights
frozen into the graph (inductor's `freezing`, under no grad), compiled to C++ kernels on this CPU.

    with make_runtime("torch-compile", "runs/model.pt") as rt:   # activate() compiles: minutes on 2 cores
        rt.compile_seconds                                          # kept apart from the throughput
        out = rt.infer(batch)

The batch axis is dynamic, but inductor still compiles one graph per range of batch sizes whose convolution
kernels differ (with torch 2.14 on x86: 1, 2-15, 16 and up), so activate() runs one warm-up batch in each
(`warm_batches`) and reports the time as `compile_seconds`; a batch outside them compiles on its first call.
Without a C++ compiler, or when inductor cannot compile the model here, the runtime is unavailable (a
`skipped` bench row) with the reason. (The registry imports this module only when the runtime is asked for.)
"""

from __future__ import annotations

import time

import torch

from ..errors import RuntimeUnavailable
from ..models.inductor import inductor_compiler
from .torch import TorchRuntime

__all__ = ["TorchCompileRuntime", "WARM_BATCHES"]

WARM_BATCHES = (1, 2, 16)  # one batch per range of sizes inductor compiles a graph for (see the module docstring)


class TorchCompileRuntime(TorchRuntime):
    name = "torch-compile"

    def __init__(self, artefact, *, device: str = "cpu", embedding: str | None = None,
                 warm_batches: tuple[int, ...] = WARM_BATCHES):
        super().__init__(artefact, device=device, embedding=embedding)
        self.warm_batches = warm_batches  # batch sizes compiled on activate(), timed as compile_seconds
        self.compile_seconds: float | None = None  # what activate() spent compiling, apart from any inference

    def _activate_impl(self) -> None:
        compiler = inductor_compiler()
        super()._activate_impl()
        # the embedding (and attribute logits) in one graph; the normalisation stays in TorchRuntime._forward. The
        # model is wrapped, not patched: a ReidNet given in memory stays the caller's own, uncompiled
        self._model = _Compiled(self._model)
        t0 = time.perf_counter()
        try:
            for size in self.warm_batches:
                self._forward(torch.zeros(size, *self.contract.input_shape, device=self.device))
        except Exception as e:  # inductor's own failures (a C++ error, an unsupported op) make the row skipped
            self._model = None
            raise RuntimeUnavailable(f"torch-compile: inductor could not compile the model on this machine with "
                                     f"{compiler} ({type(e).__name__}: {_first_line(e)}); use the torch runtime, "
                                     "or export with `reid-export onnx`") from e
        self.compile_seconds = round(time.perf_counter() - t0, 3)
        self.provider += " (inductor, frozen weights)"

    def _deactivate_impl(self) -> None:
        super()._deactivate_impl()
        # dynamo keys its compiled graphs by the code of `embed_with_attributes`, shared by every model: without a
        # reset, a sweep's next torch-compile rows would pile up until its recompile limit, then run uncompiled
        torch._dynamo.reset()

    def _info_impl(self) -> dict:
        return {**super()._info_impl(), "extra": {"compile_seconds": self.compile_seconds,
                                                  "compiled_batches": list(self.warm_batches)}}


class _Compiled:
    """What TorchRuntime._forward calls on its model, compiled: `embed_with_attributes`, dynamic batch, frozen."""

    def __init__(self, model: torch.nn.Module):
        self.config = model.config
        self.embed_with_attributes = torch.compile(model.embed_with_attributes, backend="inductor", dynamic=True,
                                                   options={"freezing": True})


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else "no message"
