"""The one interface every runtime implements.

    with make_runtime("onnxruntime", "engines/model.onnx") as rt:
        out = rt.infer(batch)        # {"embedding": (N, D) float32}

`batch` is a float32 NCHW array already preprocessed with `rt.contract`, which the runtime read from
its artefact. Subclasses override the small `_activate_impl` / `_infer_impl` / `_deactivate_impl`;
the public methods validate inputs and state so every backend behaves the same. Once active, `rt.info`
(a `RuntimeInfo`) says what runs: the artefact's `ArtefactInfo`, the provider, the precision that ran,
`max_batch`, instances, device and arch, the same fields for every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..artefacts.info import KINDS, ArtefactInfo, inspect
from ..contract import Preprocess
from ..errors import ReidExportError

__all__ = ["Runtime", "RuntimeInfo"]


@dataclass(frozen=True)
class RuntimeInfo:
    """What an active runtime runs and how; the bench rows and the service's /v1/info read it."""

    runtime: str  # the registry name, e.g. "onnxruntime"
    # the artefact as `artefacts.inspect` reads it; for Triton, what the server reports about its model. None
    # for a model handed in memory (or built by a callable) and for a file whose name says no artefact kind
    artefact: ArtefactInfo | None
    provider: str  # what actually runs the model: execution provider, device, TensorRT / OpenVINO version
    precision: str  # the precision that actually ran (may differ from the artefact's: bf16 autocast, fp16)
    max_batch: int | None  # the largest batch one infer() call accepts; None: unbounded
    instances: int  # model instances this runtime runs at once (OpenVINO streams, Triton's instance_group)
    device: str  # where it ran: cpu, cuda:0, server
    arch: str | None  # resnet50, osnet_x1_0, ... as the model or the artefact says; None when neither does
    extra: dict = field(default_factory=dict)  # what only this backend knows (e.g. a compile time)

    @property
    def opset(self) -> int | None:
        """The ONNX opset, for an ONNX artefact."""
        return self.artefact.extras.get("opset") if self.artefact is not None else None

    def to_dict(self) -> dict:
        """JSON-safe, the artefact as `ArtefactInfo.to_dict` writes it."""
        return {"runtime": self.runtime, "artefact": self.artefact.to_dict() if self.artefact is not None else None,
                "provider": self.provider, "precision": self.precision, "max_batch": self.max_batch,
                "instances": self.instances, "device": self.device, "arch": self.arch, "extra": dict(self.extra)}


class Runtime(ABC):
    name: str = "runtime"  # registry name, e.g. "onnxruntime"

    def __init__(self, artefact, *, device: str = "cpu"):
        self.artefact = artefact
        self.device = device
        self.is_active = False
        self.contract: Preprocess | None = None  # set by activate()
        self.provider: str = "?"  # what actually runs the model (execution provider / device), set by activate()
        self.precision: str = "fp32"  # numeric precision of the artefact, set by activate()
        self.arch: str | None = None  # the architecture, set by activate() where the artefact itself says it
        # the largest batch one infer() call accepts (a TensorRT engine's profile maximum), set by activate();
        # None when unbounded. Callers split work to fit it; a benchmark skips batch sizes above it.
        self.max_batch: int | None = None
        self.info: RuntimeInfo | None = None  # what runs, set by activate()

    # -- public API ----------------------------------------------------------------------
    def activate(self) -> "Runtime":
        if not self.is_active:
            self._activate_impl()
            if self.contract is None:
                raise ReidExportError(f"{self.name}: {self.artefact} gave no preprocessing contract")
            self.info = self._described()
            self.arch = self.info.arch
            self.is_active = True
        return self

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run one preprocessed batch (N, 3, H, W) float32; returns float32 arrays keyed by output name."""
        return self._infer_impl(self._checked(batch))

    def infer_staged(self, batch: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """`infer`, plus milliseconds spent in `h2d`, `inference` and `d2h`. Host runtimes have no copies;
        device runtimes override `_infer_staged_impl` to time each part between device syncs."""
        import time

        batch = self._checked(batch)
        if type(self)._infer_staged_impl is not Runtime._infer_staged_impl:
            return self._infer_staged_impl(batch)
        t0 = time.perf_counter()
        out = self._infer_impl(batch)
        return out, {"h2d": 0.0, "inference": (time.perf_counter() - t0) * 1e3, "d2h": 0.0}

    def _checked(self, batch) -> np.ndarray:
        """The batch as a contiguous float32 array, after checking the runtime is active and the shape
        matches the contract."""
        if not self.is_active:
            raise ReidExportError(f"{self.name}: call activate() (or use `with runtime:`) before infer()")
        batch = np.asarray(batch)
        expected = self.contract.input_shape
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected or batch.shape[0] == 0:
            raise ReidExportError(
                f"{self.name}: input batch has shape {batch.shape}, the model expects (N>0, {', '.join(map(str, expected))}) "
                "as given by its preprocessing contract; preprocess images with runtime.contract"
            )
        if self.max_batch is not None and batch.shape[0] > self.max_batch:
            raise ReidExportError(f"{self.name}: a batch of {batch.shape[0]} is more than this runtime accepts "
                                  f"(max_batch {self.max_batch}); split it into batches of at most {self.max_batch}")
        return np.ascontiguousarray(batch, dtype=np.float32)

    def deactivate(self) -> None:
        if self.is_active:
            self._deactivate_impl()
            self.is_active = False

    def describe(self) -> str:
        return f"{self.name} ({self.provider}, {self.precision})"

    def __enter__(self) -> "Runtime":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    # -- what a backend provides -----------------------------------------------------------
    @abstractmethod
    def _activate_impl(self) -> None:
        """Load the artefact; set self.contract, self.provider, self.precision (and self.max_batch if bounded)."""

    @abstractmethod
    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run a validated, contiguous float32 batch."""

    def _infer_staged_impl(self, batch: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Device runtimes: run `batch` timing h2d / inference / d2h in milliseconds, syncing between them."""
        raise NotImplementedError

    def _deactivate_impl(self) -> None:
        """Release the session/model; the default drops nothing."""

    def _info_impl(self) -> dict:
        """`RuntimeInfo` fields this backend knows better than the defaults, by name: `artefact` (when it is not
        the file `self.artefact` names, or was already read), `device`, `instances`, `extra`."""
        return {}

    # -- private helpers -------------------------------------------------------------------
    def _described(self) -> RuntimeInfo:
        fields = {"device": str(self.device), "instances": 1, **self._info_impl()}
        if "artefact" not in fields:
            fields["artefact"] = _artefact_file_info(self.artefact)
        artefact = fields["artefact"]
        return RuntimeInfo(runtime=self.name, provider=self.provider, precision=self.precision,
                           max_batch=self.max_batch, arch=self.arch or (artefact.arch if artefact else None), **fields)


def _artefact_file_info(artefact) -> ArtefactInfo | None:
    """`artefacts.inspect` of a file artefact; None for a model in memory, a builder, or a name of no known kind."""
    if not isinstance(artefact, (str, Path)):
        return None
    if not Path(artefact).name.lower().endswith(tuple(s for suffixes in KINDS.values() for s in suffixes)):
        return None
    return inspect(artefact)
