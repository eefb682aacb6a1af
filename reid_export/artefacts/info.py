"""One description of any artefact the project writes or reads: `inspect(path) -> ArtefactInfo`.

    info = inspect("engines/model.int8.onnx")       # .onnx, .xml (OpenVINO IR), .engine/.plan, .pt2, .pt/.pth
    info.kind, info.contract, info.precision, info.arch, info.embedding_dim, info.provenance["calibration"]
    json.dumps(info.to_dict())

Each format is read the cheapest way that tells the truth, and without the runtime that runs it: an ONNX
file's `metadata_props` (its weights are not loaded), an IR's `.xml` as XML, a TensorRT engine's JSON
sidecar (no TensorRT), an AOTInductor package's metadata from its archive (no compiled code loaded), a
checkpoint read once with `torch.load(weights_only=True)` (`checkpoint.read_weights`): a reid-export
checkpoint by its `config`, weights trained elsewhere by what the loader recognises in them
(`checkpoint.model_from_weights`). A runtime that has already loaded a checkpoint describes it with
`describe_checkpoint(path, weights, model)` instead of reading it again. Anything else is refused naming the
file and the kinds that are understood.
"""

from __future__ import annotations

import json
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..contract import Preprocess
from ..data.attributes import HEAD_OUTPUTS
from ..errors import CheckpointError, ReidExportError
from .coreml_package import read_mlpackage_info
from .executorch_program import read_pte_info
from .litert_model import read_tflite_info
from .onnx_metadata import (ATTRIBUTES_NAME, EMBEDDING_NAME, INPUT_NAME, METADATA_KEY, MODEL_KEY, PRECISION_KEY,
                            VERSION_KEY, read_onnx_info)
from .openvino_ir import SECTION, read_ir_info
from .tensorrt_sidecar import file_sha256, read_sidecar, sidecar_path
from .torch_package import DEVICE_KEY, OUTPUTS_KEY, read_package_info
from .tracker_sidecar import boxmot_differences, read_tracker_sidecar, tracker_sidecar_path

__all__ = ["KINDS", "Tensor", "ArtefactInfo", "inspect", "describe_checkpoint"]

KINDS = {  # kind -> the file names it is recognised by
    "onnx": (".onnx",),
    "openvino-ir": (".xml",),
    "tensorrt-engine": (".engine", ".plan"),
    "torch-package": (".pt2",),
    "checkpoint": (".pt", ".pth"),
    "executorch-program": (".pte",),
    "litert-model": (".tflite",),
    "coreml-package": (".mlpackage",),  # a folder
}
_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}  # a checkpoint's tensors -> precision


class Tensor(NamedTuple):
    name: str
    shape: tuple[int, ...]  # -1 where the size is dynamic (the batch)


@dataclass(frozen=True)
class ArtefactInfo:
    kind: str  # one of KINDS: onnx | openvino-ir | tensorrt-engine | torch-package | checkpoint
    path: Path
    contract: Preprocess  # the preprocessing contract it carries (or, for bare weights, the one the loader assumes)
    precision: str  # fp32 | fp16 | int8 (bf16 for a checkpoint saved in bf16)
    arch: str | None  # resnet50, osnet_x1_0, ... (None when the artefact does not say)
    embedding_dim: int | None
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    sha256: str  # of the file at `path`
    size_bytes: int
    # where it came from: reid_export_version (the writer), calibration (INT8), import (weights trained
    # elsewhere), adopted_from (an adopted ONNX), int8_search, source_onnx (an engine), epoch/metrics (a checkpoint)
    provenance: dict = field(default_factory=dict)
    # what only this kind has: opset and tracker_sidecar (ONNX), rt_info and weights (IR), tensorrt_version,
    # gpu, profile, max_batch, builder and layers (TensorRT), cpu_isa and device (AOTInductor package), model (the
    # model description), format (checkpoint)
    extras: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what a reader should know: a missing sidecar, values taken by default, ...

    def to_dict(self) -> dict:
        """JSON-safe: paths and tuples become strings and lists."""
        return {"kind": self.kind, "path": str(self.path), "contract": self.contract.to_dict(),
                "precision": self.precision, "arch": self.arch, "embedding_dim": self.embedding_dim,
                "inputs": [_tensor_dict(t) for t in self.inputs], "outputs": [_tensor_dict(t) for t in self.outputs],
                "sha256": self.sha256, "size_bytes": self.size_bytes, "provenance": _json_safe(self.provenance),
                "extras": _json_safe(self.extras), "notes": list(self.notes)}

    def summary_lines(self, width: int = 118) -> list[str]:
        """A short table, one `name  value` line each (like `polygraphy inspect model`); long values are cut
        to `width` characters (`to_dict` has them whole). The raw metadata (`model`, `rt_info`) is left out."""
        c = self.contract
        rows = [("kind", self.kind), ("precision", self.precision),
                ("model", f"{self.arch or 'unknown arch'}, {self.embedding_dim or '?'}-D embedding"),
                ("contract", f"{c.height}x{c.width} {c.color}, pixels x {c.scale:.6g}, mean {list(c.mean)}, "
                             f"std {list(c.std)}"),
                ("resize", f"{c.resize_method}, {c.aspect}; "
                           f"embedding {'' if c.l2_normalized else 'not '}L2-normalised"),
                *((f"input {t.name}", _shape(t.shape)) for t in self.inputs),
                *((f"output {t.name}", _shape(t.shape)) for t in self.outputs),
                ("sha256", self.sha256), ("size", f"{self.size_bytes / 2**20:.1f} MiB"),
                *((key, _text(value)) for key, value in self.provenance.items()),
                *((key, _text(value)) for key, value in self.extras.items() if key not in ("model", "rt_info"))]
        name_width = max(len(name) for name, _ in rows)
        lines = [str(self.path)]
        for name, value in rows:
            line = f"  {name:<{name_width}}  {value}"
            lines.append(line if len(line) <= width else line[:width - 1] + "…")
        for note in self.notes:  # whole, wrapped: a note is what the reader must not miss
            lines += textwrap.wrap(note, width, initial_indent=f"  {'note':<{name_width}}  ",
                                   subsequent_indent=" " * (name_width + 4))
        return lines


