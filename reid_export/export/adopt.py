"""Adopt an ONNX exported elsewhere (boxmot, a colleague, torch.onnx by hand): a copy that carries the
project's preprocessing contract, so bench, serve, index, triton and deepstream treat it as their own.

    result = adopt_onnx("osnet.onnx", "engines/osnet.adopted.onnx", height=256, width=128,
                        mean=IMAGENET_MEAN, std=IMAGENET_STD, color="rgb")
    print(result.summary())   # which value came from where, and what was changed

Each contract value comes from a flag, else from the evidence beside the file: a `NAME.onnx.metadata.json`
sidecar (a reid-export one holds the whole contract; a boxmot one gives the input size, and boxmot feeds
every model the same way: RGB, /255, ImageNet mean/std, cv2 INTER_LINEAR), else from the file's own
metadata. The input size, mean/std and colour order change every embedding, so without evidence they are
refused, naming the flag; the pixel scale is read from the mean/std's units (0-255 or 0-1) unless
`--input-scale` says it. The resize only matters for crops not already at the input size: without
evidence it is the project's default, said in the summary.

The graph is checked against the contract: one float32 input (N, 3, H, W), H and W equal to the contract's
where fixed; one 2-D embedding output (`embedding_output` picks one of several; the others are dropped).
The input is renamed `input` and the embedding `embedding`, as the project's runtimes expect. A batch axis
fixed at 1 is made dynamic when a batch of two gives exactly the two single results, else it stays fixed
and the runtimes run one image per call (`max_batch` 1). The precision is read from the graph and whether
the embedding is L2-normalised is measured on it. The input file is never modified.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..artefacts.onnx_metadata import EMBEDDING_NAME, INPUT_NAME, METADATA_KEY, OnnxInfo, read_onnx_info
from ..artefacts.onnx_writer import write_onnx_artefact
from ..artefacts.tensorrt_sidecar import file_sha256
from ..artefacts.tracker_sidecar import TRACKER_SIDECAR_FORMAT, read_sidecar_json, tracker_sidecar_path
from ..contract import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from ..errors import ExportError, ReidExportError
from ..files import ENGINES_DIR, refuse_existing

__all__ = ["AdoptResult", "REQUIRED", "adopt_onnx", "contract_evidence", "default_adopted_output", "detect_precision",
           "parse_channels", "resolve_contract"]

# contract values that change every embedding: refused without evidence (flag -> what it is)
REQUIRED = {"height": "--height", "width": "--width", "mean": "--mean", "std": "--std", "color": "--color"}
_QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                  "MatMulInteger", "DynamicQuantizeLinear"}


@dataclass(frozen=True)
class AdoptResult:
    path: Path  # the adopted copy
    info: OnnxInfo  # what the copy says about itself
    sources: dict[str, str]  # contract field -> where its value came from
    notes: list[str] = field(default_factory=list)  # what was changed in the graph, or assumed
    batch: str = "dynamic"  # dynamic | made dynamic | fixed at 1 (max_batch 1)

    def summary(self) -> str:
        c = self.info.contract
        return (f"{self.path.name}: {self.info.model.get('source', '')}; input {c.height}x{c.width} {c.color}, scale "
                f"{c.scale:g}, mean {list(c.mean)}, std {list(c.std)}, resize {c.resize_method} ({c.aspect}), "
                f"{self.info.precision}, embedding {self.info.model.get('embedding_dim')}-D"
                f"{' L2-normalised' if c.l2_normalized else ''}, batch {self.batch}; from: "
                + ", ".join(f"{k} {v}" for k, v in self.sources.items()))


def default_adopted_output(src: str | Path) -> Path:
    """engines/<name>.adopted.onnx"""
    return ENGINES_DIR / f"{Path(src).stem}.adopted.onnx"


def adopt_onnx(src: str | Path, out: str | Path | None = None, *, height: int | None = None, width: int | None = None,
               mean=None, std=None, color: str | None = None, input_scale: str | float | None = None,
               layout: str | None = None, resize_method: str | None = None, embedding_output: str | None = None,
               overwrite: bool = False) -> AdoptResult:
    """Write a copy of the ONNX `src` with the contract (flags first, then the evidence beside it), checked
    against the graph; see the module docstring."""
    import onnx  # lazy: only this command needs it

    src = Path(src)
    if not src.is_file() or src.suffix != ".onnx":
        raise ExportError(f"{src}: no such ONNX file (expected an existing .onnx to adopt)")
    out = Path(out) if out is not None else default_adopted_output(src)
    if out.resolve() == src.resolve():
        raise ExportError(f"-o {out} is the input itself; adopt writes a copy and never modifies the input: choose "
                          "another -o path")
    refuse_existing(out, overwrite=overwrite, error=ExportError)
    if layout is not None and layout.lower() != "nchw":
        raise ExportError(f"--layout {layout}: the project's runtimes feed NCHW tensors only; adopt a graph whose input "
                          "is (N, 3, H, W) (add a Transpose at its input and re-export it)")
    proto = onnx.load(str(src))
    flags = {"height": height, "width": width, "color": color, "input_scale": input_scale,
             "resize_method": resize_method,
             "mean": None if mean is None else parse_channels(mean, "--mean"),
             "std": None if std is None else parse_channels(std, "--std")}
    evidence, arch, notes = _evidence(src, proto)
    contract, sources = resolve_contract(flags, evidence, flag_names=REQUIRED | {"input_scale": "--input-scale"},
                                         hint=f"{src}: no flag, sidecar or metadata gives its contract")
    notes += [f"{REQUIRED.get(k, '--' + k.replace('_', '-'))} {flags[k]} overrides {evidence[k][0]} from "
              f"{evidence[k][1]}" for k in flags if flags[k] is not None and k in evidence
              and _differs(flags[k], evidence[k][0])]
    graph = proto.graph
    _check_input(src, _real_inputs(graph), contract)
    embedding = _pick_output(src, graph, embedding_output)
    if len(graph.output) > 1:
        notes.append(f"outputs other than {embedding!r} dropped: {', '.join(o.name for o in graph.output if o.name != embedding)}")
    _keep_only_output(graph, embedding)
    _rename(graph, _real_inputs(graph)[0].name, INPUT_NAME)
    _rename(graph, embedding, EMBEDDING_NAME)
    proto, batch, max_batch = _batch_axis(src, proto)
    if batch != "dynamic":
        notes.append("the graph's batch axis was fixed at 1: " + (
            "a batch of 2 gave the 2 single results, so it was made dynamic" if max_batch is None else
            "a batch of 2 did not give the 2 single results, so it stays fixed and the runtimes run one image per "
            "call (max_batch 1); re-export it with a dynamic batch axis for speed"))
    emb = _run(proto, np.random.default_rng(0).standard_normal((max_batch or 2, *contract.input_shape),
                                                               dtype=np.float32))
    if emb.ndim != 2:
        raise ExportError(f"{src}: output {embedding!r} has shape {list(emb.shape)}; an embedding is (N, D): flatten it "
                          "in the model before exporting, or pick another with --embedding-output")
    if not np.isfinite(emb).all():
        raise ExportError(f"{src}: the graph outputs NaN/Inf on a random input; check the model before adopting it")
    l2 = bool(np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-3))
    sources["l2_normalized"] = "measured on the graph"
    model_info = {"arch": arch, "embedding_dim": int(emb.shape[1]),
                  "source": f"adopted from {src.name}, sha256 {file_sha256(src)}",
                  "adopted_from": {"file": src.name, "sha256": file_sha256(src)},
                  "contract_sources": sources, "batch": batch, **({"max_batch": max_batch} if max_batch else {})}
    path = write_onnx_artefact(proto, out, contract=replace(contract, l2_normalized=l2),
                               precision=detect_precision(proto), model_info=model_info)
    return AdoptResult(path=path, info=read_onnx_info(path), sources=sources, notes=notes, batch=batch)


def resolve_contract(flags: dict, evidence: dict[str, tuple[object, str]], *, flag_names: dict[str, str],
                     hint: str) -> tuple[Preprocess, dict[str, str]]:
    """The contract from `flags` (values or None) over `evidence` (field -> (value, where from)). The fields of
    REQUIRED without either are refused in one message naming their flags (`flag_names`); the pixel scale is
    `input_scale` (255: 0-255 pixels, 1: 0-1) or read from the mean/std's units. Returns (contract, sources)."""
    values, sources = {}, {}
    for key in ("height", "width", "mean", "std", "color", "input_scale", "resize_method", "aspect", "interpolation"):
        if flags.get(key) is not None:
            values[key], sources[key] = flags[key], f"{flag_names.get(key, key)} flag"
        elif key in evidence:
            values[key], sources[key] = evidence[key]
    missing = [flag_names[k] for k in REQUIRED if k not in values]
    if missing:
        raise ReidExportError(f"{hint}: give {', '.join(missing)} (the input size, colour order and mean/std the model "
                              "was trained with change every embedding, so they are never assumed)")
    scale = _pixel_scale(values, sources, flag_names.get("input_scale", "--input-scale"))
    color = str(values["color"]).upper()
    if color not in ("RGB", "BGR"):
        raise ReidExportError(f"{flag_names['color']} {values['color']}: expected rgb or bgr")
    if "resize_method" not in values:
        sources["resize_method"] = ("default (Pillow bilinear; matters only for crops not at the input size: "
                                    "set --resize-method to the resize the model was trained with)")
    contract = Preprocess(height=int(values["height"]), width=int(values["width"]), color=color, scale=scale,
                          mean=tuple(values["mean"]), std=tuple(values["std"]),
                          resize_method=values.get("resize_method", ""), aspect=values.get("aspect", "stretch"),
                          interpolation=values.get("interpolation", ""))
    return contract, sources


