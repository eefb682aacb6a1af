"""TensorRT engine sidecars: the JSON file next to each engine saying what it is, and the checks made with it.

    sidecar = read_sidecar("engines/model.engine")  # validated, and its sha256 matched against the engine
    check_compatible(sidecar, trt_version=trt.__version__, gpu_name=..., compute_capability=(9, 0), batch=64)

An engine only runs on the TensorRT version and GPU model it was built for, with batch sizes inside its
one optimisation profile, and none of that (nor the preprocessing contract) can be read back from the
plan file. `build_engine` (`export.tensorrt`) therefore writes `NAME.engine.json` next to it:
TensorRT version, GPU and compute capability, the profile, the ONNX precision and sha256, the contract,
the I/O tensors and the layer precisions. This module writes, reads and validates that file, and
`check_compatible` / `check_batch` refuse, naming both sides, an engine that cannot run here.

Nothing here needs TensorRT, torch or onnx.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

from .. import __version__
from ..errors import ExportError, ReidExportError, RuntimeUnavailable
from ..files import write_bytes

__all__ = ["sidecar_path", "new_sidecar", "write_sidecar", "read_sidecar", "validate_sidecar", "check_compatible",
           "check_batch", "file_sha256", "capability_string", "sm_name", "SIDECAR_FORMAT", "SIDECAR_VERSION"]

SIDECAR_FORMAT = "reid_export.tensorrt_engine"
SIDECAR_VERSION = 1
_SIDECAR_KEYS = ("format", "version", "engine", "tensorrt_version", "gpu", "profile", "precision", "onnx",
                 "preprocess", "inputs", "outputs", "built_at", "layers")


def sidecar_path(engine_path: str | Path) -> Path:
    """engines/NAME.engine -> engines/NAME.engine.json"""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def new_sidecar(*, engine_bytes: bytes, engine_name: str, onnx_path: str | Path, contract: dict, precision: str,
                tensorrt_version: str, gpu_name: str | None, compute_capability, profile: dict, inputs: list[dict],
                outputs: list[dict], layers: dict, build_seconds: float, builder: dict | None = None) -> dict:
    """The sidecar dict for one engine; `compute_capability` as (9, 0), "9.0" or "sm_90"."""
    return validate_sidecar({
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "reid_export_version": __version__,
        "engine": {"file": engine_name, "sha256": hashlib.sha256(engine_bytes).hexdigest(), "bytes": len(engine_bytes)},
        "tensorrt_version": tensorrt_version,
        "gpu": {"name": gpu_name,
                "compute_capability": None if compute_capability is None else capability_string(compute_capability)},
        "profile": {"input": profile["input"], **{k: [int(d) for d in profile[k]] for k in ("min", "opt", "max")}},
        "precision": precision,
        "builder": builder or {},
        "onnx": {"file": str(onnx_path), "sha256": file_sha256(onnx_path)},
        "preprocess": contract,
        "inputs": inputs,
        "outputs": outputs,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(float(build_seconds), 3),
        "layers": layers,
    }, source="new sidecar")


def write_sidecar(engine_path: str | Path, sidecar: dict) -> Path:
    """Write NAME.engine.json next to the engine (atomically); returns its path."""
    path = sidecar_path(engine_path)
    validate_sidecar(sidecar, source=str(path))
    write_bytes(path, (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode())
    return path


def read_sidecar(engine_path: str | Path, *, verify_engine: bool = True) -> dict:
    """The sidecar of `engine_path`, validated; with `verify_engine`, also that it describes this very file."""
    engine_path = Path(engine_path)
    rebuild = f"rebuild with `reid-export trt MODEL.onnx -o {engine_path} --overwrite`"
    if not engine_path.is_file():
        raise ExportError(f"{engine_path}: no such TensorRT engine; build one with `reid-export trt MODEL.onnx -o {engine_path}`")
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise ExportError(
            f"{engine_path}: no sidecar {path.name} next to it (it records the TensorRT version, GPU, batch profile "
            f"and preprocessing contract); engines need the sidecar written by reid-export trt; {rebuild}"
        )
    try:
        sidecar = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"{path}: not valid JSON ({e}); {rebuild}") from e
    validate_sidecar(sidecar, source=str(path))
    if verify_engine:
        found = file_sha256(engine_path)
        if found != sidecar["engine"]["sha256"]:
            raise ExportError(
                f"{engine_path} does not match its sidecar {path.name} (sha256 {sidecar['engine']['sha256'][:12]}... "
                f"recorded, {found[:12]}... found): the engine was replaced without its sidecar; {rebuild}"
            )
    return sidecar


def validate_sidecar(sidecar: dict, *, source: str = "sidecar") -> dict:
    """Check a sidecar has the fields the runtime needs; returns it unchanged."""
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        raise ExportError(f"{source}: not a reid-export TensorRT sidecar (expected format {SIDECAR_FORMAT!r}); "
                          "rebuild the engine with `reid-export trt`")
    if not isinstance(sidecar.get("version"), int) or sidecar["version"] > SIDECAR_VERSION:
        raise ExportError(f"{source}: sidecar version {sidecar.get('version')!r}, this reid-export reads up to "
                          f"{SIDECAR_VERSION}; upgrade reid-export or rebuild the engine")
    missing = [k for k in _SIDECAR_KEYS if k not in sidecar]
    if missing:
        raise ExportError(f"{source}: sidecar lacks {', '.join(missing)}; rebuild the engine with `reid-export trt`")
    prof = sidecar["profile"]
    if not all(isinstance(prof.get(k), list) and len(prof[k]) == 4 for k in ("min", "opt", "max")):
        raise ExportError(f"{source}: profile needs min/opt/max shapes of 4 dimensions (N, C, H, W), got {prof}")
    return sidecar


def check_compatible(sidecar: dict, *, trt_version: str, gpu_name: str | None, compute_capability,
                     batch: int | None = None, input_shape=None) -> None:
    """Refuse, naming both sides, an engine built for another TensorRT version or GPU, a batch outside its
    profile or an input shape other than its (C, H, W). `input_shape` is (C, H, W) or (N, C, H, W)."""
    built_trt, gpu = sidecar["tensorrt_version"], sidecar["gpu"]
    here_cc = None if compute_capability is None else capability_string(compute_capability)
    mismatch = built_trt != trt_version
    if gpu.get("name") is not None and gpu_name is not None and gpu["name"] != gpu_name:
        mismatch = True
    if gpu.get("compute_capability") is not None and here_cc is not None and gpu["compute_capability"] != here_cc:
        mismatch = True
    if mismatch:
        raise RuntimeUnavailable(
            f"engine built with TensorRT {built_trt} on {gpu.get('name') or 'an unrecorded GPU'} "
            f"({sm_name(gpu.get('compute_capability'))}) cannot run here: TensorRT {trt_version} on "
            f"{gpu_name or 'an unknown GPU'} ({sm_name(here_cc)}). TensorRT engines only run on the TensorRT version and "
            f"GPU model they were built for; rebuild it on this machine with "
            f"`reid-export trt {sidecar['onnx']['file']} -o ENGINE --overwrite`"
        )
    prof = sidecar["profile"]
    if input_shape is not None:
        shape = tuple(int(d) for d in input_shape)
        if len(shape) == 4:
            batch, shape = shape[0] if batch is None else batch, shape[1:]
        if shape != tuple(prof["min"][1:]):
            raise ReidExportError(
                f"input shape {shape} does not match the engine's {tuple(prof['min'][1:])} (C, H, W) from its "
                "preprocessing contract; preprocess images with runtime.contract"
            )
    if batch is not None:
        check_batch(sidecar, batch)


def check_batch(sidecar: dict, batch: int) -> None:
    """Refuse a batch size outside the engine's optimisation profile [min, max]."""
    lo, hi = sidecar["profile"]["min"][0], sidecar["profile"]["max"][0]
    if not lo <= batch <= hi:
        raise ReidExportError(
            f"batch of {batch} is outside the engine's optimisation profile [{lo}, {hi}]; split it into batches of "
            f"at most {hi}, or rebuild with `reid-export trt ... --min-batch {min(lo, batch)} "
            f"--max-batch {max(hi, batch)}`"
        )


# -- private helpers (also used by reid_export.export.tensorrt) -----------------------------
def capability_string(value) -> str:
    """(9, 0) / "9.0" / "sm_90" / "90" -> "9.0"."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return f"{int(value[0])}.{int(value[1])}"
    text = str(value).strip().lower().removeprefix("sm_")
    if re.fullmatch(r"\d+\.\d+", text):
        return text
    if re.fullmatch(r"\d{2,3}", text):
        return f"{text[:-1]}.{text[-1]}"
    raise ReidExportError(f"cannot read the compute capability {value!r}; give (9, 0), '9.0' or 'sm_90'")


def sm_name(capability) -> str:
    return "sm_?" if capability is None else "sm_" + capability_string(capability).replace(".", "")