def inspect(path: str | Path) -> ArtefactInfo:
    """What the artefact at `path` is, from its own metadata (see the module docstring)."""
    path = Path(path)
    kind = next((k for k, suffixes in KINDS.items() if path.name.lower().endswith(suffixes)), None)
    if kind is None:
        known = "; ".join(f"{k} ({', '.join(s)})" for k, s in KINDS.items())
        raise ReidExportError(f"{path}: not an artefact reid-export reads (by its name); give one of: {known}")
    if not (path.is_file() or kind == "coreml-package" and path.is_dir()):
        raise ReidExportError(f"{path}: no such file; give the path of a {kind} ({', '.join(KINDS[kind])})")
    return _READERS[kind](path)


# -- one reader per kind ---------------------------------------------------------------------------
def _onnx(path: Path) -> ArtefactInfo:
    info = read_onnx_info(path)
    extras, notes = {"opset": info.opset}, []
    try:
        read_tracker_sidecar(path)
        extras["tracker_sidecar"] = tracker_sidecar_path(path).name
    except ReidExportError as e:
        extras["tracker_sidecar"] = None
        notes.append(str(e))
    extras["boxmot_differences"] = boxmot_differences(info.contract)  # what a tracker feeding it would change
    return _described("onnx", path, info, inputs=[(INPUT_NAME, info.input_shape)], outputs=info.outputs,
                      extras=extras, notes=notes)


def _openvino_ir(path: Path) -> ArtefactInfo:
    info = read_ir_info(path)
    weights, notes = path.with_suffix(".bin"), []
    extras = {"rt_info": {k.removeprefix(f"{SECTION}."): _parsed(v) for k, v in info.metadata.items()},
              "weights": {"file": weights.name, "sha256": file_sha256(weights), "bytes": weights.stat().st_size}
              if weights.is_file() else None}
    if not weights.is_file():
        notes.append(f"its weights {weights.name} are missing next to it: OpenVINO cannot load it; re-export the IR")
    return _described("openvino-ir", path, info, inputs=info.inputs, outputs=info.outputs, extras=extras, notes=notes)


def _tensorrt_engine(path: Path) -> ArtefactInfo:
    sidecar, sha256, notes = read_sidecar(path, verify_engine=False), file_sha256(path), []
    if sha256 != sidecar["engine"]["sha256"]:
        notes.append(f"the engine does not match its sidecar {sidecar_path(path).name} (sha256 differs): it was "
                     f"replaced without it; rebuild with "
                     f"`reid-export trt {sidecar['onnx']['file']} -o {path} --overwrite`")
    outputs = _tensors((t["name"], t["shape"]) for t in sidecar["outputs"])
    source, model, provenance = _source_onnx(path, sidecar["onnx"]), {}, {}
    if source is not None:  # the ONNX it was built from says more: the model and where it came from
        onnx = _onnx(source)
        model, provenance = onnx.extras["model"], dict(onnx.provenance)
    else:
        notes.append(f"the ONNX it was built from ({sidecar['onnx']['file']}) is not in the engine's folder or has "
                     "changed, so the arch and the provenance before the build are unknown")
    provenance |= {"reid_export_version": sidecar.get("reid_export_version"), "source_onnx": sidecar["onnx"],
                   "built_at": sidecar["built_at"]}
    extras = {"sidecar": sidecar_path(path).name, "tensorrt_version": sidecar["tensorrt_version"],
              "gpu": sidecar["gpu"], "profile": sidecar["profile"], "max_batch": int(sidecar["profile"]["max"][0]),
              "builder": sidecar.get("builder", {}), "layers": sidecar["layers"].get("counts", {}), "model": model}
    return ArtefactInfo(kind="tensorrt-engine", path=path, precision=sidecar["precision"],
                        contract=Preprocess.from_dict(sidecar["preprocess"], source=str(sidecar_path(path))),
                        arch=model.get("arch"), embedding_dim=model.get("embedding_dim") or _embedding_dim(outputs),
                        inputs=_tensors((t["name"], t["shape"]) for t in sidecar["inputs"]), outputs=outputs,
                        sha256=sha256, size_bytes=path.stat().st_size, provenance=provenance, extras=extras,
                        notes=tuple(notes))


