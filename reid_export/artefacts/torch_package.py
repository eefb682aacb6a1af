"""What an AOTInductor package (`.pt2`, written by `reid-export aot`) says about itself: the project's metadata
in AOTInductor's `aot_inductor.metadata` (string to string), the one owner of that layout.

    metadata = package_metadata(contract, model_description, outputs=["embedding"])   # export: passed to inductor
    info = read_package_info("engines/model.pt2")                                       # anyone: no torch needed
    info = package_info(dict(loaded.get_metadata()), source="engines/model.pt2")        # a runtime: what it loaded

The keys are the ONNX metadata's (`artefacts.onnx_metadata`: the preprocessing contract, the model, the
precision, the reid-export version) plus `reid_export.outputs`, the names of the graph's outputs in order.
AOTInductor adds what it compiled for: the vector ISA (`AOTI_CPU_ISA`, e.g. "AVX512") and the device
(`AOTI_DEVICE_KEY`). A package is a zip archive; inductor writes the metadata beside the compiled model as
`.../data/aotinductor/model/<hash>.wrapper_metadata.json`, which `read_package_info` reads without loading the
compiled library.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..contract import METADATA_KEY, Preprocess
from ..errors import ExportError
from .onnx_metadata import EMBEDDING_NAME, MODEL_KEY, PRECISION_KEY, VERSION_KEY, contract_from_metadata

__all__ = ["OUTPUTS_KEY", "ISA_KEY", "DEVICE_KEY", "PackageInfo", "package_metadata", "package_info",
           "read_package_info", "read_package_metadata", "is_aot_package"]

OUTPUTS_KEY = "reid_export.outputs"  # JSON list: the graph's outputs in order, "embedding" first
ISA_KEY = "AOTI_CPU_ISA"  # written by AOTInductor: the vector ISA of the compiled kernels, e.g. "AVX512" or "AVX2"
DEVICE_KEY = "AOTI_DEVICE_KEY"  # written by AOTInductor: the device type it compiled for, e.g. "cpu"
_METADATA_FILE = "wrapper_metadata.json"  # how inductor's metadata file inside the archive ends


@dataclass(frozen=True)
class PackageInfo:
    """What a package's metadata says (the counterpart of `OnnxInfo` for a .pt2 artefact)."""

    path: Path
    contract: Preprocess
    precision: str  # fp32, as `reid-export aot` writes it
    outputs: tuple[str, ...]  # the graph's outputs in order: ("embedding",) or ("embedding", "attributes")
    isa: str  # the vector ISA of the kernels ("" when AOTInductor recorded none)
    metadata: dict[str, str] = field(default_factory=dict)  # every entry, AOTInductor's own included
    model: dict = field(default_factory=dict)  # MODEL_KEY, parsed: arch, embedding_dim, ...


def package_metadata(contract: Preprocess, model: dict, *, outputs: list[str], version: str,
                     precision: str = "fp32") -> dict[str, str]:
    """The `aot_inductor.metadata` that `reid-export aot` compiles into a package: the contract, the model
    description (`export.onnx.model_description`), the precision, the writer's version and the output names."""
    return {METADATA_KEY: contract.to_json(), PRECISION_KEY: precision, VERSION_KEY: version,
            MODEL_KEY: json.dumps(model, sort_keys=True), OUTPUTS_KEY: json.dumps(list(outputs))}


def package_info(meta: dict[str, str], *, source: str | Path) -> PackageInfo:
    """The package's metadata (read from the archive, or `get_metadata()` of a loaded package) parsed; an
    ExportError naming `source` when the contract or a JSON entry is missing or damaged."""
    return PackageInfo(path=Path(source), contract=contract_from_metadata(meta, source=str(source)),
                       precision=meta.get(PRECISION_KEY, "fp32"),
                       outputs=tuple(_json(meta, OUTPUTS_KEY, source, default=[EMBEDDING_NAME])),
                       isa=meta.get(ISA_KEY, "").strip(), metadata=dict(meta),
                       model=_json(meta, MODEL_KEY, source, default={}))


def read_package_info(path: str | Path) -> PackageInfo:
    """`package_info` of the package at `path`, read from the archive (no torch, no compiled code loaded)."""
    return package_info(read_package_metadata(path), source=path)


def read_package_metadata(path: str | Path) -> dict[str, str]:
    """The metadata AOTInductor stored in the package at `path`; an ExportError naming the file when it is
    missing, not a zip archive, or holds no AOTInductor model."""
    path = Path(path)
    hint = f"write one with `reid-export aot CKPT -o {path}`"
    if not path.is_file():
        raise ExportError(f"{path}: no such AOTInductor package; {hint}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if _is_model_file(n) and n.endswith(_METADATA_FILE)]
            text = archive.read(names[0]) if names else None
    except (OSError, zipfile.BadZipFile) as e:
        raise ExportError(f"{path}: not an AOTInductor package (not a readable zip archive: {e}); {hint}") from None
    if text is None:
        raise ExportError(f"{path}: a zip archive without an AOTInductor model's metadata (*{_METADATA_FILE}), "
                          f"so not a package `reid-export aot` wrote; {hint}")
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise ExportError(f"{path}: its AOTInductor metadata is not valid JSON ({e}); {hint}") from None
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def is_aot_package(path: str | Path) -> bool:
    """Whether `path` is a zip archive holding an AOTInductor model (what --overwrite may replace)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(_is_model_file(name) for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _is_model_file(name: str) -> bool:
    return "/data/aotinductor/" in f"/{name}"


def _json(meta: dict[str, str], key: str, source, *, default):
    text = meta.get(key)
    if not text:
        return default
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ExportError(f"{source}: package metadata '{key}' is not valid JSON ({e}); re-export it with "
                          "`reid-export aot`") from None
    return value if isinstance(value, type(default)) else default
