"""AOTInductor export (`reid-export aot`): a checkpoint -> `torch.export` with a dynamic batch axis ->
`torch._inductor.aoti_compile_and_package` -> one `.pt2` file that PyTorch loads without Python model code
and without ONNX, then parity against the eager model.

    result = export_aot("runs/model.pt", "engines/model.pt2", data="Market-1501")
    result.path, result.parity.passed, result.compile_seconds

The graph is the ONNX export's (`onnx.EmbeddingModel`: embedding, L2-normalised when the contract says so, and
the attribute probabilities with `with_attributes`), its weights frozen into the compiled kernels. The
preprocessing contract, the model, the precision and the output names travel in the package's metadata under
the keys `runtimes.torch_aot` reads back. Compiling takes minutes on 2 cores; without a C++ compiler the
export stops before any work, saying so.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .. import __version__
from ..artefacts.onnx_metadata import (ATTRIBUTES_NAME, EMBEDDING_NAME, METADATA_KEY, MODEL_KEY, PRECISION_KEY,
                                       VERSION_KEY)
from ..checkpoint import load_model
from ..contract import Preprocess
from ..errors import ExportError
from ..files import ENGINES_DIR, atomic_path, check_writable_dir, refuse_existing
from ..models import ReidNet, with_embedding
from ..runtimes.torch_aot import OUTPUTS_KEY
from ..runtimes.torch_compile import inductor_compiler
from .onnx import EmbeddingModel, model_description
from .settings import DEFAULT_MIN_COSINE, EMBEDDING_CHOICES
from .verify import PARITY_IMAGES, ParityResult, check_parity, sample_batch

__all__ = ["AotResult", "MAX_BATCH", "export_aot", "write_aot_package", "default_aot_output", "is_aot_package"]

MAX_BATCH = 4096  # the largest batch the package accepts (the exported batch axis runs 1..MAX_BATCH)


@dataclass(frozen=True)
class AotResult:
    path: Path  # the package written (or NAME.failed.pt2 / deleted when parity failed)
    parity: ParityResult
    contract: Preprocess  # what the package's metadata holds
    embedding: str  # the feature it outputs: "neck" or "pooled"
    embedding_dim: int
    with_attributes: bool  # it also outputs the attribute probabilities
    compile_seconds: float  # torch.export + AOTInductor compilation and packaging


def default_aot_output(artefact: str | Path) -> Path:
    """engines/<artefact name>.pt2"""
    return ENGINES_DIR / f"{Path(artefact).stem}.pt2"


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
    parity = _verify(model, out, data=data, min_cosine=min_cosine, keep_failed=keep_failed)
    contract = replace(model.config.preprocess, l2_normalized=l2_normalize)
    return AotResult(path=parity.path, parity=parity, contract=contract, embedding=model.config.embedding,
                     embedding_dim=model.config.embedding_dim, with_attributes=with_attributes,
                     compile_seconds=seconds)


def write_aot_package(model: ReidNet, out: str | Path, *, l2_normalize: bool = True,
                      with_attributes: bool = False) -> Path:
    """`torch.export` the model's embedding graph with batch 1..MAX_BATCH, compile it with AOTInductor (weights
    frozen) and write the package to `out` atomically, the contract and model in its metadata."""
    if with_attributes and model.attribute_head is None:
        raise ExportError("--with-attributes: this model has no attribute heads; train with attributes "
                          "(a recipe with `attributes = true` and a market_attribute.mat) or export without it")
    contract = replace(model.config.preprocess, l2_normalized=l2_normalize)
    wrapper = EmbeddingModel(model, l2_normalize, with_attributes).eval().cpu()
    outputs = [EMBEDDING_NAME, ATTRIBUTES_NAME] if with_attributes else [EMBEDDING_NAME]
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        program = torch.export.export(wrapper, (torch.zeros(2, *contract.input_shape),),
                                      dynamic_shapes={"x": {0: batch}})
    metadata = {METADATA_KEY: contract.to_json(), PRECISION_KEY: "fp32", VERSION_KEY: __version__,
                MODEL_KEY: json.dumps(model_description(model), sort_keys=True), OUTPUTS_KEY: json.dumps(outputs)}
    with atomic_path(out) as tmp, open(tmp, "wb") as f:  # a file object: the temporary name does not end in .pt2
        torch._inductor.aoti_compile_and_package(program, package_path=f, inductor_configs={
            "aot_inductor.metadata": metadata, "freezing": True})
    return Path(out)


def is_aot_package(path: str | Path) -> bool:
    """Whether `path` is a zip archive holding an AOTInductor model (what --overwrite may replace)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/data/aotinductor/" in f"/{name}" for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _verify(model: ReidNet, path: Path, *, data, min_cosine: float | None, keep_failed: bool) -> ParityResult:
    """The package against the eager model on one batch; below the FP32 bar it is deleted or renamed."""
    threshold = DEFAULT_MIN_COSINE["fp32"] if min_cosine is None else min_cosine
    batch, source = sample_batch(model.config.preprocess, data, n=PARITY_IMAGES)
    parity = check_parity(model, path, batch, runtime="torch-aot")
    passed, final, removed = parity["cosine_min"] >= threshold, path, False
    if not passed and keep_failed:
        final = path.with_name(path.name.removesuffix(".pt2") + ".failed.pt2")
        os.replace(path, final)
    elif not passed:
        path.unlink(missing_ok=True)
        removed = True
    return ParityResult(path=final, passed=passed, threshold=threshold, source=source, removed=removed,
                        cosine_min=parity["cosine_min"], cosine_mean=parity["cosine_mean"],
                        max_abs_diff=parity["max_abs_diff"])
