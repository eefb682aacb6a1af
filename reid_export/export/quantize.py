"""Lower precision inside the ONNX graph: FP16 weights/compute, or INT8 Q/DQ from static calibration.

Precision lives in the graph, not in a runtime flag: ONNX Runtime runs these files as they are, and
TensorRT 11 (which dropped the FP16/INT8 builder flags and calibrators) builds them as strongly
typed networks. Inputs and outputs stay float32, so callers do not change.

INT8 is calibrated on training images only; query and gallery images are refused because
calibrating on them leaks the test set into the model.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, ExportError
from .onnx import INPUT_NAME, METADATA_KEY, PRECISION_KEY, contract_from_metadata, read_metadata, set_metadata

__all__ = ["PRECISIONS", "CALIBRATION_METHODS", "DEFAULT_MIN_COSINE", "Int8Settings", "export_at_precision",
           "convert_fp16", "quantize_int8", "calibration_images", "CALIBRATION_KEY"]

PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
CALIBRATION_KEY = "reid_export.calibration"
_EVAL_FOLDERS = ("query", "bounding_box_test", "gt_query", "gt_bbox")
# parity threshold against PyTorch FP32 that an export must reach, per precision
DEFAULT_MIN_COSINE = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.98}


@dataclass(frozen=True)
class Int8Settings:
    method: str = "minmax"  # calibration: minmax | entropy | percentile
    num_images: int = 300  # training images fed through the model to collect activation ranges
    activations: str = "uint8"  # uint8: asymmetric, fastest on x86 CPUs (VNNI U8S8); int8: symmetric, for TensorRT
    per_channel: bool = True  # one weight scale per output channel
    percentile: float = 99.999  # for method=percentile
    batch_size: int = 16  # calibration batch size
    seed: int = 0  # which training images are drawn

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise ExportError(f"unknown calibration method {self.method!r}; choose one of {', '.join(CALIBRATION_METHODS)}")
        if self.activations not in ("uint8", "int8"):
            raise ExportError(f"INT8 activations must be 'uint8' or 'int8', got {self.activations!r}")
        if self.num_images < 1:
            raise ExportError(f"calibration needs at least one image, got num_images={self.num_images}")


def export_at_precision(model, out: str | Path, *, precision: str = "fp32", calib_data: str | Path | None = None,
                        int8: Int8Settings = Int8Settings(), overwrite: bool = False, progress: bool = True,
                        **onnx_options) -> Path:
    """Export a ReidNet to ONNX at `precision`; INT8 calibrates on `calib_data`'s training split.
    `onnx_options` go to `export_onnx` (opset, l2_normalize, exporter)."""
    from .onnx import export_onnx

    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; pass --overwrite to replace it, or choose another -o path")
    if precision == "int8" and calib_data is None:
        raise ExportError("--precision int8 needs --calib-data DIR: a Market-1501 folder whose bounding_box_train/ "
                          "images calibrate the activation ranges")
    if precision == "fp32":
        return export_onnx(model, out, overwrite=overwrite, **onnx_options)
    calib = calibration_images(calib_data, int8.num_images, seed=int8.seed) if precision == "int8" else None
    with tempfile.TemporaryDirectory(prefix="reid-export-") as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", **onnx_options)
        if precision == "fp16":
            return convert_fp16(fp32, out)
        return quantize_int8(fp32, out, calib, int8, progress=progress)


def convert_fp16(src: str | Path, out: str | Path) -> Path:
    """FP16 weights and compute, float32 inputs/outputs (Cast at the edges). Metadata is kept."""
    import onnx

    try:
        from onnxconverter_common.float16 import convert_float_to_float16
    except ImportError as e:
        raise ExportError("FP16 export needs onnxconverter-common: pip install onnxconverter-common") from e

    import warnings

    proto = onnx.load(str(src))
    # keep_io_types: callers feed and read float32; the normalisation tail stays fp32 for accuracy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one warning per tiny weight clamped to the fp16 range
        half = convert_float_to_float16(proto, keep_io_types=True,
                                        op_block_list=["ReduceL2", "Div", "Clip", "Max", "ReduceSumSquare", "Sqrt"])
    _restore_float32_outputs(half)
    meta = read_metadata(src) | {PRECISION_KEY: "fp16"}
    set_metadata(half, meta)
    return _save_checked(half, out)


def quantize_int8(src: str | Path, out: str | Path, calibration_paths: list[Path],
                  settings: Int8Settings = Int8Settings(), progress: bool = True) -> Path:
    """Static INT8 quantisation to a Q/DQ graph, calibrated on `calibration_paths` (training images)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    refuse_evaluation_images(calibration_paths)
    meta = read_metadata(src)
    contract = contract_from_metadata(meta, source=str(src))
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[settings.method]
    symmetric = settings.activations == "int8"
    extra = {"ActivationSymmetric": symmetric, "WeightSymmetric": True}
    if settings.method == "percentile":
        extra["CalibPercentile"] = settings.percentile
    with tempfile.TemporaryDirectory(prefix="reid-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)  # folds BN into Conv, infers shapes
        reader = _CalibrationReader(calibration_paths, contract, settings.batch_size, progress)
        quantized = Path(tmp) / "int8.onnx"
        quantize_static(str(prepared), str(quantized), reader, quant_format=QuantFormat.QDQ,
                        per_channel=settings.per_channel,
                        activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=method, extra_options=extra)
        proto = onnx.load(str(quantized))
    record = asdict(settings) | {"num_images": len(calibration_paths),
                                 "source": str(Path(calibration_paths[0]).parent)}
    set_metadata(proto, meta | {PRECISION_KEY: "int8", CALIBRATION_KEY: json.dumps(record, sort_keys=True)})
    return _save_checked(proto, out)


def calibration_images(data_root: str | Path, num_images: int = 300, *, seed: int = 0) -> list[Path]:
    """`num_images` images drawn (without replacement, fixed seed) from the training split only."""
    from ..data.market1501 import load_market1501

    data = load_market1501(data_root, splits=("train",), progress=False)
    paths = [s.path for s in data.train]
    picks = np.random.default_rng(seed).choice(len(paths), size=min(num_images, len(paths)), replace=False)
    return [paths[i] for i in sorted(picks)]


def refuse_evaluation_images(paths: list[Path]) -> None:
    """Calibration must not see the test set: refuse any image inside a query/gallery folder."""
    if not paths:
        raise DataError("INT8 calibration got no images; point --calib-data at a folder with bounding_box_train/")
    leaked = [p for p in paths if set(Path(p).resolve().parent.parts[-1:]) & set(_EVAL_FOLDERS)]
    if leaked:
        raise DataError(
            f"refusing to calibrate INT8 on {len(leaked)} evaluation image(s), e.g. {leaked[0]}: query and gallery "
            "images are the test set, and calibrating on them leaks it into the model and inflates Rank-1/mAP. "
            "Calibrate on training images (bounding_box_train/) instead."
        )


class _CalibrationReader:
    """ONNX Runtime CalibrationDataReader over image files, preprocessed with the model's own contract."""

    def __init__(self, paths, contract, batch_size: int, progress: bool):
        self._paths, self._contract, self._batch = list(paths), contract, batch_size
        self._start = 0
        self._progress = progress

    def get_next(self):
        if self._start >= len(self._paths):
            return None
        chunk = self._paths[self._start:self._start + self._batch]
        if self._progress and self._start == 0:
            print(f"[int8] calibrating on {len(self._paths)} training images")
        self._start += len(chunk)
        return {INPUT_NAME: self._contract.load_batch(chunk)}

    def rewind(self) -> None:
        self._start = 0


def _restore_float32_outputs(proto) -> None:
    """The fp16 converter can leave a graph output in float16 (a Cast appended after a blocked fp32 op)
    even with keep_io_types. Callers are promised float32: make the final Cast produce float32, or add one."""
    from onnx import TensorProto, helper

    producers = {out: node for node in proto.graph.node for out in node.output}
    for output in proto.graph.output:
        tensor_type = output.type.tensor_type
        if tensor_type.elem_type != TensorProto.FLOAT16:
            continue
        node = producers.get(output.name)
        if node is not None and node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to":
                    attr.i = TensorProto.FLOAT
        else:
            half_name = f"{output.name}_fp16"
            for n in proto.graph.node:
                n.output[:] = [half_name if o == output.name else o for o in n.output]
            proto.graph.node.append(helper.make_node("Cast", [half_name], [output.name], to=TensorProto.FLOAT))
        tensor_type.elem_type = TensorProto.FLOAT


def _save_checked(proto, out: str | Path) -> Path:
    import onnx

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.checker.check_model(proto)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        onnx.save(proto, tmp)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    if METADATA_KEY not in read_metadata(out):
        raise ExportError(f"{out}: the preprocessing contract was lost while converting; this is a bug")
    return out
