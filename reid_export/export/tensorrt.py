"""TensorRT engines from reid-export ONNX files, each with a JSON sidecar saying what it is.

    info = build_engine("engines/model.onnx", "engines/model.engine", BuildSettings(max_batch=128))

An engine is a compiled plan for one TensorRT version and one GPU model, with one optimisation
profile (the batch sizes it accepts). None of that, nor the preprocessing contract, can be read back
from the plan file, so `build_engine` writes `NAME.engine.json` next to it: TensorRT version, GPU and
compute capability, the profile, the ONNX precision and sha256, the contract, the I/O tensors and the
precision TensorRT chose for each layer. The TensorRT runtime reads the sidecar and refuses an engine
built for another TensorRT or GPU (`check_compatible`) before TensorRT itself fails obscurely.

Precision lives in the ONNX graph (`reid-export onnx --precision fp16|int8`). TensorRT 11 only builds
strongly typed networks and removed BuilderFlag.FP16/INT8 and the INT8 calibrators; on TensorRT 10
`fp16_flag` still lets the builder pick FP16 kernels for an FP32 graph (weak typing, deprecated).

This module holds the build settings, `build_engine` / `trt_command`, size parsing and the inspector's
layer-precision summary (`layer_precision_summary`). The sidecar format and its checks live in
`artefacts.tensorrt_sidecar` (read by the runtime too); the TensorRT import and logger in
`artefacts.tensorrt_engine`. Only `parse_size` and `layer_precision_summary` run without TensorRT; building needs
an NVIDIA GPU and `pip install tensorrt`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..artefacts.onnx_metadata import read_onnx_info
from ..artefacts.tensorrt_engine import import_tensorrt, tensorrt_logger, tensorrt_major
from ..artefacts.tensorrt_sidecar import capability_string, new_sidecar, sidecar_path, sm_name, write_sidecar
from ..errors import ExportError, RuntimeUnavailable
from ..files import ENGINES_DIR, refuse_existing, write_bytes
from .settings import BuildSettings, parse_size

__all__ = ["BuildSettings", "EngineInfo", "build_engine", "trt_command", "parse_size", "layer_precision_summary"]

@dataclass
class EngineInfo:
    """What `build_engine` wrote, for the CLI to print."""
    engine: Path
    sidecar: Path
    sidecar_data: dict
    build_seconds: float
    warnings: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        s = self.sidecar_data
        prof, counts = s["profile"], s["layers"].get("counts", {})
        layers = ", ".join(f"{n} {p}" for p, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "unknown"
        return [
            f"wrote {self.engine} and {self.sidecar.name} in {self.build_seconds:.1f} s",
            f"TensorRT {s['tensorrt_version']} on {s['gpu']['name'] or 'an unrecorded GPU'} "
            f"({sm_name(s['gpu']['compute_capability'])}), "
            f"{s['precision']} graph{' + FP16 builder flag' if s['builder'].get('fp16_flag') else ''}",
            f"input {prof['input']}: batch {prof['min'][0]}..{prof['max'][0]} (tuned for {prof['opt'][0]}), "
            f"shape {'x'.join(map(str, prof['min'][1:]))}",
            f"layer precisions: {layers}",
        ]


# -- building ------------------------------------------------------------------------------
def trt_command(onnx_path: str | Path, output: str | Path | None = None, *, min_batch: int = 1, opt_batch: int = 32,
                max_batch: int = 128, workspace: str | int = "4GiB", timing_cache: str | Path | None = None,
                fp16_flag: bool = False, overwrite: bool = False) -> EngineInfo:
    """`reid-export trt`: ONNX -> engine + sidecar. `output` defaults to engines/<onnx name>.engine."""
    output = Path(output) if output else ENGINES_DIR / f"{Path(onnx_path).stem}.engine"
    settings = BuildSettings(min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch, workspace=workspace,
                             timing_cache=timing_cache, fp16_flag=fp16_flag)
    return build_engine(onnx_path, output, settings, overwrite=overwrite)


def build_engine(onnx_path: str | Path, engine_path: str | Path, settings: BuildSettings = BuildSettings(), *,
                 overwrite: bool = False) -> EngineInfo:
    """Build a TensorRT engine for `onnx_path` (written by `reid-export onnx`) with one batch profile.

    Checks that need no TensorRT come first (output path, ONNX metadata); then TensorRT parses the ONNX,
    builds with DETAILED profiling verbosity, the engine inspector reports each layer's precision, and
    engine and sidecar are written atomically. An existing engine is refused unless `overwrite`."""
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if engine_path.suffix != ".engine":
        raise ExportError(f"{engine_path}: the engine file must end in .engine (runtimes pick TensorRT by that suffix)")
    refuse_existing(engine_path, overwrite=overwrite, error=ExportError, inputs=(onnx_path, settings.timing_cache),
                    own=lambda path: sidecar_path(path).is_file(),
                    kind="a TensorRT engine written by `reid-export trt` (NAME.engine with NAME.engine.json beside it)")
    info = read_onnx_info(onnx_path)  # says clearly when the ONNX is missing, unreadable or not reid-export's
    contract, precision, calibration = info.contract, info.precision, info.calibration
    if precision == "int8" and calibration.get("activations") == "uint8":
        raise ExportError(
            f"{onnx_path}: INT8 graph with asymmetric uint8 activations; TensorRT only runs symmetric INT8 Q/DQ "
            "(zero point 0, per its 'Working with Quantized Types' guide). Re-export with "
            "`reid-export onnx CKPT --precision int8 --int8-activations int8`"
        )

    trt = import_tensorrt()
    major = tensorrt_major(trt.__version__)
    strongly_typed = _resolve_typing(settings, major, precision)
    gpu_name, capability = _gpu_info()
    messages: list[str] = []
    logger = tensorrt_logger(trt, messages)

    try:
        builder = trt.Builder(logger)
    except Exception as e:  # the bindings raise when no builder can be made (no GPU, driver or CUDA mismatch)
        raise RuntimeUnavailable(
            f"TensorRT {trt.__version__} could not create a builder ({e}); it needs a working NVIDIA GPU and a driver "
            "recent enough for its CUDA version: check `nvidia-smi`, or use NVIDIA's TensorRT container"
        ) from e
    # TensorRT 10: networks are always explicit batch (EXPLICIT_BATCH is deprecated and ignored);
    # STRONGLY_TYPED opts into strong typing. TensorRT 11: every network is strongly typed and the flag is
    # accepted but ignored, so no flag is passed there.
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed and major == 10 else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise ExportError(f"TensorRT {trt.__version__} could not parse {onnx_path}:\n"
                          + "\n".join(_parser_errors(parser)) +
                          "\nre-export with `reid-export onnx` (opset 17+), or use a newer TensorRT")
    input_name, shapes = _profile_shapes(network, contract.input_shape, settings, onnx_path)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the inspector reports per-layer formats
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, *shapes)
    config.add_optimization_profile(profile)
    if settings.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    cache, cache_note = _attach_timing_cache(config, settings.timing_cache)

    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    build_seconds = time.perf_counter() - start
    if plan is None:
        raise ExportError(f"TensorRT {trt.__version__} failed to build an engine from {onnx_path}:\n"
                          + "\n".join(messages[-10:] or ["(no message from TensorRT)"])
                          + "\ncheck the GPU has enough free memory (or raise --workspace) and that the ONNX "
                            "graph's operators are supported")
    engine_bytes = bytes(plan)

    inspector_json, io = _inspect(trt, logger, engine_bytes, input_name, shapes[1])
    expected = "fp16" if settings.fp16_flag and precision == "fp32" else precision
    layers = layer_precision_summary(inspector_json, expected=expected)
    sidecar = new_sidecar(
        engine_bytes=engine_bytes, engine_name=engine_path.name, onnx_path=onnx_path, contract=contract.to_dict(),
        precision=precision, tensorrt_version=trt.__version__, gpu_name=gpu_name, compute_capability=capability,
        profile={"input": input_name, "min": shapes[0], "opt": shapes[1], "max": shapes[2]},
        inputs=io["inputs"], outputs=io["outputs"], layers=layers, build_seconds=build_seconds,
        builder={"strongly_typed": strongly_typed, "fp16_flag": settings.fp16_flag,
                 "workspace_bytes": settings.workspace,
                 "timing_cache": str(settings.timing_cache) if settings.timing_cache else None},
    )
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(engine_path, engine_bytes)
    side = write_sidecar(engine_path, sidecar)
    warnings = list(layers["warnings"])
    if cache is not None:
        write_bytes(Path(settings.timing_cache), bytes(cache.serialize()))
    if cache_note:
        warnings.append(cache_note)
    if gpu_name is None:
        warnings.append("torch.cuda is unavailable, so the sidecar records no GPU; the runtime cannot check the "
                        "engine is used on the GPU it was built for")
    return EngineInfo(engine_path, side, sidecar, build_seconds, warnings)


# -- private helpers -------------------------------------------------------------------------
def _resolve_typing(settings: BuildSettings, major: int, precision: str) -> bool:
    if settings.fp16_flag and major >= 11:
        raise ExportError(
            "--fp16-flag: TensorRT 11 removed BuilderFlag.FP16 (networks are always strongly typed and take their "
            "precision from the graph); export an FP16 graph with `reid-export onnx CKPT --precision fp16` "
            "and build that without --fp16-flag"
        )
    if settings.fp16_flag and precision == "fp16":
        raise ExportError("--fp16-flag on an ONNX graph that is already FP16 adds nothing; drop --fp16-flag")
    if major >= 11:
        if settings.strongly_typed is False:
            raise ExportError("TensorRT 11 builds only strongly typed networks; leave strongly_typed unset")
        return True
    return not settings.fp16_flag if settings.strongly_typed is None else settings.strongly_typed


def _gpu_info() -> tuple[str | None, str | None]:
    import torch

    if not torch.cuda.is_available():
        return None, None
    return torch.cuda.get_device_name(), capability_string(torch.cuda.get_device_capability())


def _parser_errors(parser) -> list[str]:
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        node = _call(err, "node_name") or f"#{_call(err, 'node')}"
        op = _call(err, "node_operator")
        lines.append(f"  node {node}{f' ({op})' if op else ''}: {_call(err, 'desc')} [{_call(err, 'code')}]")
    return lines or ["  (the parser reported no detail)"]


def _call(obj, method: str):
    try:
        return getattr(obj, method)()
    except Exception:  # older bindings lack node_name()/node_operator()
        return None


def _profile_shapes(network, chw: tuple[int, int, int], settings: BuildSettings, onnx_path: Path):
    if network.num_inputs != 1:
        raise ExportError(f"{onnx_path}: expected one input (N, 3, H, W), found {network.num_inputs}; "
                          "export with `reid-export onnx`")
    tensor = network.get_input(0)
    dims = tuple(int(d) for d in tensor.shape)
    if len(dims) != 4 or dims[1:] != tuple(chw):
        raise ExportError(f"{onnx_path}: input {tensor.name!r} has shape {dims}, its preprocessing contract says "
                          f"(N, {', '.join(map(str, chw))}); re-export with `reid-export onnx`")
    if dims[0] != -1 and not dims[0] == settings.min_batch == settings.max_batch:
        raise ExportError(f"{onnx_path}: the batch axis is fixed at {dims[0]}, so batches {settings.min_batch}.."
                          f"{settings.max_batch} cannot be served; re-export with a dynamic batch (`reid-export onnx`)")
    return tensor.name, [[b, *chw] for b in settings.batch_range]


def _attach_timing_cache(config, path):
    """Load the timing cache file when present (else start empty) and attach it; (cache, note) or (None, None)."""
    if path is None:
        return None, None
    path, note = Path(path), None
    blob = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(blob)
    # ignore_mismatch=False: a cache from another GPU or TensorRT version is rejected, not merged
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        note = f"timing cache {path} was made on another GPU or TensorRT version; starting a new one"
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache, note


def _inspect(trt, logger, engine_bytes: bytes, input_name: str, opt_shape: list[int]) -> tuple[dict, dict]:
    """Deserialize the fresh engine: inspector JSON (at the opt shape, so formats are concrete) and I/O tensors."""
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(engine_bytes)
    if engine is None:
        raise ExportError("TensorRT built an engine it cannot deserialize; see the TensorRT messages above")
    context = engine.create_execution_context()
    context.set_input_shape(input_name, opt_shape)
    inspector = engine.create_engine_inspector()
    # without a context whose input shapes are set, dynamic-shape layers report no format information
    inspector.execution_context = context
    info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    io = {"inputs": [], "outputs": []}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        kind = "inputs" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "outputs"
        io[kind].append({"name": name, "dtype": _dtype_name(trt, engine.get_tensor_dtype(name)),
                         "shape": [int(d) for d in engine.get_tensor_shape(name)]})
    del inspector, context, engine, runtime
    return info, io


def _dtype_name(trt, dtype) -> str:
    """trt.DataType.FLOAT -> "float32" (numpy's name where TensorRT maps it, else TensorRT's)."""
    try:
        import numpy as np

        return np.dtype(trt.nptype(dtype)).name
    except (TypeError, ValueError):
        return str(dtype).split(".")[-1].lower()


# -- which precision TensorRT chose per layer (the engine inspector's JSON; needs no TensorRT) -----
_PRECISION_PATTERNS = [  # first match wins; word boundaries keep UInt8 from matching Int8, BFloat16 from Float
    ("bf16", r"\b(bfloat16|bf16)\b"), ("fp8", r"\bfp8\b"), ("int4", r"\bint4\b"), ("uint8", r"\buint8\b"),
    ("int8", r"\bint8\b"), ("fp16", r"\b(fp16|half)\b"), ("int32", r"\bint32\b"), ("int64", r"\bint64\b"),
    ("bool", r"\bbool\b"), ("fp32", r"\b(fp32|float)\b"),
]
# narrowest first: a layer runs at the narrowest float/quantised type among its inputs
_RANK = {"int4": 0, "fp8": 1, "int8": 2, "fp16": 3, "bf16": 3, "fp32": 4}
# layers that move or convert data rather than compute; they are counted but never called a fallback
_BOOKKEEPING = {"reformat", "noop", "constant", "shuffle", "identity", "cast", "shape", "signal", "wait"}


def layer_precision_summary(inspector_json: dict, *, expected: str | None = None) -> dict:
    """Per-layer precision from the engine inspector's JSON (`get_engine_information(JSON)`).

    TensorRT 10 describes each layer tensor with one "Format/Datatype" string ("Row major linear FP32",
    "Thirty-two wide channel vectorized row major Int8 format", "Half", ...); TensorRT 11 splits it into
    "Format" and "DataType", and both are read. Layers are only described in full when the engine was
    built with DETAILED profiling verbosity. With `expected` "fp16"/"int8", compute layers left in FP32
    are listed in a warning."""
    raw = inspector_json.get("Layers", []) if isinstance(inspector_json, dict) else []
    per_layer, counts, detailed = [], {}, True
    for layer in raw:
        if not isinstance(layer, dict):  # layer names only: built without DETAILED verbosity
            detailed = False
            per_layer.append({"name": str(layer), "type": "?", "precision": "unknown"})
        else:
            per_layer.append({"name": str(layer.get("Name", "?")), "type": str(layer.get("LayerType", "?")),
                              "precision": _layer_precision(layer)})
        counts[per_layer[-1]["precision"]] = counts.get(per_layer[-1]["precision"], 0) + 1
    warnings = []
    if raw and not detailed:
        warnings.append("layer precisions unknown: the engine was built without DETAILED profiling verbosity")
    compute = [p for p in per_layer if p["type"].lower() not in _BOOKKEEPING and p["precision"] in _RANK]
    fp32 = [p["name"] for p in compute if p["precision"] == "fp32"]
    if expected in ("fp16", "int8") and fp32:
        shown = ", ".join(fp32[:5]) + (f" (+{len(fp32) - 5} more)" if len(fp32) > 5 else "")
        warnings.append(
            f"{len(fp32)} of {len(compute)} compute layers fell back to FP32 in this {expected.upper()} engine: "
            f"{shown}. TensorRT found no {expected.upper()} kernel for them (or the graph keeps them in FP32); "
            "check accuracy and speed with `reid-export bench`; the sidecar lists every layer"
        )
    return {"layers": len(per_layer), "counts": counts, "compute_layers": len(compute), "fp32_compute_layers": fp32,
            "expected": expected, "detailed": detailed, "warnings": warnings, "per_layer": per_layer}


# -- private helpers -------------------------------------------------------------------------
def _layer_precision(layer: dict) -> str:
    def of(tensors) -> list[str]:
        found = []
        for t in tensors if isinstance(tensors, list) else []:
            if isinstance(t, dict):
                text = " ".join(str(t.get(k, "")) for k in ("DataType", "Datatype", "Format/Datatype", "Format"))
                found.append(_precision_of(text))
        return [p for p in found if p != "unknown"]

    found = of(layer.get("Inputs")) or of(layer.get("Outputs"))
    floats = [p for p in found if p in _RANK]
    if floats:
        return min(floats, key=_RANK.__getitem__)
    return found[0] if found else "unknown"


def _precision_of(text: str) -> str:
    text = text.lower()
    for name, pattern in _PRECISION_PATTERNS:
        if re.search(pattern, text):
            return name
    return "unknown"
