"""A Triton Inference Server model repository for one artefact.

    model = write_triton_repository("engines/model.onnx", "model_repository/", name="reid", max_batch=64)
    # model_repository/reid/config.pbtxt, model_repository/reid/1/model.onnx

The artefact decides the backend and the file Triton loads: `.onnx` -> backend "onnxruntime",
`1/model.onnx`; `.engine` -> platform "tensorrt_plan", `1/model.plan`; `.xml` -> backend "openvino",
`1/model.xml` + `1/model.bin`. Input and output names, dims (without the batch dimension) and data types
come from the artefact itself (the ONNX graph, the TensorRT sidecar, the IR). `max_batch_size` is the
engine profile's max for a TensorRT engine, else `--max-batch`. `dynamic_batching` gets preferred
sizes and a queue delay, `instance_group` a count and kind, and `parameters` carries the preprocessing
contract and precision under the same `reid_export.*` keys as the ONNX metadata, so a client (the
`triton` runtime) reads the contract from the server instead of re-typing it.

The config is parsed with Triton's own model-config protobuf schema (`model_config.proto`, as shipped
in `tritonclient`) before it is written; without tritonclient it is written unchecked, with a warning.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..artefacts.onnx_metadata import (
    METADATA_KEY,
    PRECISION_KEY,
    contract_from_metadata,
    read_onnx_info,
)
from ..artefacts.tensorrt_sidecar import read_sidecar
from ..contract import Preprocess
from ..errors import ExportError, RuntimeUnavailable
from ..files import atomic_path, check_writable_dir, refuse_own_input, refuse_replacing, write_text
from .settings import DEFAULT_MAX_BATCH

__all__ = [
    "DEFAULT_MAX_BATCH",
    "TensorSpec",
    "TritonModel",
    "describe_artefact",
    "model_config_schema",
    "parse_config",
    "render_config",
    "write_triton_repository",
]

_TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "bfloat16": "TYPE_BF16", "int64": "TYPE_INT64",
                 "int32": "TYPE_INT32", "int8": "TYPE_INT8", "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL",
                 "float64": "TYPE_FP64"}
_INSTALL = 'pip install "reid-export[triton]"'


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str  # Triton's DataType name, e.g. TYPE_FP32
    dims: tuple[int, ...]  # without the batch dimension; -1 where variable


@dataclass(frozen=True)
class TritonModel:
    """What the repository holds for one model, and where."""
    name: str
    folder: Path  # REPO/NAME
    config: Path  # REPO/NAME/config.pbtxt
    files: tuple[Path, ...]  # REPO/NAME/1/model.*
    backend: str  # "onnxruntime" | "tensorrt" | "openvino" (platform tensorrt_plan for TensorRT)
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    contract: Preprocess
    precision: str
    checked: bool  # parsed with Triton's model-config schema
    parameters: dict = field(default_factory=dict)


def write_triton_repository(artefact: str | Path, repository: str | Path, *, name: str = "reid",
                            max_batch: int | None = None, instances: int = 1, kind: str | None = None,
                            preferred_batch_sizes: tuple[int, ...] | None = None, queue_delay_us: int = 100,
                            overwrite: bool = False) -> TritonModel:
    """Write `repository/name/{config.pbtxt, 1/model.*}` for `artefact` (.onnx, .engine or .xml).
    `kind`: "gpu" or "cpu" instances (default gpu, cpu for an OpenVINO IR). An existing model folder is
    refused unless `overwrite`."""
    if not name or "/" in name or name.startswith("."):
        raise ExportError(f"model name {name!r} cannot be a folder name; give a plain name like 'reid'")
    if instances < 1:
        raise ExportError(f"--instances must be at least 1, got {instances}")
    if queue_delay_us < 0:
        raise ExportError(f"the queue delay must be >= 0 microseconds, got {queue_delay_us}")
    described = describe_artefact(artefact, max_batch=max_batch)
    backend = described["backend"]
    kind = kind or ("cpu" if backend == "openvino" else "gpu")
    if kind not in ("gpu", "cpu"):
        raise ExportError(f"instance kind {kind!r}: choose gpu or cpu")
    if backend == "tensorrt" and kind != "gpu":
        raise ExportError("a TensorRT engine runs on a GPU only; use --kind gpu")
    mbs = described["max_batch_size"]
    preferred = _preferred(mbs) if preferred_batch_sizes is None else tuple(sorted(set(preferred_batch_sizes)))
    bad = [b for b in preferred if not 1 <= b <= mbs]
    if bad:
        raise ExportError(f"preferred batch sizes {bad} are outside 1..{mbs} (max_batch_size)")
    parameters = {METADATA_KEY: described["contract"].to_json(), PRECISION_KEY: described["precision"],
                  **described.get("parameters", {})}
    text = render_config(name=name, backend=backend, max_batch_size=mbs, inputs=described["inputs"],
                         outputs=described["outputs"], preferred=preferred, queue_delay_us=queue_delay_us,
                         instances=instances, kind=kind, parameters=parameters, source=Path(artefact).name)
    checked = True
    try:
        parse_config(text)
    except RuntimeUnavailable as e:
        checked = False
        warnings.warn(f"config.pbtxt not checked against Triton's model-config schema: {e}", stacklevel=2)

    folder = Path(repository) / name
    refuse_own_input(folder, [artefact, *(src for src, _ in described["files"])], option="-o/--name", error=ExportError)
    if folder.exists() and not overwrite:
        raise ExportError(f"{folder} already exists; pass --overwrite to replace the model, or choose another --name")
    refuse_replacing(folder, own=lambda path: (path / "config.pbtxt").is_file(), option="-o/--name", error=ExportError,
                     kind="a Triton model folder (NAME/config.pbtxt)", why="it holds no config.pbtxt")
    check_writable_dir(Path(repository), what="model repository")
    version = folder / "1"
    if folder.exists():
        shutil.rmtree(folder)
    files = []
    for src, dest_name in described["files"]:
        dest = version / dest_name
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
        files.append(dest)
    config = write_text(folder / "config.pbtxt", text)
    return TritonModel(name=name, folder=folder, config=config, files=tuple(files), backend=backend,
                       max_batch_size=mbs, inputs=tuple(described["inputs"]), outputs=tuple(described["outputs"]),
                       contract=described["contract"], precision=described["precision"], checked=checked,
                       parameters=parameters)


def describe_artefact(artefact: str | Path, *, max_batch: int | None = None) -> dict:
    """backend, files to copy, tensors, contract, precision and max_batch_size of an .onnx / .engine / .xml."""
    path = Path(artefact)
    if not path.is_file():
        raise ExportError(f"{path}: no such file; give an exported .onnx, a TensorRT .engine or an OpenVINO .xml")
    if max_batch is not None and max_batch < 1:
        raise ExportError(f"--max-batch must be at least 1, got {max_batch}")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return _describe_onnx(path, max_batch or DEFAULT_MAX_BATCH)
    if suffix == ".engine":
        return _describe_engine(path, max_batch)
    if suffix == ".xml":
        return _describe_openvino(path, max_batch or DEFAULT_MAX_BATCH)
    raise ExportError(f"{path}: Triton export takes .onnx, .engine (TensorRT) or .xml (OpenVINO IR), not '{suffix}'")


def render_config(*, name: str, backend: str, max_batch_size: int, inputs, outputs, preferred, queue_delay_us: int,
                  instances: int, kind: str, parameters: dict, source: str) -> str:
    """config.pbtxt text (protobuf text format of Triton's ModelConfig), with comments."""
    lines = [f"# Triton model configuration written by reid-export for {source}.",
             "# Dims exclude the batch dimension; max_batch_size > 0 makes dimension 0 the batch."]
    lines.append(f'name: "{name}"')
    if backend == "tensorrt":
        lines.append('platform: "tensorrt_plan"  # a serialized TensorRT engine; it runs only on the TensorRT version '
                     'and GPU model it was built for')
    else:
        lines.append(f'backend: "{backend}"')
    lines.append(f"max_batch_size: {max_batch_size}")
    for key, tensors in (("input", inputs), ("output", outputs)):
        lines.append(f"{key} [")
        for i, t in enumerate(tensors):
            lines += ["  {", f'    name: "{t.name}"', f"    data_type: {t.data_type}",
                      f"    dims: [ {', '.join(str(d) for d in t.dims)} ]", "  }" + ("," if i < len(tensors) - 1 else "")]
        lines.append("]")
    lines += ["dynamic_batching {  # the server merges concurrent requests up to these batch sizes",
              f"  preferred_batch_size: [ {', '.join(str(b) for b in preferred)} ]",
              f"  max_queue_delay_microseconds: {queue_delay_us}", "}",
              "instance_group [", "  {", f"    count: {instances}", f"    kind: KIND_{kind.upper()}", "  }", "]",
              "# the preprocessing contract and precision, as in the ONNX metadata: clients read them from here"]
    for key, value in parameters.items():
        lines += ["parameters {", f"  key: {json.dumps(key)}", f"  value: {{ string_value: {json.dumps(value)} }}", "}"]
    return "\n".join(lines) + "\n"


def parse_config(text: str):
    """Parse config.pbtxt text with Triton's ModelConfig schema; returns the message. Raises ExportError when it
    does not parse, RuntimeUnavailable when the schema is not installed."""
    from google.protobuf import text_format

    schema = model_config_schema()
    try:
        return text_format.Parse(text, schema.ModelConfig())
    except text_format.ParseError as e:
        raise ExportError(f"config.pbtxt does not parse as Triton's ModelConfig: {e}") from e


def model_config_schema():
    """Triton's compiled `model_config.proto` (the `model_config_pb2` module tritonclient ships)."""
    try:
        from tritonclient.grpc import (
            model_config_pb2,  # needs grpcio, which tritonclient[http] may lack
        )
        return model_config_pb2
    except ImportError:
        pass
    import importlib.util

    spec = importlib.util.find_spec("tritonclient")
    found = [Path(p) / "grpc" / "model_config_pb2.py" for p in (spec.submodule_search_locations or [])] if spec else []
    found = [p for p in found if p.is_file()]
    if not found:
        raise RuntimeUnavailable(f"Triton's model-config schema comes with tritonclient: {_INSTALL}")
    module_spec = importlib.util.spec_from_file_location("reid_export_triton_model_config_pb2", found[0])
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


# -- private helpers ---------------------------------------------------------------------
def _preferred(max_batch: int) -> tuple[int, ...]:
    """Up to three preferred sizes: the largest powers of two below max_batch (from 8), and max_batch."""
    sizes = sorted({max_batch} | {2 ** k for k in range(3, 16) if 2 ** k < max_batch})
    return tuple(sizes[-3:])


def _describe_onnx(path: Path, max_batch: int) -> dict:
    import onnx  # lazy: `import reid_export` stays light
    from onnx import helper

    info = read_onnx_info(path)
    graph = onnx.load(str(path), load_external_data=False).graph

    def spec(value) -> TensorSpec:
        t = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in t.shape.dim]
        dtype = str(helper.tensor_dtype_to_np_dtype(t.elem_type))
        if dtype not in _TRITON_TYPES:
            raise ExportError(f"{path}: tensor {value.name} has type {dtype}, which Triton's config cannot name here")
        return TensorSpec(value.name, _TRITON_TYPES[dtype], tuple(dims[1:]))

    return {"backend": "onnxruntime", "files": [(path, "model.onnx")], "inputs": [spec(v) for v in graph.input],
            "outputs": [spec(v) for v in graph.output], "contract": info.contract, "precision": info.precision,
            "max_batch_size": max_batch}


