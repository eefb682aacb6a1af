"""An ExecuTorch program (`.pte`) as the project writes it: the graph's `forward` method and a constant method
`reid_export_metadata` that returns the project's metadata (`edge_metadata`) as one JSON string.

    constant_methods = {METADATA_METHOD: metadata_json(meta)}   # handed to to_edge_transform_and_lower
    write_pte(program.buffer, "engines/model.pte")
    info = read_pte_info("engines/model.pte")                   # EdgeInfo, without the ExecuTorch runtime

A constant method is ExecuTorch's own place for configuration in a program (what `get_metadata`-style methods in
ExecuTorch models are), so the contract travels inside the file and needs no sidecar; any ExecuTorch runtime
reads it with `program.load_method("reid_export_metadata").execute([])`. Reading it here parses the program's
flatbuffer with ExecuTorch's own serializer and never loads the runtime.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ExportError
from ..files import atomic_path
from .edge_metadata import (
    EdgeInfo,
    edge_info,
    has_flatbuffer_id,
    parse_metadata_json,
    read_flatbuffer,
)
from .tensorrt_sidecar import file_sha256

__all__ = ["FORWARD_METHOD", "METADATA_METHOD", "is_pte_file", "read_pte_info", "write_pte"]

METADATA_METHOD = "reid_export_metadata"  # constant method: returns the metadata JSON string
FORWARD_METHOD = "forward"
_MAGIC = b"ET"  # a .pte's flatbuffer file identifier starts with "ET" (ET12, ...), at bytes 4-8


def write_pte(buffer: bytes, out: str | Path) -> Path:
    """Write a serialised program atomically; it must hold the metadata method (checked by reading it back)."""
    out = Path(out)
    if out.suffix != ".pte":
        raise ExportError(f"{out}: an ExecuTorch program's file name must end in .pte")
    with atomic_path(out) as tmp:
        tmp.write_bytes(bytes(buffer))
        read_pte_info(tmp)  # a program the runtimes can read its contract from, or nothing is written
    return out


def read_pte_info(path: str | Path) -> EdgeInfo:
    """The program's metadata, input and outputs (sizes as memory-planned: the batch axis at its upper bound,
    reported as -1), read from the flatbuffer."""
    from executorch.exir._serialize._program import (
        deserialize_pte_binary,  # lazy: executorch is an optional extra
    )

    path = Path(path)
    data = read_flatbuffer(path, _MAGIC,
                           missing=f"no such ExecuTorch program; write one with `reid-export executorch CKPT -o {path}`",
                           foreign="not an ExecuTorch program (no ET flatbuffer header); export one with "
                                   f"`reid-export executorch CKPT -o {path}`")
    try:
        program = deserialize_pte_binary(data).program
    except Exception as e:  # noqa: BLE001 - the serializer's own errors: a truncated or foreign file
        raise ExportError(f"{path}: not a readable ExecuTorch program ({type(e).__name__}: {str(e)[:200]}); "
                          "export it again with `reid-export executorch`") from None
    plans = {plan.name: plan for plan in program.execution_plan}
    if METADATA_METHOD not in plans or FORWARD_METHOD not in plans:
        raise ExportError(f"{path}: has no '{METADATA_METHOD}' method, so its input size and normalisation are "
                          f"unknown (methods: {', '.join(plans)}); a reid-export checkpoint is exported with "
                          "`reid-export executorch CKPT -o MODEL.pte`, which records them")
    meta = parse_metadata_json(plans[METADATA_METHOD].values[0].val.string_val, source=str(path))
    forward = plans[FORWARD_METHOD]
    inputs = [_dims(forward.values[i].val) for i in forward.inputs]
    outputs = [_dims(forward.values[i].val) for i in forward.outputs]
    planned = inputs[0][0] if inputs and inputs[0] else None
    return edge_info(meta, path=path, inputs=[("input", (-1, *inputs[0][1:]))],
                     outputs=[(-1, *dims[1:]) for dims in outputs], sha256=file_sha256(path),
                     size_bytes=path.stat().st_size, extras={"planned_batch": planned, "methods": sorted(plans)})


def is_pte_file(path: str | Path) -> bool:
    """Whether `path` starts like an ExecuTorch program (what --overwrite may replace)."""
    return has_flatbuffer_id(path, _MAGIC)


def _dims(tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in getattr(tensor, "sizes", ()))
