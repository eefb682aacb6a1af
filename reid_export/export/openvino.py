"""OpenVINO IR (`NAME.xml` + `NAME.bin`) from a reid-export ONNX file or checkpoint, contract inside.

    result = export_openvino("engines/model.onnx", "engines/model.xml")
    result = export_openvino("engines/model.onnx", "engines/model.nncf.xml", nncf_int8=True, calib_data="Market-1501")

The IR keeps the graph's precision and says so in its `rt_info` (read back by the `openvino` runtime,
under the same `reid_export.*` keys as the ONNX metadata): FP32 weights stay FP32 (OpenVINO's
default FP16 weight compression is turned off), a Q/DQ INT8 graph stays INT8. `nncf_int8` quantises
an FP32 graph with NNCF's post-training quantisation instead: the comparison for the project's own
Q/DQ INT8, calibrated on training images only (query and gallery images are refused, they would leak
the test set).

Parity: the IR under OpenVINO (FP32 arithmetic forced) against the ONNX source under ONNX Runtime, on
the same batch; below the precision's threshold the IR is removed and ExportError says by how much.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..artefacts.onnx_metadata import CALIBRATION_KEY, PRECISION_KEY, read_onnx_info
from ..artefacts.openvino_ir import import_openvino, set_ir_metadata
from ..checkpoint import load_model
from ..errors import ExportError
from ..evaluation.agreement import embedding_agreement
from ..files import ENGINES_DIR, refuse_existing
from ..runtimes import make_runtime
from .onnx import export_onnx
from .precision import calibration_images, calibration_record, refuse_evaluation_images
from .verify import DEFAULT_MIN_COSINE, PARITY_IMAGES, sample_batch

__all__ = ["OpenVinoExport", "default_ir_path", "export_openvino", "is_ir_xml"]


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


def default_ir_path(artefact: str | Path, *, nncf_int8: bool = False) -> Path:
    stem = Path(artefact).name.removesuffix(".onnx").removesuffix(".pt").removesuffix(".pth")
    return ENGINES_DIR / f"{stem}{'.nncf-int8' if nncf_int8 else ''}.xml"


def export_openvino(artefact: str | Path, out: str | Path | None = None, *, nncf_int8: bool = False,
                    calib_data: str | Path | None = None, calib_images: int = 300, data: str | Path | None = None,
                    min_cosine: float | None = None, overwrite: bool = False, progress: bool = True) -> OpenVinoExport:
    """Convert `artefact` (reid-export .onnx, or a checkpoint exported to ONNX on the way) to IR at `out`."""
    ov = import_openvino()
    artefact = Path(artefact)
    out = Path(out) if out is not None else default_ir_path(artefact, nncf_int8=nncf_int8)
    if out.suffix != ".xml":
        raise ExportError(f"{out}: an OpenVINO IR is NAME.xml (with NAME.bin next to it); use -o {out.with_suffix('.xml')}")
    refuse_existing(out, overwrite=overwrite, error=ExportError, inputs=(artefact,), own=is_ir_xml,
                    kind="an OpenVINO IR (NAME.xml)")
    refuse_existing(out.with_suffix(".bin"), overwrite=overwrite, error=ExportError, inputs=(artefact,),
                    own=lambda _: is_ir_xml(out), kind=f"the weights of an OpenVINO IR {out.name}")
    if nncf_int8 and calib_data is None:
        raise ExportError("--nncf-int8 needs --calib-data DIR: a Market-1501 folder whose bounding_box_train/ "
                          "images calibrate the activation ranges")
    with tempfile.TemporaryDirectory(prefix="reid-openvino-") as tmp:
        source = artefact
        if artefact.suffix.lower() in (".pt", ".pth"):
            source = export_onnx(load_model(artefact), Path(tmp) / "fp32.onnx")
        elif artefact.suffix.lower() != ".onnx":
            raise ExportError(f"{artefact}: give a reid-export ONNX file (.onnx) or checkpoint (.pt/.pth)")
        info = read_onnx_info(source)  # the contract must be there: refuse foreign ONNX before converting
        if nncf_int8 and info.precision != "fp32":
            raise ExportError(f"{artefact} is already {info.precision}; NNCF quantises an FP32 graph: "
                              "give the FP32 ONNX (the project's own INT8 runs in OpenVINO as it is)")
        model = ov.Core().read_model(str(source))
        meta, calibration = dict(info.metadata), None
        if nncf_int8:
            model, calibration = _nncf_quantize(model, info.contract, calibration_images(calib_data, calib_images),
                                                progress)
            meta |= {PRECISION_KEY: "int8", CALIBRATION_KEY: json.dumps(calibration, sort_keys=True)}
        set_ir_metadata(model, meta)
        _save_atomically(ov, model, out)
        batch, where = sample_batch(info.contract, data, n=PARITY_IMAGES)
        parity = _parity(source, out, batch)
    precision = meta.get(PRECISION_KEY, "fp32")
    threshold = DEFAULT_MIN_COSINE.get(precision, DEFAULT_MIN_COSINE["fp32"]) if min_cosine is None else min_cosine
    if parity["cosine_min"] < threshold:
        for path in (out, out.with_suffix(".bin")):
            path.unlink(missing_ok=True)
        raise ExportError(f"{out}: OpenVINO does not reproduce the ONNX graph closely enough (min cosine "
                          f"{parity['cosine_min']:.6f} < {threshold} on {where}), so the IR was deleted; "
                          "--min-cosine changes the bar")
    return OpenVinoExport(path=out, precision=precision, source=artefact, parity=parity, parity_source=where,
                          threshold=threshold, calibration=calibration)


def is_ir_xml(path: str | Path) -> bool:
    """Whether `path` is an OpenVINO IR's XML (its root element is <net>), read from its first 4 kB."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return re.search(rb"^\s*(<\?xml[^>]*\?>\s*)?(<!--.*?-->\s*)*<net[\s>]", head, re.DOTALL) is not None


def _nncf_quantize(model, contract, paths: list[Path], progress: bool):
    """NNCF post-training INT8 on `paths` (training images, one per calibration sample)."""
    try:
        import nncf
    except ImportError as e:
        raise ExportError('--nncf-int8 needs NNCF: pip install "reid-export[openvino]"') from e
    refuse_evaluation_images(paths)
    if progress:
        print(f"[nncf] calibrating on {len(paths)} training images")
    dataset = nncf.Dataset(paths, lambda path: contract.load_batch([path]))
    quantized = nncf.quantize(model, dataset, subset_size=len(paths))
    record = {"method": f"nncf-{nncf.__version__}", **calibration_record(paths)}
    return quantized, record


def _save_atomically(ov, model, out: Path) -> None:
    """Write NAME.xml + NAME.bin into a temporary folder next to `out`, then move both in (.bin first, so
    an .xml never points at a missing or older .bin)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        staged = Path(tmp) / out.name
        ov.save_model(model, str(staged), compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), out.with_suffix(".bin"))
        os.replace(staged, out)


def _parity(onnx_path: Path, ir_path: Path, batch) -> dict:
    with make_runtime("onnxruntime", onnx_path) as ort, make_runtime("openvino", ir_path) as ov_rt:
        return embedding_agreement(ort.infer(batch)["embedding"], ov_rt.infer(batch)["embedding"])