def _describe_engine(path: Path, max_batch: int | None) -> dict:
    sidecar = read_sidecar(path)  # validated, and its sha256 matches the engine
    profile_max = int(sidecar["profile"]["max"][0])
    if max_batch is not None and max_batch > profile_max:
        raise ExportError(f"--max-batch {max_batch} exceeds the engine's optimisation profile max of {profile_max}; "
                          f"rebuild with `reid-export trt ... --max-batch {max_batch}` or give at most {profile_max}")

    def spec(t: dict) -> TensorSpec:
        if t["dtype"] not in _TRITON_TYPES:
            raise ExportError(f"{path}: tensor {t['name']} has type {t['dtype']}, which Triton's config cannot name")
        return TensorSpec(t["name"], _TRITON_TYPES[t["dtype"]], tuple(int(d) for d in t["shape"][1:]))

    contract = Preprocess.from_dict(sidecar["preprocess"], source=str(path))
    return {"backend": "tensorrt", "files": [(path, "model.plan")], "inputs": [spec(t) for t in sidecar["inputs"]],
            "outputs": [spec(t) for t in sidecar["outputs"]], "contract": contract,
            "precision": sidecar["precision"], "max_batch_size": max_batch or profile_max,
            "parameters": {"reid_export.tensorrt_version": str(sidecar["tensorrt_version"]),
                           "reid_export.gpu": str(sidecar["gpu"].get("name"))}}


def _describe_openvino(path: Path, max_batch: int) -> dict:
    from ..artefacts.openvino_ir import import_openvino, ir_metadata  # lazy: openvino

    weights = path.with_suffix(".bin")
    if not weights.is_file():
        raise ExportError(f"{path}: its weights {weights.name} are missing next to it; re-export the IR")
    ov = import_openvino()
    model = ov.Core().read_model(str(path))
    contract = contract_from_metadata(ir_metadata(model), source=str(path))

    def spec(port) -> TensorSpec:
        dtype = port.get_element_type().to_dtype().name
        if dtype not in _TRITON_TYPES:
            raise ExportError(f"{path}: tensor {port.any_name} has type {dtype}, which Triton's config cannot name")
        dims = [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
        return TensorSpec(port.any_name, _TRITON_TYPES[dtype], tuple(dims[1:]))

    return {"backend": "openvino", "files": [(path, "model.xml"), (weights, "model.bin")],
            "inputs": [spec(p) for p in model.inputs], "outputs": [spec(p) for p in model.outputs],
            "contract": contract, "precision": ir_metadata(model).get(PRECISION_KEY, "fp32"),
            "max_batch_size": max_batch}
