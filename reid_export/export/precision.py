"""Lower precision inside the ONNX graph: FP16 weights/compute, or INT8 Q/DQ from static calibration.

Precision lives in the graph, not in a runtime flag: ONNX Runtime runs these files as they are, and
TensorRT 11 (which dropped the FP16/INT8 builder flags and calibrators) builds them as strongly
typed networks. Inputs and outputs stay float32, so callers do not change.

INT8 is calibrated on training images only; query and gallery images are refused because
calibrating on them leaks the test set into the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..artefacts.onnx_metadata import CALIBRATION_KEY, INPUT_NAME, read_onnx_info
from ..artefacts.onnx_writer import write_onnx_artefact
from ..data.market1501 import load_market1501
from ..errors import DataError, ExportError
from .onnx import export_onnx, refuse_onnx_output
from .settings import PRECISIONS, Int8Settings

__all__ = ["export_at_precision", "convert_fp16", "quantize_int8", "prepare_int8", "calibration_images", "calibration_record",
           "refuse_evaluation_images"]

_EVAL_FOLDERS = ("query", "bounding_box_test", "gt_query", "gt_bbox")


def export_at_precision(model, out: str | Path, *, precision: str = "fp32", calib_data: str | Path | None = None,
                        int8: Int8Settings = Int8Settings(), overwrite: bool = False, progress: bool = True,
                        **onnx_options) -> Path:
    """Export a ReidNet to ONNX at `precision`; INT8 calibrates on `calib_data`'s training split.
    `onnx_options` go to `export_onnx` (opset, l2_normalize, exporter)."""
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    out = Path(out)
    refuse_onnx_output(out, overwrite=overwrite)
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
    return _save_checked(half, out, src, precision="fp16")


def quantize_int8(src: str | Path, out: str | Path, calibration_paths: list[Path],
                  settings: Int8Settings = Int8Settings(), progress: bool = True,
                  nodes_to_exclude: list[str] | tuple[str, ...] = ()) -> Path:
    """Static INT8 quantisation to a Q/DQ graph, calibrated on `calibration_paths` (training images).
    `nodes_to_exclude`: node names of the prepared graph (`prepare_int8`) that stay in FP32."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    refuse_evaluation_images(calibration_paths)
    info = read_onnx_info(src)
    contract = info.contract
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[settings.method]
    symmetric = settings.activations == "int8"
    extra = {"ActivationSymmetric": symmetric, "WeightSymmetric": True}
    if settings.method == "percentile":
        extra["CalibPercentile"] = settings.percentile
    with tempfile.TemporaryDirectory(prefix="reid-int8-") as tmp:
        prepared = prepare_int8(src, Path(tmp) / "prepared.onnx")
        if settings.method != "minmax" and len(calibration_paths) > settings.batch_size:
            # ONNX Runtime's histogram calibrators (entropy, percentile) stack every batch's activations into one
            # array, so the batches must be the same size: the last, partial batch is left out
            calibration_paths = calibration_paths[:len(calibration_paths) - len(calibration_paths) % settings.batch_size]
        reader = _CalibrationReader(calibration_paths, contract, settings.batch_size, progress)
        quantized = Path(tmp) / "int8.onnx"
        # ONNX Runtime's entropy/percentile calibrators print their progress to stdout: quiet means quiet
        with contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO()):
            quantize_static(str(prepared), str(quantized), reader, quant_format=QuantFormat.QDQ,
                            per_channel=settings.per_channel,
                            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=method, extra_options=extra,
                            nodes_to_exclude=list(nodes_to_exclude))
        proto = onnx.load(str(quantized))
    record = asdict(settings) | calibration_record(calibration_paths) | {"fp32_nodes": list(nodes_to_exclude)}
    return _save_checked(proto, out, src, precision="int8", extra={CALIBRATION_KEY: record})


def prepare_int8(src: str | Path, out: str | Path) -> Path:
    """The graph INT8 quantises: BN folded into Conv, shapes inferred. Its node names are the ones
    `quantize_int8(nodes_to_exclude=...)` takes; the same `src` always gives the same names."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
    return Path(out)


def calibration_record(paths: list[Path]) -> dict:
    """How an artefact names the images it was calibrated on, without absolute paths: their count, their
    folder's name and a sha256 of their sorted file names."""
    names = sorted(Path(p).name for p in paths)
    return {"num_images": len(paths), "source": Path(paths[0]).parent.name,
            "files_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest()}


def calibration_images(data_root: str | Path, num_images: int = 300, *, seed: int = 0) -> list[Path]:
    """`num_images` images drawn (without replacement, fixed seed) from the training split only."""
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


def _save_checked(proto, out: str | Path, src: str | Path, *, precision: str, extra: dict | None = None) -> Path:
    """The converted graph, with `src`'s metadata (contract, model, ...) at `precision`, and its tracker sidecar."""
    _drop_unused_domains(proto)
    info = read_onnx_info(src)  # the converters do not all keep metadata_props: take them from the source
    return write_onnx_artefact(proto, out, contract=info.contract, precision=precision, model_info=info.model,
                               extra=info.metadata | (extra or {}))


def _drop_unused_domains(proto) -> None:
    """Declare only the opset domains some node (or local function) uses; the quantiser adds e.g.
    com.microsoft even when every node is a standard QuantizeLinear/DequantizeLinear."""
    used = {""} | {n.domain for n in proto.graph.node} | {f.domain for f in proto.functions}
    used |= {n.domain for f in proto.functions for n in f.node}
    keep = [o for o in proto.opset_import if (o.domain or "") in used or o.domain == "ai.onnx"]
    del proto.opset_import[:]
    proto.opset_import.extend(keep)