def contract_evidence(c: Preprocess, where: str) -> dict[str, tuple[object, str]]:
    """A whole contract as evidence for `resolve_contract` (field -> (value, `where`))."""
    values = {"height": c.height, "width": c.width, "mean": c.mean, "std": c.std, "color": c.color,
              "input_scale": 255 if c.scale == 1.0 else 1 if abs(c.scale - 1 / 255) < 1e-9 else c.scale,
              "resize_method": c.resize_method, "aspect": c.aspect}
    return {k: (v, where) for k, v in values.items()}


def parse_channels(value, option: str) -> tuple[float, float, float]:
    """"0.485,0.456,0.406" (or a sequence of three numbers) -> a tuple of three floats."""
    parts = value.replace(" ", ",").split(",") if isinstance(value, str) else list(value)
    try:
        numbers = tuple(float(p) for p in parts if str(p).strip())
    except ValueError:
        numbers = ()
    if len(numbers) != 3:
        raise ReidExportError(f"{option} takes three comma-separated numbers, one per channel (R,G,B), e.g. "
                              f"0.485,0.456,0.406; got {value!r}")
    return numbers


def detect_precision(proto) -> str:
    """int8 for a quantised graph (Q/DQ or integer ops), fp16 when most weight elements are float16, else fp32."""
    from onnx import TensorProto  # lazy: onnx (only adopt needs it)

    if _QUANTIZED_OPS & {n.op_type for n in proto.graph.node}:
        return "int8"
    sizes = {TensorProto.FLOAT: 0, TensorProto.FLOAT16: 0}
    for init in proto.graph.initializer:
        if init.data_type in sizes:
            sizes[init.data_type] += int(np.prod(init.dims)) if len(init.dims) else 1
    return "fp16" if sizes[TensorProto.FLOAT16] > sizes[TensorProto.FLOAT] else "fp32"


