"""The one place an ONNX artefact is written: the graph with the project's metadata, and its tracker sidecar.

    write_onnx_artefact(proto, "engines/model.onnx", contract=contract, precision="fp32",
                        model_info={"arch": "resnet50", "embedding_dim": 512})

Every export path (fp32, fp16, INT8, accuracy-controlled INT8, DeepStream, adopt, model factories) ends
here, so no path can write a file without the preprocessing contract in its `metadata_props` or without
`NAME.onnx.metadata.json` beside it (what boxmot reads). The metadata already in `proto` is kept;
`extra` entries are laid over it, then the contract, precision and model description. The ONNX is
written atomically (`files.atomic_path`), then its sidecar, built from the file just written so the two
always agree; if the sidecar cannot be written the ONNX is removed again, never left without it.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import __version__
from ..contract import Preprocess
from ..errors import ExportError
from ..files import atomic_path
from .onnx_metadata import METADATA_KEY, MODEL_KEY, PRECISION_KEY, VERSION_KEY, set_metadata
from .tracker_sidecar import write_tracker_sidecar

__all__ = ["ONNX_PRECISIONS", "write_onnx_artefact"]

ONNX_PRECISIONS = ("fp32", "fp16", "int8")  # what PRECISION_KEY may say


def write_onnx_artefact(proto_or_path, out: str | Path, *, contract: Preprocess | None = None,
                        precision: str | None = None, model_info: dict | None = None,
                        extra: dict[str, object] | None = None, check: bool = True) -> Path:
    """Write the ONNX `proto_or_path` (a ModelProto, or a path to load) to `out` with the project's metadata,
    then `out`'s tracker sidecar. `contract`, `precision` and `model_info` replace those entries when given and
    must be present afterwards (from the graph's own metadata otherwise); `extra` values that are not strings
    are stored as JSON. `check` runs onnx's checker first. Returns `out`."""
    import onnx  # lazy: `import reid_export` stays light

    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"{out}: an ONNX artefact's file name must end in .onnx")
    proto = onnx.load(str(proto_or_path)) if isinstance(proto_or_path, (str, Path)) else proto_or_path
    meta = {key: value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            for key, value in (extra or {}).items()}
    if contract is not None:
        meta[METADATA_KEY] = contract.to_json()
    if precision is not None:
        meta[PRECISION_KEY] = precision
    if model_info is not None:
        meta[MODEL_KEY] = json.dumps(model_info, sort_keys=True)
    meta[VERSION_KEY] = __version__
    set_metadata(proto, meta)
    _check_complete(proto, out)
    if check:
        onnx.checker.check_model(proto)
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    try:
        write_tracker_sidecar(out)  # out.onnx.metadata.json, from the file just written
    except BaseException:
        out.unlink(missing_ok=True)  # an ONNX is never left without its sidecar
        raise
    return out


def _check_complete(proto, out: Path) -> None:
    """The contract, the precision and the model description must all be there, the precision a known one."""
    meta = {p.key: p.value for p in proto.metadata_props}
    missing = [key for key in (METADATA_KEY, PRECISION_KEY, MODEL_KEY) if key not in meta]
    if missing:
        raise ExportError(f"{out}: the artefact would lack the metadata {', '.join(missing)} (the writer needs the "
                          "contract, precision and model description); this is a bug in the export path")
    if meta[PRECISION_KEY] not in ONNX_PRECISIONS:
        raise ExportError(f"{out}: precision {meta[PRECISION_KEY]!r} is not one of {', '.join(ONNX_PRECISIONS)}")
    Preprocess.from_json(meta[METADATA_KEY], source=str(out))  # a contract the runtimes can read back