def describe_checkpoint(path: str | Path, weights: object, model=None) -> ArtefactInfo:
    """The ArtefactInfo of the checkpoint at `path` from what `checkpoint.read_weights(path)` returned, without
    reading the file again: a reid-export checkpoint by its config (with its epoch and metrics), weights trained
    elsewhere by `model`, the ReidNet already built from them (made here when None; the values the loader took
    by default are then notes too), with the foreign source it was recognised as."""
    from ..checkpoint import FORMAT  # lazy: torch
    from ..models import ATTRIBUTE_LOGITS  # lazy: torch

    path = Path(path)
    ours = isinstance(weights, dict) and weights.get("format") == FORMAT
    config, state, provenance, notes = (_own_checkpoint(weights, path) if ours
                                        else _foreign_weights(weights, path, model))
    outputs = [(EMBEDDING_NAME, (-1, config.embedding_dim))]
    if config.attributes:
        outputs.append((ATTRIBUTES_NAME, (-1, ATTRIBUTE_LOGITS)))
    dtypes = {str(t.dtype).removeprefix("torch.") for t in state.values()
              if hasattr(t, "is_floating_point") and t.is_floating_point()}
    description = ({k: v for k, v in config.to_dict().items() if k != "preprocess"}
                   | {"embedding_dim": config.embedding_dim})
    return ArtefactInfo(kind="checkpoint", path=path, contract=config.preprocess, arch=config.arch,
                        precision="/".join(sorted(_DTYPES.get(d, d) for d in dtypes)) or "fp32",
                        embedding_dim=config.embedding_dim, outputs=_tensors(outputs),
                        inputs=_tensors([(INPUT_NAME, (-1, *config.preprocess.input_shape))]),
                        sha256=file_sha256(path), size_bytes=path.stat().st_size, provenance=provenance,
                        extras={"format": FORMAT, "model": description} if ours else {"model": description},
                        notes=tuple(notes))


def _checkpoint(path: Path) -> ArtefactInfo:
    from ..checkpoint import read_weights  # lazy: torch

    return describe_checkpoint(path, read_weights(path))  # weights_only: no pickled code runs


def _torch_package(path: Path) -> ArtefactInfo:
    info = read_package_info(path)
    widths = {EMBEDDING_NAME: info.model.get("embedding_dim") or -1, ATTRIBUTES_NAME: HEAD_OUTPUTS}
    extras = {"cpu_isa": info.isa or None, "device": info.metadata.get(DEVICE_KEY)}
    return _described("torch-package", path, info, inputs=[(INPUT_NAME, (-1, *info.contract.input_shape))],
                      outputs=[(name, (-1, widths.get(name, -1))) for name in info.outputs], extras=extras, notes=[])


def _edge(kind: str, reader):
    """The reader of an edge artefact (ExecuTorch, LiteRT, Core ML), from the EdgeInfo its format's module reads."""
    def read(path: Path) -> ArtefactInfo:
        info = reader(path)
        return ArtefactInfo(kind=kind, path=path, contract=info.contract, precision=info.precision,
                            arch=info.model.get("arch"), embedding_dim=info.model.get("embedding_dim"),
                            inputs=_tensors(info.inputs), outputs=_tensors(info.outputs), sha256=info.sha256,
                            size_bytes=info.size_bytes, provenance=_provenance(info.metadata, info.model),
                            extras={**info.extras, "model": info.model})
    return read


_READERS = {"onnx": _onnx, "openvino-ir": _openvino_ir, "tensorrt-engine": _tensorrt_engine,
            "torch-package": _torch_package, "checkpoint": _checkpoint,
            "executorch-program": _edge("executorch-program", read_pte_info),
            "litert-model": _edge("litert-model", read_tflite_info),
            "coreml-package": _edge("coreml-package", read_mlpackage_info)}


