"""A Re-ID model for DeepStream's tracker (NvDCF / NvDeepSORT) and the `ReID:` section of its config.

    files = write_deepstream("runs/model.pt", "deepstream/")
    # deepstream/reid.onnx, deepstream/config_tracker_reid.yml (paste the ReID: section into the tracker config)

DeepStream's tracker preprocesses every crop as `y = netScaleFactor * (x - offsets[c])` on 0-255 pixels:
per-channel offsets, but one scalar scale. The contract's `(x * scale - mean[c]) / std[c]` is
`scale * (x - mean[c] / scale) / std[c]`, so `offsets = mean / scale`, `netScaleFactor = scale`, and the
per-channel `1 / std[c]` is folded into the first convolution: its weights for input channel c are
divided by std[c]. The fold is exact, zero padding included, because DeepStream subtracts the offsets
before the graph runs (a zero-padded border of `y / std` is a zero-padded border of `y`). The ONNX holds
the embedding only (no ID classifier, no attribute heads), with the folded contract (std 1) in its
metadata, so the project's own runtimes still run it correctly.

The config keys and their meanings are those of NVIDIA's sample `config_tracker_NvDeepSORT.yml` /
`config_tracker_NvDCF_accuracy.yml` (DeepStream 6.3-9.x). DeepStream itself is not run here: the test
applies its formula in numpy to raw pixels and compares the ONNX with the unfolded PyTorch model.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..artefacts.onnx_metadata import EMBEDDING_NAME, read_onnx_info
from ..artefacts.tracker_sidecar import tracker_sidecar_path
from ..checkpoint import load_model
from ..contract import Preprocess
from ..errors import ExportError
from ..export.onnx import export_onnx, is_onnx_file
from ..files import refuse_existing, refuse_replacing, write_text
from ..models import ReidNet
from ..runtimes import make_runtime
from .settings import NETWORK_MODES, REID_TYPES

__all__ = [
    "CONFIG_NAME",
    "MODEL_NAME",
    "NETWORK_MODES",
    "REID_TYPES",
    "DeepStreamFiles",
    "apply_deepstream_preprocessing",
    "deepstream_reid_section",
    "fold_std",
    "write_deepstream",
]

MODEL_NAME = "reid.onnx"
CONFIG_NAME = "config_tracker_reid.yml"
_FOLD_MIN_COSINE = 0.9999  # the folded ONNX under DeepStream's formula vs the unfolded PyTorch model


@dataclass(frozen=True)
class DeepStreamFiles:
    onnx: Path  # the embedding-only ONNX with the std folded in
    config: Path  # the ReID: section, a comment per field
    reid: dict  # the section's values as written
    cosine_min: float  # the self-check: folded ONNX on DeepStream's formula vs the unfolded model


def write_deepstream(checkpoint: str | Path, out_dir: str | Path, *, reid_type: str = "reassoc",
                     network_mode: str = "fp16", batch_size: int = 100, workspace_mb: int = 1000,
                     history_size: int = 100, overwrite: bool = False) -> DeepStreamFiles:
    """Export `checkpoint` for DeepStream's tracker into `out_dir`: `reid.onnx` (std folded, embedding only)
    and `config_tracker_reid.yml` (the tracker config's ReID section). Ends with a parity check of the
    folded graph under DeepStream's formula against the unfolded model; below 0.9999 it raises."""
    if reid_type not in REID_TYPES:
        raise ExportError(f"unknown reid type {reid_type!r}; choose one of {', '.join(REID_TYPES)}")
    if network_mode not in NETWORK_MODES:
        raise ExportError(f"unknown network mode {network_mode!r}; choose one of {', '.join(NETWORK_MODES)}")
    if network_mode == "int8":
        raise ExportError("networkMode int8 needs a TensorRT calibration file, which reid-export does not write for "
                          "DeepStream; choose fp16 or fp32")
    if batch_size < 1:
        raise ExportError(f"batch size must be at least 1, got {batch_size}")
    out_dir = Path(out_dir)
    onnx_path, config_path = out_dir / MODEL_NAME, out_dir / CONFIG_NAME
    refuse_existing(onnx_path, overwrite=overwrite, error=ExportError, inputs=(checkpoint,))
    refuse_existing(config_path, overwrite=overwrite, error=ExportError, inputs=(checkpoint,))
    if overwrite and out_dir.is_dir():
        _refuse_a_foreign_folder(out_dir)
    model = load_model(checkpoint)
    folded = fold_std(model)
    export_onnx(folded, onnx_path, l2_normalize=model.config.preprocess.l2_normalized, with_attributes=False,
                overwrite=overwrite)
    info = read_onnx_info(onnx_path)
    reid = deepstream_reid_section(info, model.config.preprocess, onnx_path=onnx_path, reid_type=reid_type,
                                   network_mode=network_mode, batch_size=batch_size, workspace_mb=workspace_mb,
                                   history_size=history_size)
    cosine = _check_fold(model, onnx_path, reid)
    if cosine < _FOLD_MIN_COSINE:
        onnx_path.unlink(missing_ok=True)
        raise ExportError(f"{onnx_path}: under DeepStream's preprocessing the folded model reaches a min cosine of "
                          f"{cosine:.6f} against PyTorch, below {_FOLD_MIN_COSINE}; this is a bug, please report it")
    write_text(config_path, _render(reid))
    return DeepStreamFiles(onnx=onnx_path, config=config_path, reid=reid, cosine_min=cosine)


def fold_std(model: ReidNet) -> ReidNet:
    """A copy of `model` whose first convolution divides input channel c by std[c] itself; its contract's std
    becomes (1, 1, 1), so `(x * scale - mean)` is all the preprocessing it needs."""
    contract = model.config.preprocess
    folded = copy.deepcopy(model).eval()
    conv = folded.backbone[0]
    if not isinstance(conv, torch.nn.Conv2d) or conv.in_channels != 3 or conv.groups != 1:
        raise ExportError(f"cannot fold the std: the model's first layer is {type(conv).__name__}, "
                          "not a 3-channel convolution")
    std = torch.tensor(contract.std, dtype=conv.weight.dtype).view(1, 3, 1, 1)
    with torch.no_grad():
        conv.weight.div_(std)
    folded.config = replace(folded.config, preprocess=replace(contract, std=(1.0, 1.0, 1.0)))
    return folded


def deepstream_reid_section(info, contract: Preprocess, *, onnx_path: Path, reid_type: str, network_mode: str,
                            batch_size: int, workspace_mb: int, history_size: int) -> dict:
    """The ReID section's values for the folded ONNX described by `info` (its `read_onnx_info`); `contract`
    is the original (unfolded) one, whose mean and scale become offsets and netScaleFactor."""
    folded = info.contract
    if tuple(folded.std) != (1.0, 1.0, 1.0):
        raise ExportError(f"{onnx_path}: its std {folded.std} is not folded into the graph; DeepStream applies one "
                          "scalar scale, so export it with write_deepstream")
    dim = info.model.get("embedding_dim")
    onnx_path = Path(onnx_path).resolve()
    return {
        "reidType": REID_TYPES[reid_type],
        "batchSize": int(batch_size),
        "workspaceSize": int(workspace_mb),
        "reidFeatureSize": int(dim),
        "reidHistorySize": int(history_size),
        "inferDims": [3, folded.height, folded.width],
        "networkMode": NETWORK_MODES[network_mode],
        "inputOrder": 0,  # reid-export graphs are NCHW
        "colorFormat": 0 if folded.color == "RGB" else 1,
        "offsets": [round(m / contract.scale, 6) for m in contract.mean],
        "netScaleFactor": float(contract.scale),
        "keepAspc": 1 if folded.aspect == "keep-and-pad" else 0,
        "addFeatureNormalization": 0 if folded.l2_normalized else 1,
        "onnxFile": str(onnx_path),
        "modelEngineFile": str(onnx_path.with_name(f"{onnx_path.name}_b{batch_size}_gpu0_{network_mode}.engine")),
    }


def apply_deepstream_preprocessing(nhwc_rgb: np.ndarray, reid: dict) -> np.ndarray:
    """DeepStream's tracker preprocessing, in numpy: RGB uint8 crops (N, H, W, 3) already at inferDims ->
    colour order by colorFormat, `netScaleFactor * (x - offsets)`, layout by inputOrder."""
    x = nhwc_rgb.astype(np.float32)
    if reid["colorFormat"] == 1:
        x = x[..., ::-1]
    y = np.float32(reid["netScaleFactor"]) * (x - np.asarray(reid["offsets"], dtype=np.float32))
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2) if reid["inputOrder"] == 0 else y)


