"""What an exported ONNX file says about itself: tensor names, the preprocessing contract, the model,
its precision and calibration, all in `metadata_props`.

`export` writes these and every runtime reads them back, so this module imports neither side.
`read_onnx_info` parses a file once (without its weights) and returns everything a caller needs:
contract, precision, opset, metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..contract import METADATA_KEY, Preprocess
from ..errors import ExportError

__all__ = ["INPUT_NAME", "EMBEDDING_NAME", "ATTRIBUTES_NAME", "METADATA_KEY", "MODEL_KEY", "PRECISION_KEY",
           "VERSION_KEY", "CALIBRATION_KEY", "IMPORT_KEY", "OnnxInfo", "read_onnx_info", "read_metadata", "read_contract",
           "contract_from_metadata", "set_metadata", "opset_of"]

INPUT_NAME = "input"
EMBEDDING_NAME = "embedding"
ATTRIBUTES_NAME = "attributes"
MODEL_KEY = "reid_export.model"  # JSON: arch, embedding_dim, ... (what ReidNet was built with)
PRECISION_KEY = "reid_export.precision"  # fp32 | fp16 | int8
VERSION_KEY = "reid_export.version"  # the reid-export that wrote the file
CALIBRATION_KEY = "reid_export.calibration"  # JSON, INT8 only: method, images, activations, data source
IMPORT_KEY = "reid_export.import"  # JSON, weights trained elsewhere only: models.foreign.ImportSummary (source, ...)


@dataclass(frozen=True)
class OnnxInfo:
    path: Path
    contract: Preprocess  # the preprocessing contract in the metadata
    precision: str  # fp32 | fp16 | int8
    opset: int | None  # the default-domain opset the graph really declares
    metadata: dict[str, str] = field(default_factory=dict)  # every metadata_props entry
    model: dict = field(default_factory=dict)  # MODEL_KEY, parsed
    calibration: dict = field(default_factory=dict)  # CALIBRATION_KEY, parsed ({} unless INT8)
    input_shape: tuple = ()  # the graph input's dims as declared (symbolic batch as a string)
    imported: dict = field(default_factory=dict)  # IMPORT_KEY, parsed ({} unless imported from another project)
    outputs: tuple = ()  # (name, dims) of each graph output, dims as in input_shape


def read_onnx_info(path: str | Path) -> OnnxInfo:
    """Parse `path` once (no external weights) into an `OnnxInfo`; clear errors for a missing, unreadable
    or foreign file."""
    proto = _load(path)
    meta = {p.key: p.value for p in proto.metadata_props}
    dims = _dims(proto.graph.input[0]) if proto.graph.input else ()
    return OnnxInfo(path=Path(path), contract=contract_from_metadata(meta, source=str(path)),
                    precision=meta.get(PRECISION_KEY, "fp32"), opset=opset_of(proto), metadata=meta,
                    model=_json(meta.get(MODEL_KEY), path, MODEL_KEY),
                    calibration=_json(meta.get(CALIBRATION_KEY), path, CALIBRATION_KEY), input_shape=dims,
                    imported=_json(meta.get(IMPORT_KEY), path, IMPORT_KEY),
                    outputs=tuple((o.name, _dims(o)) for o in proto.graph.output))


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata_props of an ONNX file as a dict, without loading the weights."""
    return {p.key: p.value for p in _load(path).metadata_props}


def read_contract(path: str | Path) -> Preprocess:
    """The preprocessing contract stored in an ONNX file by `export.onnx.export_onnx`."""
    return contract_from_metadata(read_metadata(path), source=str(path))


def contract_from_metadata(meta: dict[str, str], *, source: str) -> Preprocess:
    """The contract in metadata already read with `read_metadata` (so the file is parsed once)."""
    if METADATA_KEY not in meta:
        raise ExportError(
            f"{source}: has no '{METADATA_KEY}' metadata, so its input size and normalisation are unknown; "
            f"if it was exported elsewhere, record them with `reid-export adopt {source} -o ADOPTED.onnx --height H "
            "--width W --mean R,G,B --std R,G,B --color rgb` (or with a boxmot NAME.onnx.metadata.json beside it) "
            "and use the adopted copy; a reid-export checkpoint is exported with `reid-export onnx` (which records them)"
        )
    return Preprocess.from_json(meta[METADATA_KEY], source=source)


def set_metadata(proto, meta: dict[str, str]) -> None:
    """Set (replace) string entries in an ONNX ModelProto's metadata_props."""
    keep = [p for p in proto.metadata_props if p.key not in meta]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def opset_of(proto) -> int | None:
    """The default-domain (ai.onnx) opset a ModelProto declares."""
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=None)


def _load(path: str | Path):
    import onnx  # lazy: `import reid_export` stays light

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such ONNX file; export one with `reid-export onnx CKPT -o {path}`")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ExportError(f"{path}: not a readable ONNX file ({e}); re-export it with `reid-export onnx`") from e
    _check_external_data(path, proto)
    return proto


def _check_external_data(path: Path, proto) -> None:
    """Every file the graph names for its weights (external data) resolves inside the model's folder, links
    followed: a model never makes a runtime read a file elsewhere (checked before any runtime loads it)."""
    folder = path.parent.resolve()
    for tensor, location in _external_locations(proto.graph):
        plain = bool(location) and "\x00" not in location and not Path(location).is_absolute()
        target = (path.parent / location).resolve() if plain else None
        if target is None or target == folder or not target.is_relative_to(folder):
            how = "a link out of" if plain and ".." not in Path(location).parts else "outside"
            raise ExportError(f"{path}: tensor {tensor!r} takes its weights from {location[:200]!r}, {how} the "
                              f"model's folder {folder}; a model may only name data files beside it, so it was "
                              "refused for safety: keep the .onnx and its data file in one folder (save it with a "
                              "plain file name as the location)")


def _external_locations(graph):
    """(tensor name, location) of each tensor in `graph` and its subgraphs whose data is in another file."""
    tensors = [*graph.initializer, *(t for s in graph.sparse_initializer for t in (s.values, s.indices))]
    for node in graph.node:
        for attr in node.attribute:
            tensors += [attr.t, *attr.tensors]
            for sub in (attr.g, *attr.graphs):
                yield from _external_locations(sub)
    for tensor in tensors:
        if tensor.data_location == tensor.EXTERNAL:
            yield tensor.name, next((e.value for e in tensor.external_data if e.key == "location"), "")


def _dims(value_info) -> tuple:
    """A graph input's or output's dims as declared: ints, a symbolic one by its name, "?" when unnamed."""
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                 for d in value_info.type.tensor_type.shape.dim)


def _json(text: str | None, path, key: str) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ExportError(f"{path}: metadata '{key}' is not valid JSON ({e}); re-export the file") from e
    return value if isinstance(value, dict) else {}
