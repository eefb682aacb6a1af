"""OpenVINO IR (`NAME.xml` + `NAME.bin`) from a reid-export ONNX file, contract inside.

    check_ir_options("engines/model.onnx", out, overwrite=False)      # before any work
    info, calibration = write_ir(Path("engines/model.onnx"), out)     # `verified.openvino` adds the parity check

The IR keeps the graph's precision and says so in its `rt_info` (`artefacts.openvino_ir`, read back by the
`openvino` runtime under the same `reid_export.*` keys as the ONNX metadata): FP32 weights stay FP32
(OpenVINO's default FP16 weight compression is turned off), a Q/DQ INT8 graph stays INT8. `nncf_int8`
quantises an FP32 graph with NNCF's post-training quantisation instead: the comparison for the project's own
Q/DQ INT8, calibrated on training images only (query and gallery images are refused, they would leak the
test set).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from ..artefacts.onnx_metadata import CALIBRATION_KEY, PRECISION_KEY, OnnxInfo, read_onnx_info
from ..artefacts.openvino_ir import import_openvino, set_ir_metadata
from ..errors import ExportError
from ..files import ENGINES_DIR, refuse_existing
from .precision import calibration_images, calibration_record, refuse_evaluation_images

__all__ = ["default_ir_path", "check_ir_options", "write_ir", "is_ir_xml"]


def default_ir_path(artefact: str | Path, *, nncf_int8: bool = False) -> Path:
    stem = Path(artefact).name.removesuffix(".onnx").removesuffix(".pt").removesuffix(".pth")
    return ENGINES_DIR / f"{stem}{'.nncf-int8' if nncf_int8 else ''}.xml"


def check_ir_options(artefact: str | Path, out: Path, *, overwrite: bool = False, nncf_int8: bool = False,
                     calib_data: str | Path | None = None) -> None:
    """What `write_ir` needs, checked before any work: `out` is NAME.xml, free (or an IR with `overwrite`, its
    .bin too, never the input), and NNCF has its calibration folder."""
    if out.suffix != ".xml":
        raise ExportError(f"{out}: an OpenVINO IR is NAME.xml (with NAME.bin next to it); use -o {out.with_suffix('.xml')}")
    refuse_existing(out, overwrite=overwrite, error=ExportError, inputs=(artefact,), own=is_ir_xml,
                    kind="an OpenVINO IR (NAME.xml)")
    refuse_existing(out.with_suffix(".bin"), overwrite=overwrite, error=ExportError, inputs=(artefact,),
                    own=lambda _: is_ir_xml(out), kind=f"the weights of an OpenVINO IR {out.name}")
    if nncf_int8 and calib_data is None:
        raise ExportError("--nncf-int8 needs --calib-data DIR: a Market-1501 folder whose bounding_box_train/ "
                          "images calibrate the activation ranges")


def write_ir(source: Path, out: Path, *, nncf_int8: bool = False, calib_data: str | Path | None = None,
             calib_images: int = 300, progress: bool = True) -> tuple[OnnxInfo, dict | None]:
    """Convert the reid-export ONNX `source` to the IR `out` (written atomically), its metadata in rt_info, INT8
    by NNCF with `nncf_int8` (after `check_ir_options`). Returns (the source's `OnnxInfo`, the NNCF calibration
    record or None); the IR's precision is the source's, or int8 with `nncf_int8`."""
    ov = import_openvino()
    info = read_onnx_info(source)  # the contract must be there: refuse foreign ONNX before converting
    if nncf_int8 and info.precision != "fp32":
        raise ExportError(f"{source} is already {info.precision}; NNCF quantises an FP32 graph: "
                          "give the FP32 ONNX (the project's own INT8 runs in OpenVINO as it is)")
    model = ov.Core().read_model(str(source))
    meta, calibration = dict(info.metadata), None
    if nncf_int8:
        model, calibration = _nncf_quantize(model, info.contract, calibration_images(calib_data, calib_images),
                                            progress)
        meta |= {PRECISION_KEY: "int8", CALIBRATION_KEY: json.dumps(calibration, sort_keys=True)}
    set_ir_metadata(model, meta)
    _save_atomically(ov, model, out)
    return info, calibration


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
