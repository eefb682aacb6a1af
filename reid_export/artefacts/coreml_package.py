"""A Core ML package (`.mlpackage`, a folder) as the project writes it: the converted ML program with the project's
metadata (`edge_metadata`) in the model's own `user_defined_metadata` (string -> string, as ONNX's
`metadata_props`), one entry per key.

    save_mlpackage(mlmodel, "engines/model.mlpackage", meta)
    info = read_mlpackage_info("engines/model.mlpackage")   # EdgeInfo, from the package's spec (no Core ML runtime)

Core ML runs only on Apple platforms: on Linux a package is converted, saved and read back (its spec), never run.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from pathlib import Path

from ..errors import ExportError
from .edge_metadata import EdgeInfo, edge_info

__all__ = ["is_mlpackage", "package_sha256", "read_mlpackage_info", "save_mlpackage"]

_DTYPES = {65568: "float32", 65552: "float16", 131104: "int32"}  # Core ML ArrayDataType values


def save_mlpackage(mlmodel, out: str | Path, meta: dict[str, str], *, overwrite: bool = False) -> Path:
    """Set `meta` in the model's user_defined_metadata and save it as `out` (a folder): written beside it under a
    temporary name and renamed, so `out` is never half written; an existing package is replaced only with
    `overwrite`. The saved package is read back to check the contract is there."""
    out = Path(out)
    if out.suffix != ".mlpackage":
        raise ExportError(f"{out}: a Core ML package's name must end in .mlpackage")
    for key, value in meta.items():
        mlmodel.user_defined_metadata[key] = value
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp.mlpackage")
    try:
        mlmodel.save(str(tmp))
        read_mlpackage_info(tmp)  # the contract reads back, or nothing is kept
        if out.exists():
            if not (overwrite and is_mlpackage(out)):
                raise ExportError(f"{out} already exists{'' if overwrite else '; pass --overwrite to replace it'}"
                                  f"{' and is not a Core ML package' if overwrite else ''}; choose another -o path")
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def read_mlpackage_info(path: str | Path) -> EdgeInfo:
    """The package's metadata, input and outputs from its spec (`coremltools.utils.load_spec`)."""
    import coremltools as ct  # lazy: the `edge` extra

    path = Path(path)
    if not is_mlpackage(path):
        raise ExportError(f"{path}: not a Core ML package (a folder with a Manifest.json); write one with "
                          f"`reid-export coreml CKPT -o {path}`")
    try:
        spec = ct.utils.load_spec(str(path))
    except Exception as e:  # noqa: BLE001 - coremltools' own errors: a damaged package
        raise ExportError(f"{path}: not a readable Core ML package ({type(e).__name__}: {str(e)[:200]}); export it "
                          "again with `reid-export coreml`") from None
    description = spec.description
    meta = {k: v for k, v in description.metadata.userDefined.items() if k.startswith("reid_export.")}
    dims = [_dims(t) for t in description.output]
    inputs = [(t.name, _dims(t)) for t in description.input]
    extras = {"spec_version": spec.specificationVersion, "input_name": inputs[0][0] if inputs else None,
              "input_dtype": _DTYPES.get(description.input[0].type.multiArrayType.dataType) if inputs else None,
              "output_names": [t.name for t in description.output],
              "coremltools": description.metadata.userDefined.get("com.github.apple.coremltools.version")}
    return edge_info(meta, path=path, inputs=[("input", inputs[0][1] if inputs else ())], outputs=dims,
                     sha256=package_sha256(path), size_bytes=_size(path), extras=extras)


def is_mlpackage(path: str | Path) -> bool:
    """A folder holding a Core ML Manifest.json (what --overwrite may replace)."""
    return Path(path).is_dir() and (Path(path) / "Manifest.json").is_file()


def package_sha256(path: str | Path) -> str:
    """One sha256 over the package's files: each relative path and its bytes, in sorted order."""
    digest = hashlib.sha256()
    root = Path(path)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _dims(feature) -> tuple[int, ...]:
    """A feature's shape; a range along an axis (a flexible batch) as -1."""
    array = feature.type.multiArrayType
    dims = [int(d) for d in array.shape]
    ranges = array.shapeRange.sizeRanges if array.WhichOneof("ShapeFlexibility") == "shapeRange" else []
    return tuple(-1 if i < len(ranges) and ranges[i].lowerBound != ranges[i].upperBound else d
                 for i, d in enumerate(dims))


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
