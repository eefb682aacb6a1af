"""The project's metadata in the edge formats (ExecuTorch `.pte`, LiteRT `.tflite`, Core ML `.mlpackage`): the same
string entries an ONNX file keeps in `metadata_props` (`onnx_metadata`: contract, model, precision, version,
calibration) plus `reid_export.outputs` (`torch_package.OUTPUTS_KEY`), the graph's output names in order.

    meta = edge_metadata(contract, precision="int8", model_info={...}, outputs=["embedding"], calibration={...})
    info = edge_info(meta, path=..., inputs=[("input", (-1, 3, 256, 128))], outputs=[...], sha256=..., size_bytes=...)

Each format's module (`executorch_program`, `litert_model`, `coreml_package`) decides where the entries live in its
file and reads them back into an `EdgeInfo`; `info.inspect` turns that into an `ArtefactInfo`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..contract import Preprocess
from ..errors import ExportError
from .onnx_metadata import (
    CALIBRATION_KEY,
    METADATA_KEY,
    MODEL_KEY,
    PRECISION_KEY,
    VERSION_KEY,
    contract_from_metadata,
)
from .torch_package import OUTPUTS_KEY

__all__ = [
    "EDGE_PRECISIONS",
    "OUTPUTS_KEY",
    "EdgeInfo",
    "edge_info",
    "edge_metadata",
    "has_flatbuffer_id",
    "metadata_json",
    "parse_metadata_json",
    "read_flatbuffer",
]

EDGE_PRECISIONS = ("fp32", "int8")  # what PRECISION_KEY may say in an edge artefact


@dataclass(frozen=True)
class EdgeInfo:
    path: Path
    contract: Preprocess
    precision: str  # fp32 | int8
    metadata: dict[str, str]  # every reid_export.* entry, as stored
    model: dict  # MODEL_KEY, parsed
    outputs: tuple  # (name, dims) per output, in the graph's order; -1 (or a name) where dynamic
    inputs: tuple  # (name, dims) of the image input
    sha256: str  # of the file (a Core ML package: of its files, by relative path)
    size_bytes: int
    extras: dict = field(default_factory=dict)  # what only this format says (input dtype and scale, planned batch)


def edge_metadata(contract: Preprocess, *, precision: str, model_info: dict, outputs: list[str],
                  calibration: dict | None = None, extra: dict | None = None) -> dict[str, str]:
    """The entries every edge artefact carries, as strings (dicts and lists as JSON)."""
    if precision not in EDGE_PRECISIONS:
        raise ExportError(f"precision {precision!r} is not one of {', '.join(EDGE_PRECISIONS)} for an edge artefact")
    meta = {key: value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            for key, value in (extra or {}).items()}
    meta |= {METADATA_KEY: contract.to_json(), PRECISION_KEY: precision, VERSION_KEY: __version__,
             MODEL_KEY: json.dumps(model_info, sort_keys=True), OUTPUTS_KEY: json.dumps(list(outputs))}
    if calibration is not None:
        meta[CALIBRATION_KEY] = json.dumps(calibration, sort_keys=True)
    return meta


def edge_info(meta: dict[str, str], *, path: Path, inputs, outputs, sha256: str, size_bytes: int,
              extras: dict | None = None) -> EdgeInfo:
    """An `EdgeInfo` from entries read back out of a file; a file without the contract is refused naming the
    command that writes one. `outputs` are dims in graph order, named here from OUTPUTS_KEY."""
    source = str(path)
    contract = contract_from_metadata(meta, source=source)
    names = _json(meta.get(OUTPUTS_KEY), source, OUTPUTS_KEY) or ["embedding"]
    dims = list(outputs)
    if len(names) != len(dims):
        raise ExportError(f"{path}: its metadata names {len(names)} output(s) ({', '.join(names)}) but the graph has "
                          f"{len(dims)}; the metadata does not belong to this graph: export it again")
    return EdgeInfo(path=Path(path), contract=contract, precision=meta.get(PRECISION_KEY, "fp32"),
                    metadata=dict(meta), model=_json(meta.get(MODEL_KEY), source, MODEL_KEY) or {},
                    outputs=tuple(zip(names, dims)), inputs=tuple(inputs), sha256=sha256, size_bytes=size_bytes,
                    extras=dict(extras or {}))


def has_flatbuffer_id(data_or_path: bytes | str | Path, prefix: bytes) -> bool:
    """Whether a flatbuffer (its bytes, or a file) carries a file identifier starting with `prefix` (bytes 4-8:
    "TFL3" for LiteRT, "ET12"... for ExecuTorch). An unreadable file has none."""
    if isinstance(data_or_path, bytes):
        return data_or_path[4:8].startswith(prefix)
    try:
        with open(data_or_path, "rb") as f:
            return f.read(8)[4:8].startswith(prefix)
    except OSError:
        return False


def read_flatbuffer(path: Path, prefix: bytes, *, missing: str, foreign: str) -> bytes:
    """The bytes of a flatbuffer file whose identifier starts with `prefix`; a missing file or another format is
    refused with `path: missing` / `path: foreign` (each naming the command that writes one)."""
    if not path.is_file():
        raise ExportError(f"{path}: {missing}")
    data = path.read_bytes()
    if not has_flatbuffer_id(data, prefix):
        raise ExportError(f"{path}: {foreign}")
    return data


def metadata_json(meta: dict[str, str]) -> str:
    """The entries as one JSON object (how a `.pte` constant method and a `.tflite` metadata buffer hold them)."""
    return json.dumps(meta, sort_keys=True)


def parse_metadata_json(text: str, *, source: str) -> dict[str, str]:
    """`metadata_json` read back; anything but an object of strings is refused naming the file."""
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise ExportError(f"{source}: its reid-export metadata is not valid JSON ({e}); export it again") from None
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ExportError(f"{source}: its reid-export metadata is not an object of strings; export it again")
    return meta


def _json(text: str | None, source: str, key: str):
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise ExportError(f"{source}: metadata '{key}' is not valid JSON ({e}); export it again") from None
