"""`reid-export executorch` and `reid-export litert` as one library call each: a checkpoint -> an edge artefact
(`export.executorch`, `export.litert`; FP32, or INT8 calibrated on training images only) -> parity against the
eager model on the format's own runtime (`executorch`, `litert`) with the precision's bar (`parity.verify_export`).

    result = export_edge("executorch", "runs/model.pt", "engines/model.pte", data="Market-1501")
    result = export_edge("litert", "runs/model.pt", "engines/model.int8.tflite", int8=True, calib_data="Market-1501")
    result.path, result.parity.passed, result.convert_seconds

An INT8 artefact is kept only if it holds the INT8 bar (min cosine against PyTorch FP32, `DEFAULT_MIN_COSINE`);
otherwise it is deleted (or kept as NAME.failed.pte / .tflite with `keep_failed`) and the result says so.
(Core ML cannot run on Linux: `export.coreml` converts and checks the spec, without parity.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..artefacts.executorch_program import is_pte_file
from ..artefacts.litert_model import is_tflite_file
from ..checkpoint import load_model
from ..contract import Preprocess
from ..errors import ExportError
from ..export.executorch import write_executorch_program
from ..export.litert import write_litert_model
from ..export.precision import calibration_images
from ..export.settings import EMBEDDING_CHOICES, Int8Settings
from ..files import ENGINES_DIR, check_writable_dir, refuse_existing
from ..models import with_embedding
from .parity import ParityResult, verify_export

__all__ = ["EDGE_FORMATS", "EdgeResult", "default_edge_output", "export_edge"]

_INT8 = Int8Settings()  # calibration defaults: how many training images, which seed
# format -> (file suffix, writer, runtime that checks it, recogniser of a file --overwrite may replace)
EDGE_FORMATS = {"executorch": (".pte", write_executorch_program, "executorch", is_pte_file),
                "litert": (".tflite", write_litert_model, "litert", is_tflite_file)}


@dataclass(frozen=True)
class EdgeResult:
    format: str  # executorch | litert
    path: Path  # the artefact written (or NAME.failed.<suffix> / deleted when parity failed)
    precision: str  # fp32 | int8
    parity: ParityResult
    contract: Preprocess
    embedding: str  # the feature it outputs: "neck" or "pooled"
    embedding_dim: int
    with_attributes: bool
    convert_seconds: float  # export (calibration included) and writing

    def summary(self) -> str:
        c = self.contract
        return (f"wrote {self.path} ({self.format}, {self.precision}, input {c.height}x{c.width}, embedding "
                f"{self.embedding} {self.embedding_dim}-D{', with attributes' if self.with_attributes else ''}; "
                f"converted in {self.convert_seconds:.1f} s)")


def default_edge_output(fmt: str, artefact: str | Path, int8: bool) -> Path:
    """engines/<artefact name>[.int8].pte|.tflite"""
    return ENGINES_DIR / f"{Path(artefact).stem}{'.int8' if int8 else ''}{EDGE_FORMATS[fmt][0]}"


def export_edge(fmt: str, artefact: str | Path, out: str | Path | None = None, *, int8: bool = False,
                calib_data: str | Path | None = None, int8_settings: Int8Settings = _INT8,
                embedding: str = "auto", with_attributes: bool | None = None, l2_normalize: bool = True,
                data: str | Path | None = None, min_cosine: float | None = None, keep_failed: bool = False,
                overwrite: bool = False, progress: bool = True, log=print) -> EdgeResult:
    """Export the checkpoint `artefact` to the edge format `fmt` and check it against the eager model on `data`'s
    images (random tensors without `data`) on the format's runtime; a failing file is deleted or renamed."""
    if fmt not in EDGE_FORMATS:
        raise ExportError(f"unknown edge format {fmt!r}; choose one of {', '.join(EDGE_FORMATS)}")
    suffix, write, runtime, recognise = EDGE_FORMATS[fmt]
    if embedding not in EMBEDDING_CHOICES:
        raise ExportError(f"unknown embedding {embedding!r}; choose one of {', '.join(EMBEDDING_CHOICES)}")
    out = Path(out) if out is not None else default_edge_output(fmt, artefact, int8)
    if out.suffix != suffix:
        raise ExportError(f"-o {out}: a {fmt} artefact's file name must end in {suffix} (the runtimes pick {runtime} "
                          f"by that suffix); e.g. -o engines/model{suffix}")
    if int8 and calib_data is None:
        raise ExportError("--int8 needs --calib-data DIR: a Market-1501 folder whose bounding_box_train/ images "
                          "calibrate the activation ranges (query and gallery images are never used)")
    if not int8 and calib_data is not None:
        raise ExportError("--calib-data calibrates INT8: add --int8, or leave --calib-data out for FP32")
    refuse_existing(out, overwrite=overwrite, error=ExportError, inputs=(artefact,), own=recognise,
                    kind=f"a {fmt} artefact ({suffix})")
    check_writable_dir(out.parent, what=f"-o {out}: its folder")
    calibration = calibration_images(calib_data, int8_settings.num_images, seed=int8_settings.seed) if int8 else None
    model = load_model(artefact, log=log)
    if embedding != "auto":
        model = with_embedding(model, embedding)
    with_attributes = model.attribute_head is not None if with_attributes is None else with_attributes
    t0 = time.perf_counter()
    write(model, out, calibration=calibration, l2_normalize=l2_normalize, with_attributes=with_attributes,
          progress=progress)
    seconds = round(time.perf_counter() - t0, 3)
    precision = "int8" if int8 else "fp32"
    parity = verify_export(model, out, precision=precision, data=data, min_cosine=min_cosine, keep_failed=keep_failed,
                           runtime=runtime)
    contract = replace(model.config.preprocess, l2_normalized=l2_normalize)
    return EdgeResult(format=fmt, path=parity.path, precision=precision, parity=parity, contract=contract,
                      embedding=model.config.embedding, embedding_dim=model.config.embedding_dim,
                      with_attributes=with_attributes, convert_seconds=seconds)
