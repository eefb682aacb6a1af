"""AOTInductor packaging (`reid-export aot`): a model -> `torch.export` with a dynamic batch axis ->
`torch._inductor.aoti_compile_and_package` -> one `.pt2` file that PyTorch loads without Python model code
and without ONNX.

    write_aot_package(model, "engines/model.pt2")   # `verified.aot.export_aot` adds the checks and parity

The graph is the ONNX export's (`onnx.EmbeddingModel`: embedding, L2-normalised when the contract says so, and
the attribute probabilities with `with_attributes`), its weights frozen into the compiled kernels. The
preprocessing contract, the model, the precision and the output names travel in the package's metadata
(`artefacts.torch_package`, which the `torch-aot` runtime and `reid-export inspect` read back). Compiling
takes minutes on 2 cores.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from .. import __version__
from ..artefacts.onnx_metadata import ATTRIBUTES_NAME, EMBEDDING_NAME
from ..artefacts.torch_package import package_metadata
from ..errors import ExportError
from ..files import ENGINES_DIR, atomic_path
from ..models import ReidNet
from .onnx import EmbeddingModel, model_description

__all__ = ["MAX_BATCH", "write_aot_package", "default_aot_output"]

MAX_BATCH = 4096  # the largest batch the package accepts (the exported batch axis runs 1..MAX_BATCH)


def default_aot_output(artefact: str | Path) -> Path:
    """engines/<artefact name>.pt2"""
    return ENGINES_DIR / f"{Path(artefact).stem}.pt2"


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
    metadata = package_metadata(contract, model_description(model), outputs=outputs, version=__version__)
    with atomic_path(out) as tmp, open(tmp, "wb") as f:  # a file object: the temporary name does not end in .pt2
        torch._inductor.aoti_compile_and_package(program, package_path=f, inductor_configs={
            "aot_inductor.metadata": metadata, "freezing": True})
    return Path(out)
