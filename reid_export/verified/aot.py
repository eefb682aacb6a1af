"""`reid-export aot` as one library call: a checkpoint -> an AOTInductor package (`export.aot`) -> parity against
the eager model on the `torch-aot` runtime (`parity.verify_export`).

    result = export_aot("runs/model.pt", "engines/model.pt2", data="Market-1501")
    result.path, result.parity.passed, result.compile_seconds

A package that fails parity is deleted, or kept as NAME.failed.pt2 with `keep_failed`. Without a C++
compiler the export stops before any work, saying so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..artefacts.torch_package import is_aot_package
from ..checkpoint import load_model
from ..contract import Preprocess
from ..errors import ExportError
from ..export.aot import default_aot_output, write_aot_package
from ..export.settings import EMBEDDING_CHOICES
from ..files import check_writable_dir, refuse_existing
from ..models import with_embedding
from ..models.inductor import inductor_compiler
from .parity import ParityResult, verify_export

__all__ = ["AotResult", "export_aot"]


@dataclass(frozen=True)
class AotResult:
    path: Path  # the package written (or NAME.failed.pt2 / deleted when parity failed)
    parity: ParityResult
    contract: Preprocess  # what the package's metadata holds
    embedding: str  # the feature it outputs: "neck" or "pooled"
    embedding_dim: int
    with_attributes: bool  # it also outputs the attribute probabilities
    compile_seconds: float  # torch.export + AOTInductor compilation and packaging


def export_aot(artefact: str | Path, out: str | Path | None = None, *, embedding: str = "auto",
               with_attributes: bool | None = None, l2_normalize: bool = True, data: str | Path | None = None,
               min_cosine: float | None = None, keep_failed: bool = False, overwrite: bool = False,
               log=print) -> AotResult:
    """Compile the checkpoint `artefact` into the AOTInductor package `out` and check it against the eager
    model on `data`'s images (random tensors without `data`); a package that fails parity is deleted, or kept
    as NAME.failed.pt2 with `keep_failed`."""
    if embedding not in EMBEDDING_CHOICES:
        raise ExportError(f"unknown embedding {embedding!r}; choose one of {', '.join(EMBEDDING_CHOICES)}")
    out = Path(out) if out is not None else default_aot_output(artefact)
    if out.suffix != ".pt2":
        raise ExportError(f"-o {out}: an AOTInductor package's file name must end in .pt2 (the runtimes pick "
                          "torch-aot by that suffix); e.g. -o engines/model.pt2")
    refuse_existing(out, overwrite=overwrite, error=ExportError, inputs=(artefact,), own=is_aot_package,
                    kind="an AOTInductor package (.pt2)")
    check_writable_dir(out.parent, what=f"-o {out}: its folder")
    inductor_compiler()  # no C++ compiler: say so now, not after loading and exporting
    model = load_model(artefact, log=log)
    if embedding != "auto":
        model = with_embedding(model, embedding)
    with_attributes = model.attribute_head is not None if with_attributes is None else with_attributes
    t0 = time.perf_counter()
    write_aot_package(model, out, l2_normalize=l2_normalize, with_attributes=with_attributes)
    seconds = round(time.perf_counter() - t0, 3)
    parity = verify_export(model, out, precision="fp32", data=data, min_cosine=min_cosine, keep_failed=keep_failed,
                           runtime="torch-aot")
    contract = replace(model.config.preprocess, l2_normalized=l2_normalize)
    return AotResult(path=parity.path, parity=parity, contract=contract, embedding=model.config.embedding,
                     embedding_dim=model.config.embedding_dim, with_attributes=with_attributes,
                     compile_seconds=seconds)