# -- private helpers ---------------------------------------------------------------------
_COMMENTS = {
    "reidType": "0 dummy, 1 NvDeepSORT, 2 re-association (NvDCF), 3 both",
    "batchSize": "crops per Re-ID inference batch (the ONNX has a dynamic batch axis)",
    "workspaceSize": "TensorRT workspace for building the engine, in MB",
    "reidFeatureSize": "embedding length: the ONNX's `embedding` output",
    "reidHistorySize": "most Re-ID features kept per target",
    "inferDims": "network input [C, H, W] (inputOrder 0): the contract's size",
    "networkMode": "precision DeepStream builds the engine at: 0 fp32, 1 fp16, 2 int8",
    "inputOrder": "0 NCHW, 1 NHWC",
    "colorFormat": "0 RGB, 1 BGR: the contract's channel order",
    "offsets": "subtracted per channel from 0-255 pixels: the contract's mean / scale",
    "netScaleFactor": "one scale after the offsets: the contract's scale; its per-channel std is folded into the "
                      "first convolution",
    "keepAspc": "1 keeps the crop's aspect ratio (pads), 0 stretches: the contract's aspect policy",
    "addFeatureNormalization": "1 L2-normalises the output; 0 because the graph already does (contract l2_normalized)",
    "onnxFile": "the embedding-only ONNX with the std folded in",
    "modelEngineFile": "DeepStream builds this TensorRT engine from onnxFile on the first run and reuses it",
}


