"""Core ML export (`reid-export coreml`): a checkpoint -> `torch.export` with a dynamic batch axis -> `coremltools`
ML program (FP32 compute) -> a `.mlpackage`, then a spec check of the saved package.

    result = export_coreml("runs/model.pt", "engines/model.mlpackage")
    result.path, result.spec   # what the saved package says: input, outputs, contract, precision

Core ML runs only on Apple platforms, so on Linux the package is converted and saved but never run: no parity
check is possible here. The spec check instead reads the saved package back (`artefacts.coreml_package`) and
checks that its input is the contract's (N, 3, H, W) with a flexible batch, its outputs are the graph's, and its
`user_defined_metadata` holds the same contract, precision and model. Run it on a Mac to measure parity.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..artefacts.coreml_package import is_mlpackage, read_mlpackage_info, save_mlpackage
from ..artefacts.edge_metadata import EdgeInfo
from ..artefacts.onnx_metadata import INPUT_NAME
from ..checkpoint import load_model
from ..errors import ExportError
from ..files import ENGINES_DIR, check_writable_dir, refuse_own_input
from ..models import ReidNet, with_embedding
from .pt2e import EdgeGraph, edge_graph, graph_metadata
from .settings import EMBEDDING_CHOICES

__all__ = ["MAX_BATCH", "CoremlResult", "check_coreml_spec", "export_coreml", "write_coreml_package"]

MAX_BATCH = 256  # the package's batch axis runs 1..MAX_BATCH (a Core ML RangeDim needs an upper bound)


@dataclass(frozen=True)
class CoremlResult:
    path: Path
    spec: EdgeInfo  # the saved package as read back (input, outputs, contract, precision, model)

    def summary(self) -> str:
        c, s = self.spec.contract, self.spec
        return (f"wrote {self.path} (Core ML ML program, {s.precision}, input {c.height}x{c.width}, batch 1-{MAX_BATCH}, "
                f"outputs {', '.join(name for name, _ in s.outputs)}); spec check passed: input, outputs and "
                "metadata read back from the saved package. Core ML runs only on macOS/iOS: no parity check on Linux")


def export_coreml(artefact: str | Path, out: str | Path | None = None, *, embedding: str = "auto",
                  with_attributes: bool | None = None, l2_normalize: bool = True, overwrite: bool = False,
                  log=print) -> CoremlResult:
    """Convert the checkpoint `artefact` to the Core ML package `out` and check the saved package's spec."""
    if embedding not in EMBEDDING_CHOICES:
        raise ExportError(f"unknown embedding {embedding!r}; choose one of {', '.join(EMBEDDING_CHOICES)}")
    out = Path(out) if out is not None else ENGINES_DIR / f"{Path(artefact).stem}.mlpackage"
    if out.suffix != ".mlpackage":
        raise ExportError(f"-o {out}: a Core ML package's name must end in .mlpackage; e.g. -o engines/model.mlpackage")
    refuse_own_input(out, (artefact,), option="-o", error=ExportError)
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; pass --overwrite to replace it, or choose another -o path")
    if out.exists() and not is_mlpackage(out):
        raise ExportError(f"{out} exists and is not a Core ML package, so --overwrite does not replace it; "
                          "choose another -o path")
    check_writable_dir(out.parent, what=f"-o {out}: its folder")
    model = load_model(artefact, log=log)
    if embedding != "auto":
        model = with_embedding(model, embedding)
    with_attributes = model.attribute_head is not None if with_attributes is None else with_attributes
    graph = edge_graph(model, l2_normalize=l2_normalize, with_attributes=with_attributes)
    path = write_coreml_package(model, out, graph=graph, overwrite=overwrite)
    return CoremlResult(path=path, spec=check_coreml_spec(path, graph))


def write_coreml_package(model: ReidNet, out: str | Path, *, graph: EdgeGraph | None = None,
                         overwrite: bool = False) -> Path:
    """Convert `model` (its edge graph) to an FP32 ML program with a flexible batch and save it as `out`."""
    import coremltools as ct  # lazy: the edge extra

    graph = graph or edge_graph(model)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        program = torch.export.export(graph.module, graph.example(), dynamic_shapes={"x": {0: batch}})
        program = program.run_decompositions({})
    shape = ct.Shape(shape=(ct.RangeDim(lower_bound=1, upper_bound=MAX_BATCH, default=1), *graph.contract.input_shape))
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")  # untested torch version, no libcoremlpython on Linux: said in the docs
        mlmodel = ct.convert(program, inputs=[ct.TensorType(name=INPUT_NAME, shape=shape)],
                             outputs=[ct.TensorType(name=name) for name in graph.outputs], convert_to="mlprogram",
                             compute_precision=ct.precision.FLOAT32, skip_model_load=True)
    return save_mlpackage(mlmodel, out, graph_metadata(graph, precision="fp32"), overwrite=overwrite)


def check_coreml_spec(path: str | Path, graph: EdgeGraph) -> EdgeInfo:
    """The saved package against the graph it came from: input name and shape (flexible batch), output names,
    and the contract, precision and model in its metadata; an ExportError names the first difference."""
    spec = read_mlpackage_info(path)
    expected_input = (-1, *graph.contract.input_shape)
    found = {"input name": spec.extras.get("input_name"), "input shape": tuple(spec.inputs[0][1]),
             "output names": tuple(spec.extras.get("output_names") or ()), "contract": spec.contract,
             "precision": spec.precision, "model": spec.model}
    wanted = {"input name": INPUT_NAME, "input shape": expected_input, "output names": graph.outputs,
              "contract": graph.contract, "precision": "fp32", "model": graph.model_info}
    for key, value in wanted.items():
        if found[key] != value:
            raise ExportError(f"{path}: spec check failed: its {key} is {found[key]!r}, expected {value!r}; the "
                              "conversion did not keep it (a coremltools version change?): report it with the "
                              "coremltools version, and do not ship this package")
    return spec