# -- private helpers --------------------------------------------------------------------------------------


def _evidence(src: Path, proto) -> tuple[dict[str, tuple[object, str]], str, list[str]]:
    """Contract values found beside or inside `src` (field -> (value, where from)), the arch name, notes."""
    evidence, arch, notes = {}, src.stem, []
    sidecar_path = tracker_sidecar_path(src)
    sidecar = read_sidecar_json(sidecar_path)
    ours = (sidecar or {}).get("reid_export") or {}
    if isinstance(ours, dict) and ours.get("format") == TRACKER_SIDECAR_FORMAT and isinstance(ours.get("preprocess"), dict):
        where = f"{sidecar_path.name} (a reid-export sidecar)"
        evidence = contract_evidence(Preprocess.from_dict(ours["preprocess"], source=str(sidecar_path)), where)
    elif sidecar is not None:
        size, key = _boxmot_size(sidecar)
        if size is not None:
            evidence["height"], evidence["width"] = ((size[0], f"{sidecar_path.name} {key}"),
                                                     (size[1], f"{sidecar_path.name} {key}"))
            fixed = f"boxmot's fixed crop preprocessing ({sidecar_path.name})"
            evidence |= {"color": ("RGB", fixed), "input_scale": (1, fixed), "mean": (IMAGENET_MEAN, fixed),
                         "std": (IMAGENET_STD, fixed), "resize_method": ("cv2-linear", fixed)}
            if sidecar.get("preprocess") == "resize_pad":
                evidence["aspect"] = ("keep-and-pad", f"{sidecar_path.name} preprocess resize_pad")
                notes.append("boxmot's resize_pad centres the crop on an ImageNet-mean border; the contract's "
                             "keep-and-pad pads right/bottom with black")
            arch = str(sidecar.get("model_name") or arch)
        else:
            notes.append(f"{sidecar_path.name} beside it has no img_size or input_shape: not read")
    meta = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY in meta:
        evidence = contract_evidence(Preprocess.from_json(meta[METADATA_KEY], source=str(src)),
                                     "the file's own metadata") | evidence
    return evidence, arch, notes