def _render(reid: dict) -> str:
    lines = ["# The ReID section of a DeepStream NvDCF / NvDeepSORT tracker config, written by reid-export.",
             "# Paste it over the ReID: section of config_tracker_NvDCF_accuracy.yml (or NvDeepSORT).",
             "# DeepStream feeds the model y = netScaleFactor * (x - offsets) for each 0-255 pixel x.",
             "ReID:"]
    for key, value in reid.items():
        comment = _COMMENTS[key]
        if key == "addFeatureNormalization" and value == 1:
            comment = "1 L2-normalises the output: the graph does not (contract l2_normalized false)"
        lines.append(f"  {key}: {json.dumps(value)}  # {comment}")
    return "\n".join(lines) + "\n"


def _check_fold(model: ReidNet, onnx_path: Path, reid: dict) -> float:
    """Min cosine between the folded ONNX fed DeepStream's formula and the unfolded model fed the contract."""
    contract = model.config.preprocess
    pixels = np.random.default_rng(0).integers(0, 256, size=(4, contract.height, contract.width, 3), dtype=np.uint8)
    with torch.no_grad():
        ref = model.embed(torch.from_numpy(contract.normalize_uint8(pixels))).numpy()
    with make_runtime("onnxruntime", onnx_path) as runtime:
        got = runtime.infer(apply_deepstream_preprocessing(pixels, reid))[EMBEDDING_NAME]
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    got = got / np.linalg.norm(got, axis=1, keepdims=True)
    return float((ref * got).sum(axis=1).min())


def _refuse_a_foreign_folder(out_dir: Path) -> None:
    """--overwrite: the folder must hold only what `write_deepstream` writes (hidden files aside)."""
    onnx_path = out_dir / MODEL_NAME
    ours = (MODEL_NAME, CONFIG_NAME, tracker_sidecar_path(onnx_path).name)  # the ONNX export writes its sidecar
    others = sorted(p.name for p in out_dir.iterdir() if p.name not in ours and not p.name.startswith("."))
    why = (f"it also holds {', '.join(others[:5])}{' and more' if len(others) > 5 else ''}" if others
           else f"its {MODEL_NAME} is not an ONNX file")
    refuse_replacing(out_dir, own=lambda _: not others and (not onnx_path.exists() or is_onnx_file(onnx_path)),
                     kind=f"a folder written by `reid-export deepstream` ({MODEL_NAME}, {CONFIG_NAME})", why=why,
                     error=ExportError)
