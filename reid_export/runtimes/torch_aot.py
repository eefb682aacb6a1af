"""An AOTInductor package (`.pt2`, written by `reid-export aot`) run in this process (the `torch-aot` runtime):
the model compiled ahead of time to a shared library, loaded with `torch._inductor.aoti_load_package`. Nothing
is compiled here, so activation takes seconds where `torch-compile` takes minutes.

    with make_runtime("torch-aot", "engines/model.pt2") as rt:
        out = rt.infer(batch)            # {"embedding": (N, D)[, "attributes": (N, 30)]}

The package's metadata (the contract, the model, the precision, the output names, and the vector ISA
AOTInductor compiled for) is read by `artefacts.torch_package`, its one owner: a package built for AVX-512 is
refused on a CPU without it rather than run into an illegal instruction. (The registry imports this module
only when the runtime is asked for.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..artefacts.torch_package import package_info
from ..errors import ExportError, RuntimeUnavailable
from .base import Runtime

__all__ = ["TorchAotRuntime", "cpu_isas"]


class TorchAotRuntime(Runtime):
    name = "torch-aot"

    def __init__(self, artefact, *, device: str = "cpu"):
        super().__init__(artefact, device=device)
        self.metadata: dict[str, str] = {}  # the package's metadata, as read on activate()
        self.model_info: dict = {}  # MODEL_KEY, parsed: arch, embedding_dim, ...
        self._package = None
        self._outputs: list[str] = []

    def _activate_impl(self) -> None:
        if self.device != "cpu":
            raise RuntimeUnavailable(f"torch-aot: packages are compiled for the CPU here; got device {self.device}")
        path = Path(self.artefact)
        if not path.is_file():
            raise ExportError(f"{path}: no such AOTInductor package; write one with `reid-export aot CKPT -o {path}`")
        try:
            package = torch._inductor.aoti_load_package(str(path))
        except Exception as e:  # the loader's own errors: not a zip, another torch's archive, a GPU package
            raise ExportError(f"{path}: not an AOTInductor package this torch ({torch.__version__}) can load "
                              f"({type(e).__name__}: {' '.join(str(e).split())[:200]}); "
                              f"re-export it with `reid-export aot CKPT -o {path}`") from e
        info = package_info(dict(package.get_metadata()), source=path)
        _check_isa(info.isa, path)
        self.contract, self.precision = info.contract, info.precision
        self.metadata, self.model_info, self._package = info.metadata, info.model, package
        self.arch = self.model_info.get("arch")
        self._outputs = list(info.outputs)
        self.provider = f"cpu (AOTInductor, {info.isa or 'scalar'} kernels)"

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = self._package(torch.from_numpy(batch))
        tensors = [out] if isinstance(out, torch.Tensor) else list(out)
        return {name: t.float().numpy() for name, t in zip(self._outputs, tensors)}

    def _deactivate_impl(self) -> None:
        self._package = None


def cpu_isas() -> set[str]:
    """The vector ISAs inductor can use on this CPU, as AOTInductor names them ("AVX2", "AVX512", ...)."""
    from torch._inductor.cpu_vec_isa import valid_vec_isa_list

    return {str(isa).upper().split()[0] for isa in valid_vec_isa_list() if str(isa)}


def _check_isa(package_isa: str, path: Path) -> None:
    """A package whose kernels use a vector ISA this CPU lacks would die on an illegal instruction: refuse it."""
    wanted = package_isa.split()[0] if package_isa.strip() else ""
    here = cpu_isas()
    if wanted and wanted not in here:
        raise RuntimeUnavailable(f"torch-aot: {path} was compiled for {package_isa} and this CPU offers "
                                 f"{', '.join(sorted(here)) or 'no vector ISA inductor uses'}; run `reid-export aot` "
                                 "on this machine (or one like it) to compile a package for it")