# -- private helpers -------------------------------------------------------------------------------
def _own_checkpoint(obj: dict, path: Path):
    """A reid-export checkpoint, by its config: (ModelConfig, state dict, provenance, notes)."""
    from ..models import ModelConfig  # lazy: torch

    try:
        config = ModelConfig.from_dict(obj["config"])
    except (ReidExportError, TypeError, AttributeError, KeyError) as e:
        raise CheckpointError(f"{path}: a reid-export checkpoint whose model config cannot be read ({e}); it was "
                              "written by a newer reid-export (upgrade) or is damaged (train it again)") from None
    return config, obj.get("model") or {}, {"epoch": obj.get("epoch"), "metrics": obj.get("metrics") or {}}, []


def _foreign_weights(weights: object, path: Path, model):
    """Weights trained elsewhere, as the loader recognises them (refused naming the nearest layouts when it does
    not): (ModelConfig, state dict, provenance, notes). Built here when `model` is None, and then the values the
    loader took by default are notes."""
    notes = []
    if model is None:
        from ..checkpoint import model_from_weights  # lazy: torch

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = model_from_weights(weights, path, log=None)
        notes = [str(w.message) for w in caught]
    config = model.config
    imported = getattr(model, "import_summary", None)
    if imported:
        provenance = {"recognised_as": f"{imported.get('source')} {imported.get('arch')}", "import": imported}
    else:
        provenance = {"recognised_as": f"a {config.arch} backbone"}
        notes.append(f"a bare {config.arch} backbone (seed notebook or torchvision layout): the contract shown is the "
                     "one the loader assumes; `reid-export onnx` takes --height/--width/--mean/--std to change it")
    return config, model.state_dict(), provenance, notes


def _described(kind: str, path: Path, info, *, inputs, outputs, extras: dict, notes: list[str]) -> ArtefactInfo:
    """An ArtefactInfo from the project's metadata (an ONNX file's metadata_props, an IR's rt_info, a package's
    AOTInductor metadata)."""
    outputs = _tensors(outputs)
    return ArtefactInfo(kind=kind, path=path, contract=info.contract, precision=info.precision,
                        arch=info.model.get("arch"),
                        embedding_dim=info.model.get("embedding_dim") or _embedding_dim(outputs),
                        inputs=_tensors(inputs), outputs=outputs, sha256=file_sha256(path),
                        size_bytes=path.stat().st_size, provenance=_provenance(info.metadata, info.model),
                        extras={**extras, "model": info.model}, notes=tuple(notes))


def _source_onnx(engine: Path, recorded: dict) -> Path | None:
    """The ONNX an engine was built from, where the sidecar says (or next to the engine), if it is unchanged
    and readable. Like every path a sidecar names, it is read only inside the engine's folder (links followed)."""
    if not isinstance(recorded, dict) or not isinstance(recorded.get("file"), str) or "\x00" in recorded["file"]:
        return None
    folder = engine.parent.resolve()
    for candidate in (Path(recorded["file"]), engine.parent / Path(recorded["file"]).name):
        if not candidate.resolve().is_relative_to(folder):
            continue
        if candidate.is_file() and file_sha256(candidate) == recorded["sha256"]:
            try:
                read_onnx_info(candidate)
            except ReidExportError:
                return None
            return candidate
    return None


def _provenance(meta: dict[str, str], model: dict) -> dict:
    """Every reid_export.* entry that is not the description itself (contract, model, precision): the writer's
    version, calibration, import summary, INT8 search, ... (a new one shows up without a change here)."""
    described = {METADATA_KEY, MODEL_KEY, PRECISION_KEY, OUTPUTS_KEY}
    out = {("reid_export_version" if key == VERSION_KEY else key.removeprefix(f"{SECTION}.")): _parsed(value)
           for key, value in meta.items() if key.startswith(f"{SECTION}.") and key not in described}
    if "adopted_from" in model:
        out["adopted_from"] = model["adopted_from"]
    return out


def _parsed(value: str):
    """A metadata value: its JSON object or list when it holds one, else the string."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, (dict, list)) else value


def _tensors(pairs) -> tuple[Tensor, ...]:
    return tuple(Tensor(str(name), tuple(d if isinstance(d, int) and d > 0 else -1 for d in dims))
                 for name, dims in pairs)


def _embedding_dim(outputs: tuple[Tensor, ...]) -> int | None:
    dims = next((t.shape for t in outputs if t.name == EMBEDDING_NAME), ())
    return dims[-1] if dims and dims[-1] > 0 else None


def _tensor_dict(tensor: Tensor) -> dict:
    return {"name": tensor.name, "shape": list(tensor.shape)}


def _shape(dims: tuple[int, ...]) -> str:
    return "[" + ", ".join("?" if d < 0 else str(d) for d in dims) + "]"


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(_json_safe(value), sort_keys=True)


def _json_safe(value):
    """Dicts, lists and scalars as they are; paths, tuples and anything else as JSON can hold them."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
