"""`reid-export openvino` as one library call: a reid-export ONNX file or checkpoint -> OpenVINO IR
(`export.openvino`) -> parity of the IR against its ONNX source.

    result = export_openvino("engines/model.onnx", "engines/model.xml")
    result = export_openvino("engines/model.onnx", "engines/model.nncf.xml", nncf_int8=True, calib_data="Market-1501")

Parity: the IR under OpenVINO (FP32 arithmetic forced) against the ONNX source under ONNX Runtime, on the same
batch (`parity.sample_batch`); below the precision's threshold the IR is removed and ExportError says by how much.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..artefacts.onnx_metadata import PRECISION_KEY
from ..artefacts.openvino_ir import import_openvino
from ..checkpoint import load_model
from ..errors import ExportError
from ..evaluation.agreement import embedding_agreement
from ..export.onnx import export_onnx
from ..export.openvino import check_ir_options, default_ir_path, write_ir
from ..export.settings import DEFAULT_MIN_COSINE
from ..runtimes import make_runtime
from .parity import PARITY_IMAGES, sample_batch

__all__ = ["OpenVinoExport", "export_openvino"]


@dataclass(frozen=True)
class OpenVinoExport:
    path: Path  # the .xml (its .bin sits next to it)
    precision: str  # fp32 | fp16 | int8, as recorded in rt_info
    source: Path  # the ONNX graph it was converted from (a temporary one for a checkpoint)
    parity: dict  # cosine_min / cosine_mean / max_abs_diff of OpenVINO vs ONNX Runtime on the source
    parity_source: str  # where the parity batch came from
    threshold: float  # the min cosine it had to reach
    calibration: dict | None = None  # NNCF INT8: images, source folder, file-name hash

    def summary(self) -> str:
        return (f"wrote {self.path} (+ {self.path.with_suffix('.bin').name}, {self.precision}); parity vs ONNX Runtime "
                f"on {self.parity_source}: min cosine {self.parity['cosine_min']:.6f} (threshold {self.threshold})")


def export_openvino(artefact: str | Path, out: str | Path | None = None, *, nncf_int8: bool = False,
                    calib_data: str | Path | None = None, calib_images: int = 300, data: str | Path | None = None,
                    min_cosine: float | None = None, overwrite: bool = False, progress: bool = True) -> OpenVinoExport:
    """Convert `artefact` (reid-export .onnx, or a checkpoint exported to ONNX on the way) to IR at `out`."""
    import_openvino()  # not installed: say so before anything else
    artefact = Path(artefact)
    out = Path(out) if out is not None else default_ir_path(artefact, nncf_int8=nncf_int8)
    check_ir_options(artefact, out, overwrite=overwrite, nncf_int8=nncf_int8, calib_data=calib_data)
    with tempfile.TemporaryDirectory(prefix="reid-openvino-") as tmp:
        source = artefact
        if artefact.suffix.lower() in (".pt", ".pth"):
            source = export_onnx(load_model(artefact), Path(tmp) / "fp32.onnx")
        elif artefact.suffix.lower() != ".onnx":
            raise ExportError(f"{artefact}: give a reid-export ONNX file (.onnx) or checkpoint (.pt/.pth)")
        info, calibration = write_ir(source, out, nncf_int8=nncf_int8, calib_data=calib_data,
                                     calib_images=calib_images, progress=progress)
        batch, where = sample_batch(info.contract, data, n=PARITY_IMAGES)
        parity = _parity(source, out, batch)
    precision = "int8" if nncf_int8 else info.metadata.get(PRECISION_KEY, "fp32")
    threshold = DEFAULT_MIN_COSINE.get(precision, DEFAULT_MIN_COSINE["fp32"]) if min_cosine is None else min_cosine
    if parity["cosine_min"] < threshold:
        for path in (out, out.with_suffix(".bin")):
            path.unlink(missing_ok=True)
        raise ExportError(f"{out}: OpenVINO does not reproduce the ONNX graph closely enough (min cosine "
                          f"{parity['cosine_min']:.6f} < {threshold} on {where}), so the IR was deleted; "
                          "--min-cosine changes the bar")
    return OpenVinoExport(path=out, precision=precision, source=artefact, parity=parity, parity_source=where,
                          threshold=threshold, calibration=calibration)


def _parity(onnx_path: Path, ir_path: Path, batch) -> dict:
    with make_runtime("onnxruntime", onnx_path) as ort, make_runtime("openvino", ir_path) as ov_rt:
        return embedding_agreement(ort.infer(batch)["embedding"], ov_rt.infer(batch)["embedding"])