def _boxmot_size(sidecar: dict) -> tuple[tuple[int, int] | None, str]:
    """(H, W) from a boxmot sidecar: model_kwargs.img_size or img_size (from the source checkpoint), else the
    exported input_shape (N, 3, H, W), which boxmot's exporter writes when the checkpoint gave no size."""
    for key, size in (("model_kwargs.img_size", (sidecar.get("model_kwargs") or {}).get("img_size")),
                      ("img_size", sidecar.get("img_size"))):
        if isinstance(size, list) and len(size) == 2:
            return (int(size[0]), int(size[1])), key
    shape = sidecar.get("input_shape")
    if isinstance(shape, list) and len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]):
        return (shape[2], shape[3]), "input_shape"
    return None, ""


def _pixel_scale(values: dict, sources: dict, flag: str) -> float:
    """The contract's `scale`: from `input_scale` (255 -> pixels as they are, 1 -> divided by 255), else from
    the mean/std's units; mean 0 / std 1 says nothing, so it is refused."""
    given = values.get("input_scale")
    if given is not None:
        value = float(given)
        if value in (255.0, 1.0):
            return 1.0 if value == 255.0 else 1 / 255
        if "flag" in sources.get("input_scale", ""):
            raise ReidExportError(f"{flag} {given}: expected 255 (the model takes 0-255 pixels) or 1 (0-1 pixels)")
        return value  # a scale recorded in a contract
    numbers = [*values["mean"], *values["std"]]
    if max(abs(v) for v in numbers) > 1.5:
        sources["input_scale"] = "inferred: --mean/--std are in 0-255 units"
        return 1.0
    if all(v == 0 for v in values["mean"]) and all(v == 1 for v in values["std"]):
        raise ReidExportError(f"mean 0 / std 1 does not say whether the model takes 0-255 or 0-1 pixels: give "
                              f"{flag} 255 or {flag} 1")
    sources["input_scale"] = "inferred: --mean/--std are in 0-1 units"
    return 1 / 255


def _differs(flag, found) -> bool:
    if isinstance(flag, tuple):
        return any(abs(a - b) > 1e-6 for a, b in zip(flag, found))
    return str(flag).lower() != str(found).lower()


def _real_inputs(graph) -> list:
    initializers = {i.name for i in graph.initializer}  # older IRs also list weights as inputs
    return [i for i in graph.input if i.name not in initializers]


def _dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in value_info.type.tensor_type.shape.dim]


def _check_input(src: Path, inputs: list, contract: Preprocess) -> None:
    from onnx import TensorProto  # lazy: onnx (only adopt needs it)

    if len(inputs) != 1:
        raise ExportError(f"{src}: the graph has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); a Re-ID "
                          "model takes one image batch (N, 3, H, W)")
    x = inputs[0]
    if x.type.tensor_type.elem_type != TensorProto.FLOAT:
        raise ExportError(f"{src}: input {x.name!r} is {TensorProto.DataType.Name(x.type.tensor_type.elem_type)}, the "
                          "runtimes feed float32: re-export it with a float32 input (an fp16 graph can keep float32 "
                          "inputs, e.g. keep_io_types)")
    dims = _dims(x)
    expected = [None, 3, contract.height, contract.width]
    if len(dims) != 4:
        raise ExportError(f"{src}: input {x.name!r} has shape {dims}; expected rank 4 (N, 3, H, W)")
    if dims[3] == 3 and dims[1] != 3:
        raise ExportError(f"{src}: input {x.name!r} has shape {dims}, channels last (NHWC); the runtimes feed NCHW: "
                          "re-export it with an (N, 3, H, W) input")
    wrong = [(name, d, e) for name, d, e in zip("NCHW", dims, expected) if e is not None and isinstance(d, int)
             and d != e]
    if wrong:
        raise ExportError(f"{src}: input {x.name!r} has shape {dims} but the contract says (N, 3, {contract.height}, "
                          f"{contract.width}): " + ", ".join(f"{n} is {d}, not {e}" for n, d, e in wrong)
                          + "; give the --height/--width the model was exported at")


