"""An ExecuTorch program (`.pte`, written by `reid-export executorch`) run in this process with ExecuTorch's Python
runtime (`executorch.runtime`) and its XNNPACK delegate: PyTorch's own edge runtime, as it runs on a phone.

    with make_runtime("executorch", "engines/model.pte") as rt:
        out = rt.infer(batch)            # {"embedding": (N, D)[, "attributes": (N, 30)]}

The contract, precision and output names come from the program's `reid_export_metadata` method, read by
`artefacts.inspect`. The program's memory plan bounds the batch (XNNPACK's lowering plans for up to 15); a
larger batch runs as consecutive calls of at most that many, so `infer` takes any batch (`info.extra` says the
planned bound).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artefacts.executorch_program import FORWARD_METHOD
from ..artefacts.info import inspect
from ..errors import ExportError, RuntimeUnavailable
from .base import Runtime

__all__ = ["ExecuTorchRuntime"]

_XNNPACK = "XnnpackBackend"  # the delegate's name in ExecuTorch's backend registry


class ExecuTorchRuntime(Runtime):
    name = "executorch"

    def __init__(self, artefact, *, device: str = "cpu"):
        super().__init__(artefact, device=device)
        self._forward = None
        self._outputs: list[str] = []
        self._planned = 1  # the largest batch one call of the program takes (its memory plan)

    def _activate_impl(self) -> None:
        if self.device != "cpu":
            raise RuntimeUnavailable(f"executorch: runs on the CPU (XNNPACK) here; got device {self.device}")
        try:
            from executorch.runtime import Runtime as EtRuntime  # lazy: the edge extra
            from executorch.version import __version__ as version
        except ImportError as e:
            raise RuntimeUnavailable("executorch is not installed: pip install 'reid-export[edge]'") from e
        path = Path(self.artefact)
        self._artefact_info = inspect(path)  # contract, precision and outputs from the program's own metadata
        self.contract, self.precision = self._artefact_info.contract, self._artefact_info.precision
        runtime = EtRuntime.get()
        if not runtime.backend_registry.is_available(_XNNPACK):
            raise RuntimeUnavailable(f"executorch {version}: this build has no XNNPACK backend, which the program "
                                     "delegates to; install the executorch wheel from PyPI")
        try:
            program = runtime.load_program(path)
            self._forward = program.load_method(FORWARD_METHOD)
        except Exception as e:  # noqa: BLE001 - the runtime's own errors: a program this version cannot load
            raise ExportError(f"{path}: executorch {version} cannot load this program ({type(e).__name__}: "
                              f"{str(e)[:200]}); export it again with `reid-export executorch`") from None
        sizes = list(program.metadata(FORWARD_METHOD).input_tensor_meta(0).sizes())
        if tuple(sizes[1:]) != self.contract.input_shape:
            raise ExportError(f"{path}: its metadata contract says input {self.contract.input_shape} but the program's "
                              f"input is {sizes[1:]}; the metadata does not belong to this program: export it again")
        self._planned = int(sizes[0])
        self._outputs = [t.name for t in self._artefact_info.outputs]
        self.provider = f"XNNPACK (ExecuTorch {version})"

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        import torch  # lazy: with the runtime

        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(batch), self._planned):  # the memory plan's bound: consecutive calls
            values = self._forward.execute([torch.from_numpy(batch[start:start + self._planned])])
            for name, value in zip(self._outputs, values):
                parts.setdefault(name, []).append(value.float().numpy())
        return {name: np.concatenate(chunks) for name, chunks in parts.items()}

    def _info_impl(self) -> dict:
        return {"artefact": self._artefact_info, "extra": {"planned_batch": self._planned}}

    def _deactivate_impl(self) -> None:
        self._forward = None
