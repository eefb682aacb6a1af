"""The tracker sidecar: `NAME.onnx.metadata.json` next to every exported ONNX, in the format boxmot reads.

boxmot (25.x) ignores ONNX `metadata_props`. Its ReID backends read a JSON file named after the artefact
(`model.onnx` -> `model.onnx.metadata.json`, `boxmot/reid/core/artifacts.py`) and use these fields:

    schema_version              1 (boxmot's ARTIFACT_METADATA_SCHEMA_VERSION)
    model_name                  returned as the model name as it is (`ReIDModelRegistry.get_model_name`)
    num_classes                 int (`get_nr_classes`)
    preprocess                  the crop resize by name: "resize" (stretch, cv2 INTER_LINEAR) or "resize_pad"
                                (aspect kept, centred, ImageNet-mean border) (`core/preprocessing.py`)
    model_kwargs_schema_version 1; with it, an unknown key inside model_kwargs is an error
    model_kwargs                {"img_size": [H, W]}: the crop size the backend resizes to
    img_size                    [H, W], as boxmot's own exporter writes it beside model_kwargs

boxmot normalises every crop the same way whatever the sidecar says: BGR -> RGB, /255, ImageNet mean/std.
So the contract itself (mean/std, colour order, resize implementation and aspect) goes under the
`reid_export` key, which boxmot ignores, together with `boxmot_differences`: each way in which boxmot's
fixed preprocessing differs from the contract (empty when boxmot reproduces it). The project's own
runtimes keep reading the contract from the ONNX metadata; this file is for trackers.

The sidecar records the ONNX file's sha256, is written atomically right after its ONNX and is replaced
only together with it; replacing one that described another file says so (a warning).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

from ..contract import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from ..errors import ExportError
from ..files import write_text
from .onnx_metadata import read_onnx_info
from .tensorrt_sidecar import file_sha256

__all__ = [
    "BOXMOT_PREPROCESS",
    "BOXMOT_SCHEMA_VERSION",
    "TRACKER_SIDECAR_FORMAT",
    "boxmot_differences",
    "follow_onnx",
    "read_sidecar_json",
    "read_tracker_sidecar",
    "tracker_sidecar",
    "tracker_sidecar_path",
    "write_tracker_sidecar",
]

TRACKER_SIDECAR_FORMAT = "reid_export.tracker_sidecar"
BOXMOT_SCHEMA_VERSION = 1  # boxmot's ARTIFACT_METADATA_SCHEMA_VERSION and MODEL_KWARGS_SCHEMA_VERSION
BOXMOT_PREPROCESS = ("resize", "resize_pad")  # boxmot's PREPROCESS_REGISTRY names


def tracker_sidecar_path(onnx_path: str | Path) -> Path:
    """engines/model.onnx -> engines/model.onnx.metadata.json (boxmot's `artifact_metadata_path`)."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.name + ".metadata.json")


def tracker_sidecar(onnx_path: str | Path) -> dict:
    """The sidecar dict for an exported ONNX, built from the file's own metadata."""
    info = read_onnx_info(onnx_path)
    c, model = info.contract, info.model
    size = [c.height, c.width]
    return {
        "schema_version": BOXMOT_SCHEMA_VERSION,
        "model_name": f"reid_export_{model.get('arch', 'reidnet')}",
        "num_classes": int(model.get("num_classes") or 1),
        "preprocess": "resize_pad" if c.aspect == "keep-and-pad" else "resize",
        "model_kwargs_schema_version": BOXMOT_SCHEMA_VERSION,
        "model_kwargs": {"img_size": size},
        "img_size": size,
        "reid_export": {
            "format": TRACKER_SIDECAR_FORMAT,
            "version": 1,
            "onnx": {"file": Path(onnx_path).name, "sha256": file_sha256(onnx_path)},
            "precision": info.precision,
            "embedding_dim": model.get("embedding_dim"),
            "preprocess": c.to_dict(),  # the contract: size, color, scale, mean, std, resize_method, aspect, ...
            "boxmot_differences": boxmot_differences(c),
        },
    }


def write_tracker_sidecar(onnx_path: str | Path) -> Path:
    """Write (atomically) the sidecar of a just-written ONNX file; returns its path. An existing sidecar that
    described another file is replaced with a warning naming it, never silently."""
    onnx_path = Path(onnx_path)
    path = tracker_sidecar_path(onnx_path)
    sidecar = tracker_sidecar(onnx_path)
    old = read_sidecar_json(path)
    if old is not None:
        recorded = (old.get("reid_export") or {}).get("onnx", {}).get("sha256")
        if recorded != sidecar["reid_export"]["onnx"]["sha256"]:
            warnings.warn(f"{path}: replacing a tracker sidecar that described another file "
                          f"(sha256 {str(recorded)[:12]}...); it now describes the new {onnx_path.name}", stacklevel=2)
    write_text(path, json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return path


def read_tracker_sidecar(onnx_path: str | Path) -> dict:
    """The sidecar of `onnx_path`, checked to be a reid-export tracker sidecar describing this very file."""
    onnx_path = Path(onnx_path)
    path = tracker_sidecar_path(onnx_path)
    fix = f"re-export with `reid-export onnx CKPT -o {onnx_path} --overwrite`"
    sidecar = read_sidecar_json(path)
    if sidecar is None:
        raise ExportError(f"{onnx_path}: no readable tracker sidecar {path.name} next to it; {fix}")
    ours = sidecar.get("reid_export") or {}
    if ours.get("format") != TRACKER_SIDECAR_FORMAT:
        raise ExportError(f"{path}: not a reid-export tracker sidecar (no reid_export.format "
                          f"{TRACKER_SIDECAR_FORMAT!r}); {fix}")
    if ours.get("onnx", {}).get("sha256") != file_sha256(onnx_path):
        raise ExportError(f"{path} describes another file than {onnx_path} (sha256 differs): the ONNX was replaced "
                          f"without its sidecar; {fix}")
    return sidecar


def follow_onnx(onnx_path: str | Path, renamed_to: str | Path | None = None) -> None:
    """Keep the sidecar with its ONNX: move it when the ONNX was renamed to `renamed_to`, remove it when the ONNX
    was removed (`renamed_to` None), so that no sidecar is left describing a file that is not there."""
    path = tracker_sidecar_path(onnx_path)
    if not path.exists():
        return
    if renamed_to is None:
        path.unlink(missing_ok=True)
    else:
        path.replace(tracker_sidecar_path(renamed_to))


def boxmot_differences(contract: Preprocess) -> list[str]:
    """How boxmot's fixed crop preprocessing (cv2 INTER_LINEAR, BGR -> RGB, /255, ImageNet mean/std) differs
    from `contract`; empty when boxmot feeds the model exactly what the contract says."""
    out = []
    if contract.color != "RGB":
        out.append(f"colour: boxmot feeds RGB, the model expects {contract.color}")
    if not math.isclose(contract.scale, 1 / 255, rel_tol=1e-6):
        out.append(f"scale: boxmot divides by 255, the contract multiplies by {contract.scale}")
    for name, ours, theirs in (("mean", contract.mean, IMAGENET_MEAN), ("std", contract.std, IMAGENET_STD)):
        if any(not math.isclose(a, b, abs_tol=1e-6) for a, b in zip(ours, theirs)):
            out.append(f"{name}: boxmot uses ImageNet {list(theirs)}, the contract {list(ours)}")
    if contract.aspect == "keep-and-pad":
        out.append("aspect: boxmot's resize_pad centres the crop on an ImageNet-mean border, the contract pads "
                   "right/bottom with black")
    if contract.resize_method != "cv2-linear":
        out.append(f"resize: boxmot resizes with cv2 INTER_LINEAR, the contract with {contract.resize_method} "
                   "(equal pixels only for crops already at the input size)")
    return out


def read_sidecar_json(path: Path) -> dict | None:
    """A sidecar file's JSON object, or None when it is missing, unreadable or not an object (a tracker's or
    boxmot's own sidecar, read leniently)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