def _pick_output(src: Path, graph, name: str | None) -> str:
    outputs = {o.name: _dims(o) for o in graph.output}
    if name is not None:
        if name not in outputs:
            raise ExportError(f"--embedding-output {name}: the graph has no such output; its outputs: "
                              + ", ".join(f"{k} {v}" for k, v in outputs.items()))
        return name
    if len(outputs) == 1:
        return next(iter(outputs))
    raise ExportError(f"{src}: the graph has {len(outputs)} outputs ("
                      + ", ".join(f"{k} {v}" for k, v in outputs.items())
                      + "); name the embedding with --embedding-output NAME (the others are dropped)")


def _keep_only_output(graph, keep: str) -> None:
    """Drop every graph output but `keep`, then the nodes, weights and shapes only they needed."""
    for output in [o for o in graph.output if o.name != keep]:
        graph.output.remove(output)
    needed, kept = {keep}, []
    for node in reversed(graph.node):
        if needed & set(node.output):
            kept.append(node)
            needed |= _inputs_of(node)
    nodes = [copy.deepcopy(n) for n in reversed(kept)]
    del graph.node[:]
    graph.node.extend(nodes)
    for init in [i for i in graph.initializer if i.name not in needed]:
        graph.initializer.remove(init)
    for info in [v for v in graph.value_info if v.name not in needed]:
        graph.value_info.remove(info)


def _inputs_of(node) -> set[str]:
    """A node's inputs, with the outer names its subgraphs (If, Loop, Scan) read."""
    names = set(node.input)
    for attr in node.attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            for inner in sub.node:
                names |= _inputs_of(inner)
    return names


def _rename(graph, old: str, new: str) -> None:
    """Rename tensor `old` to `new` everywhere in `graph` (and its subgraphs); a tensor already called `new`
    moves aside first."""
    if old == new:
        return
    if new in _names(graph):
        _rename(graph, new, f"{new}__original")
    for value in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        if value.name == old:
            value.name = new
    _rename_in_nodes(graph, old, new)


def _rename_in_nodes(graph, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                _rename_in_nodes(sub, old, new)


def _names(graph) -> set[str]:
    names = {v.name for v in (*graph.input, *graph.output, *graph.value_info, *graph.initializer)}
    for node in graph.node:
        names |= set(node.input) | set(node.output)
    return names


def _batch_axis(src: Path, proto) -> tuple[object, str, int | None]:
    """(graph, how its batch axis is, max_batch). A batch fixed at 1 is made dynamic when a batch of two gives
    the two single results; else it stays fixed (max_batch 1). A batch fixed above 1 is refused."""
    graph = proto.graph
    batch = _dims(_real_inputs(graph)[0])[0]
    if not isinstance(batch, int) or batch <= 0:
        return proto, "dynamic", None
    if batch != 1:
        raise ExportError(f"{src}: the graph's batch axis is fixed at {batch}; runtimes send any batch size: re-export "
                          "it with a dynamic batch axis (torch.onnx.export(..., dynamic_axes / dynamic_shapes))")
    dynamic = copy.deepcopy(proto)
    for value in (*_real_inputs(dynamic.graph), *dynamic.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del dynamic.graph.value_info[:]  # shapes inferred for batch 1 no longer hold
    shape = [int(d) if isinstance(d, int) else 1 for d in _dims(_real_inputs(graph)[0])]
    x = np.random.default_rng(1).standard_normal((2, *shape[1:]), dtype=np.float32)
    try:
        singles = np.concatenate([_run(proto, x[:1]), _run(proto, x[1:])])
        both = _run(dynamic, x)
        safe = both.shape == singles.shape and np.allclose(both, singles, rtol=1e-3, atol=1e-5)
    except Exception:  # ONNX Runtime refuses the graph at batch 2 (a reshape to a fixed batch, ...)
        safe = False
    return (dynamic, "made dynamic", None) if safe else (proto, "fixed at 1", 1)


def _run(proto, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort  # lazy: the graph is run to check it

    options, quiet = ort.SessionOptions(), ort.RunOptions()
    options.log_severity_level = quiet.log_severity_level = 4  # a probe that fails is an answer, not an error
    session = ort.InferenceSession(proto.SerializeToString(), sess_options=options,
                                   providers=["CPUExecutionProvider"])
    return np.asarray(session.run([session.get_outputs()[0].name], {session.get_inputs()[0].name: batch}, quiet)[0])
