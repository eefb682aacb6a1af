"""`reid-export onnx` as one library call: load the weights, export at a precision, verify parity.

    result = export_model("runs/model.pt", precision="int8", calib_data="Market-1501", data="Market-1501")
    result.path, result.parity.passed, result.embedding, result.int8_search

The output path defaults to `engines/<name>[.fp16|.int8].onnx`; the parity rule is `parity.verify_export`,
the same one the demo uses. The embedding is the checkpoint's choice (made on validation ids in training)
unless `options.embedding` names one; attribute outputs are on when the model has heads unless
`options.with_attributes` says otherwise. With `options.int8_search`, INT8 goes through
`int8_search.int8_with_accuracy_control` on the validation ids the checkpoint recorded.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..artefacts.onnx_metadata import OnnxInfo, read_onnx_info
from ..checkpoint import Checkpoint, load_model
from ..errors import ExportError
from ..export.onnx import export_onnx, refuse_onnx_output
from ..export.precision import export_at_precision
from ..export.settings import ExportOptions
from ..files import ENGINES_DIR
from ..models import torch_load, with_embedding
from .int8_search import SearchResult, int8_with_accuracy_control
from .parity import ParityResult, verify_export

__all__ = ["ExportResult", "export_model", "export_loaded_model", "default_output", "recorded_validation_ids"]


@dataclass(frozen=True)
class ExportResult:
    path: Path  # the file written (or NAME.failed.onnx / deleted when parity failed)
    info: OnnxInfo | None  # what the file says about itself; None when parity failed
    parity: ParityResult
    embedding_dim: int
    embedding: str = "neck"  # the feature the file outputs: "neck" or "pooled"
    with_attributes: bool = False  # the file has the attributes output
    int8_search: SearchResult | None = None  # accuracy-controlled INT8: steps, FP32 layers, whether the bound was met


def default_output(artefact: str | Path, precision: str) -> Path:
    """engines/<artefact name>[.fp16|.int8].onnx"""
    suffix = "" if precision == "fp32" else f".{precision}"
    return ENGINES_DIR / f"{Path(artefact).stem}{suffix}.onnx"


def recorded_validation_ids(artefact: str | Path) -> list[int] | None:
    """The training ids a reid-export checkpoint held out for validation; None for other files."""
    obj = torch_load(artefact)
    return Checkpoint.from_dict(obj, source=str(artefact)).validation_ids if Checkpoint.holds(obj) else None


def export_model(artefact: str | Path, out: str | Path | None = None, options: ExportOptions = ExportOptions(), *,
                 calib_data: str | Path | None = None, data: str | Path | None = None,
                 input_size: tuple[int | None, int | None] | None = None,
                 mean: tuple[float, float, float] | None = None, std: tuple[float, float, float] | None = None,
                 config: dict | None = None, progress: bool = True, log=print) -> ExportResult:
    """Export a checkpoint (or bare backbone, or another project's weights) to ONNX and check it against
    PyTorch on `data`'s images (random tensors without `data`). `input_size`, `mean`, `std` override the
    contract (`checkpoint.load_model`); `config` is the foreign project's parsed config file (fast-reid's YAML)."""
    out = Path(out) if out is not None else default_output(artefact, options.precision)
    refuse_onnx_output(out, overwrite=options.overwrite, inputs=(artefact,))  # before any work
    model = load_model(artefact, input_size=input_size, mean=mean, std=std, config=config, log=log)
    validation_ids = recorded_validation_ids(artefact) if options.int8_search is not None else None
    return export_loaded_model(model, out, options, calib_data=calib_data, data=data, validation_ids=validation_ids,
                               progress=progress, log=log)


def export_loaded_model(model, out: Path, options: ExportOptions = ExportOptions(), *,
                        calib_data: str | Path | None = None, data: str | Path | None = None,
                        validation_ids: list[int] | None = None, progress: bool = True, log=print) -> ExportResult:
    """`export_model` for a model already in memory (a ReidNet, or a `factory.FactoryNet`): export at the
    precision, then the parity check. `validation_ids`: the training ids INT8 accuracy control measures on."""
    if options.embedding != "auto":
        model = with_embedding(model, options.embedding)
    with_attributes = model.attribute_head is not None if options.with_attributes is None else options.with_attributes
    onnx_options = {"opset": options.opset, "l2_normalize": options.l2_normalize, "with_attributes": with_attributes,
                    "exporter": options.exporter}
    search = None
    if options.int8_search is not None:
        if calib_data is None:
            raise ExportError("--max-map-drop needs --calib-data DIR: a Market-1501 folder whose bounding_box_train/ "
                              "gives the calibration images and the validation ids the mAP is measured on")
        with tempfile.TemporaryDirectory(prefix="reid-export-") as tmp:
            fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", **onnx_options)
            search = int8_with_accuracy_control(fp32, out, calib_data=calib_data, settings=options.int8,
                                                search=options.int8_search,
                                                validation_ids=validation_ids,
                                                progress=progress, log=log)
        path = search.path
    else:
        path = export_at_precision(model, out, precision=options.precision, calib_data=calib_data, int8=options.int8,
                                   overwrite=options.overwrite, progress=progress, **onnx_options)
    parity = verify_export(model, path, precision=options.precision, data=data, min_cosine=options.min_cosine,
                           keep_failed=options.keep_failed)
    info = read_onnx_info(parity.path) if parity.passed else None
    return ExportResult(path=parity.path, info=info, parity=parity, embedding_dim=model.config.embedding_dim,
                        embedding=model.config.embedding, with_attributes=with_attributes, int8_search=search)
