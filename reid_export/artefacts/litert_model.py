"""A LiteRT model (`.tflite`) as the project writes it: the converter's flatbuffer with one more entry in the model's
own `metadata` list, `reid_export`, whose buffer holds the project's metadata (`edge_metadata`) as one JSON object.

    write_tflite(converted_bytes, "engines/model.tflite", meta)
    info = read_tflite_info("engines/model.tflite")     # EdgeInfo, without the LiteRT interpreter

The TFLite schema's `Model.metadata` (name -> buffer) is the format's place for data that is not part of the graph
(the converter keeps `min_runtime_version` there); every TFLite/LiteRT reader ignores entries it does not know,
so the contract travels inside the file and needs no sidecar. It is read and written with the schema's generated
Python classes (`ai_edge_litert.schema_py_generated`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ExportError
from ..files import atomic_path
from .edge_metadata import (
    EdgeInfo,
    edge_info,
    has_flatbuffer_id,
    metadata_json,
    parse_metadata_json,
    read_flatbuffer,
)
from .tensorrt_sidecar import file_sha256

__all__ = ["METADATA_NAME", "is_tflite_file", "output_order", "read_tflite_info", "tflite_metadata", "write_tflite"]

METADATA_NAME = "reid_export"  # the Model.metadata entry holding the project's metadata
_IDENTIFIER = b"TFL3"  # the TFLite flatbuffer's file identifier
_TYPES = {0: "float32", 9: "int8", 3: "uint8", 1: "float16", 2: "int32"}  # TensorType values the inputs may have


def write_tflite(model: bytes, out: str | Path, meta: dict[str, str]) -> Path:
    """Write the converted model with `meta` in its metadata list (replacing an earlier entry of that name),
    atomically, then read it back to check the contract is there."""
    import flatbuffers  # lazy: comes with ai-edge-litert (the `edge` extra)
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    out = Path(out)
    if out.suffix != ".tflite":
        raise ExportError(f"{out}: a LiteRT model's file name must end in .tflite")
    tree = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    if any(getattr(b, "offset", 0) > 1 for b in tree.buffers or []):  # weights stored past the flatbuffer (>2 GB)
        raise ExportError(f"{out}: the converter wrote its weights outside the flatbuffer (a model over 2 GB), where "
                          "metadata cannot be added; the project's edge exports are for models that fit in one")
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata_json(meta).encode(), dtype=np.uint8)
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(tree.buffers) - 1
    tree.metadata = [m for m in tree.metadata or [] if _name(m.name) != METADATA_NAME] + [entry]
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(tree.Pack(builder), file_identifier=_IDENTIFIER)
    with atomic_path(out) as tmp:
        tmp.write_bytes(bytes(builder.Output()))
        read_tflite_info(tmp)  # the contract reads back, or nothing is written
    return out


def tflite_metadata(data: bytes, *, source: str) -> dict[str, str]:
    """The project's metadata in a .tflite's bytes; refused naming the command that writes it when absent."""
    from ai_edge_litert import schema_py_generated as schema  # lazy: the `edge` extra

    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if _name(entry.Name()) == METADATA_NAME:
            return parse_metadata_json(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode(), source=source)
    raise ExportError(f"{source}: has no '{METADATA_NAME}' metadata, so its input size and normalisation are unknown; "
                      "a reid-export checkpoint is exported with `reid-export litert CKPT -o MODEL.tflite`, which "
                      "records them")


def read_tflite_info(path: str | Path) -> EdgeInfo:
    """Metadata, input (shape, dtype, quantisation) and outputs of a .tflite, from its flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema  # lazy: the `edge` extra

    path = Path(path)
    data = read_flatbuffer(path, _IDENTIFIER,
                           missing=f"no such LiteRT model; write one with `reid-export litert CKPT -o {path}`",
                           foreign="not a LiteRT/TFLite model (no TFL3 identifier); export one with "
                                   f"`reid-export litert CKPT -o {path}`")
    meta = tflite_metadata(data, source=str(path))
    model = schema.Model.GetRootAs(data, 0)
    graph = model.Subgraphs(0)
    tensor = graph.Tensors(graph.Inputs(0))
    dims = tuple(int(d) for d in tensor.ShapeAsNumpy())
    outputs = [tuple(int(d) for d in graph.Tensors(i).ShapeAsNumpy()) for i in _output_tensors(model, graph)]
    quant = tensor.Quantization()
    scale = quant.ScaleAsNumpy() if quant is not None and quant.ScaleLength() else None
    extras = {"input_dtype": _TYPES.get(tensor.Type(), str(tensor.Type())), "converted_batch": dims[0] if dims else None}
    if scale is not None:
        extras["input_quantization"] = {"scale": float(scale[0]), "zero_point": int(quant.ZeroPointAsNumpy()[0])}
    return edge_info(meta, path=path, inputs=[("input", (-1, *dims[1:]))],
                     outputs=[(-1, *d[1:]) for d in outputs], sha256=file_sha256(path),
                     size_bytes=path.stat().st_size, extras=extras)


def is_tflite_file(path: str | Path) -> bool:
    """Whether `path` carries the TFLite identifier (what --overwrite may replace)."""
    return has_flatbuffer_id(path, _IDENTIFIER)


def _output_tensors(model, graph) -> list[int]:
    """The output tensors in the order of the torch module's outputs: the signature's output_0, output_1, ...
    (the converter's names), else the subgraph's own order."""
    if not model.SignatureDefsLength():
        return [graph.Outputs(i) for i in range(graph.OutputsLength())]
    signature = model.SignatureDefs(0)
    named = {_name(signature.Outputs(i).Name()): signature.Outputs(i).TensorIndex()
             for i in range(signature.OutputsLength())}
    return [named[name] for name in output_order(named)]


def output_order(names) -> list[str]:
    """A signature's output names in the torch module's order (output_0, output_1, ..., output_10)."""
    return sorted(names, key=_output_number)


def _output_number(name: str) -> tuple[int, str]:
    """output_10 after output_9."""
    tail = name.rpartition("_")[2]
    return (int(tail), name) if tail.isdigit() else (1 << 30, name)


def _name(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name or "")
