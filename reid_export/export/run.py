"""`reid-export onnx` as one library call: load the weights, export at a precision, verify parity.

    result = export_model("runs/model.pt", precision="int8", calib_data="Market-1501", data="Market-1501")
    result.path, result.parity.passed

The output path defaults to `engines/<name>[.fp16|.int8].onnx`; the parity rule is `verify.verify_export`,
the same one the demo uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..artefacts.onnx_metadata import OnnxInfo, read_onnx_info
from ..checkpoint import load_model
from ..files import ENGINES_DIR
from .precision import export_at_precision
from .settings import ExportOptions
from .verify import ParityResult, verify_export

__all__ = ["ExportResult", "export_model", "default_output"]


@dataclass(frozen=True)
class ExportResult:
    path: Path  # the file written (or NAME.failed.onnx / deleted when parity failed)
    info: OnnxInfo | None  # what the file says about itself; None when parity failed
    parity: ParityResult
    embedding_dim: int


def default_output(artefact: str | Path, precision: str) -> Path:
    """engines/<artefact name>[.fp16|.int8].onnx"""
    suffix = "" if precision == "fp32" else f".{precision}"
    return ENGINES_DIR / f"{Path(artefact).stem}{suffix}.onnx"


def export_model(artefact: str | Path, out: str | Path | None = None, options: ExportOptions = ExportOptions(), *,
                 calib_data: str | Path | None = None, data: str | Path | None = None,
                 input_size: tuple[int | None, int | None] | None = None, progress: bool = True) -> ExportResult:
    """Export a checkpoint (or bare backbone) to ONNX and check it against PyTorch on `data`'s images
    (random tensors without `data`)."""
    model = load_model(artefact, input_size=input_size)
    out = Path(out) if out is not None else default_output(artefact, options.precision)
    path = export_at_precision(model, out, precision=options.precision, calib_data=calib_data, int8=options.int8,
                               overwrite=options.overwrite, progress=progress, opset=options.opset,
                               l2_normalize=options.l2_normalize, with_attributes=options.with_attributes,
                               exporter=options.exporter)
    parity = verify_export(model, path, precision=options.precision, data=data, min_cosine=options.min_cosine,
                           keep_failed=options.keep_failed)
    info = read_onnx_info(parity.path) if parity.passed else None
    return ExportResult(path=parity.path, info=info, parity=parity, embedding_dim=model.config.embedding_dim)
