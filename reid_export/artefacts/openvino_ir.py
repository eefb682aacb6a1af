"""What an OpenVINO IR (`NAME.xml` + `NAME.bin`) says about itself: the project's metadata in its `rt_info`.

    set_ir_metadata(model, read_onnx_info("engines/model.onnx").metadata)   # export: before ov.save_model
    info = read_ir_info("engines/model.xml")                                # anyone: no OpenVINO needed

`reid-export openvino` stores the ONNX metadata entries (`reid_export.preprocess`, `.precision`, `.model`,
`.calibration`, `.import`, ...) in the IR's `rt_info` under a `reid_export` section, one entry per key:

    <rt_info><reid_export><precision value="fp32" /><preprocess value="{...}" /> ...</reid_export></rt_info>

The `.xml` is plain XML, so `read_ir_info` reads it with the standard library (the contract, precision,
model, and the graph's inputs and outputs), and OpenVINO is only imported to convert or run a model.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from ..contract import Preprocess
from ..errors import ExportError, RuntimeUnavailable
from .onnx_metadata import CALIBRATION_KEY, MODEL_KEY, PRECISION_KEY, contract_from_metadata

__all__ = ["SECTION", "IrInfo", "read_ir_info", "ir_metadata", "set_ir_metadata", "import_openvino"]

SECTION = "reid_export"  # the rt_info section (and the metadata keys' prefix, before the dot)


@dataclass(frozen=True)
class IrInfo:
    """What an IR's rt_info says about itself (the counterpart of `OnnxInfo` for an .onnx artefact)."""

    path: Path
    contract: Preprocess
    precision: str  # fp32 | fp16 | int8, as recorded by `reid-export openvino`
    metadata: dict[str, str] = field(default_factory=dict)  # the reid_export.* entries
    model: dict = field(default_factory=dict)  # MODEL_KEY, parsed: arch, embedding_dim, ...
    calibration: dict = field(default_factory=dict)  # CALIBRATION_KEY, parsed ({} unless INT8)
    opset: None = None  # an IR has no ONNX opset
    inputs: tuple = ()  # (name, shape) of each Parameter, -1 where the size is dynamic
    outputs: tuple = ()  # (name, shape) of each Result, -1 where the size is dynamic


def read_ir_info(path: str | Path) -> IrInfo:
    """Parse an IR's .xml (not its weights; no OpenVINO needed) into an `IrInfo`; clear errors for a missing,
    unreadable or foreign file, and for an IR without the project's contract."""
    path = Path(path)
    root = _parse(path)
    section = root.find(f"rt_info/{SECTION}")
    meta = {} if section is None else {f"{SECTION}.{e.tag}": e.get("value", "") for e in section}
    layers = root.findall("layers/layer")
    inputs = tuple((_first(_port(layer, "output").get("names")) or layer.get("name", "?"), _dims(layer, "output"))
                   for layer in layers if layer.get("type") == "Parameter")
    outputs = tuple((_first(layer.get("output_names")) or layer.get("name", "?").split("/sink_port")[0],
                     _dims(layer, "input")) for layer in layers if layer.get("type") == "Result")
    return IrInfo(path=path, contract=contract_from_metadata(meta, source=str(path)),
                  precision=meta.get(PRECISION_KEY, "fp32"), metadata=meta, model=_json(meta, MODEL_KEY, path),
                  calibration=_json(meta, CALIBRATION_KEY, path), inputs=inputs, outputs=outputs)


def ir_metadata(model) -> dict[str, str]:
    """The reid-export entries of an OpenVINO model's rt_info, keyed as in ONNX metadata."""
    if not model.has_rt_info([SECTION]):
        return {}
    return {f"{SECTION}.{key}": value.astype(str) for key, value in model.get_rt_info()[SECTION].items()}


def set_ir_metadata(model, meta: dict[str, str]) -> None:
    """Store the reid-export entries of `meta` (ONNX metadata_props keys, `reid_export.*`) in an OpenVINO
    model's rt_info; other entries (a foreign producer's) are left out."""
    for key, value in meta.items():
        if key.startswith(f"{SECTION}."):
            model.set_rt_info(value, [SECTION, key.removeprefix(f"{SECTION}.")])


def import_openvino():
    """The `openvino` module, or RuntimeUnavailable saying how to install it."""
    try:
        import openvino  # lazy: an optional extra, and heavy
    except ImportError as e:
        raise RuntimeUnavailable('openvino is not installed: pip install "reid-export[openvino]"') from e
    return openvino


def _parse(path: Path) -> ET.Element:
    if not path.is_file():
        raise ExportError(f"{path}: no such OpenVINO IR; write one with `reid-export openvino MODEL.onnx -o {path}`")
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, UnicodeDecodeError) as e:
        raise ExportError(f"{path}: not readable XML ({e}); an OpenVINO IR is the NAME.xml written by "
                          "`reid-export openvino` (or OpenVINO's ov.save_model)") from e
    if root.tag != "net":
        raise ExportError(f"{path}: an XML file whose root is <{root.tag}>, not an OpenVINO IR (root <net>); "
                          "convert a model with `reid-export openvino MODEL.onnx -o NAME.xml`")
    return root


def _port(layer: ET.Element, side: str) -> ET.Element:
    """The layer's first input or output port (an empty element when it has none)."""
    port = layer.find(f"{side}/port")
    return ET.Element("port") if port is None else port


def _dims(layer: ET.Element, side: str) -> tuple[int, ...]:
    return tuple(int(d.text) for d in _port(layer, side).findall("dim"))


def _first(names: str | None) -> str | None:
    """A tensor's names are listed comma-separated; the first is the one the graph was given."""
    return names.split(",")[0].strip() or None if names else None


def _json(meta: dict[str, str], key: str, path: Path) -> dict:
    try:
        value = json.loads(meta[key]) if meta.get(key) else {}
    except ValueError as e:
        raise ExportError(f"{path}: rt_info entry '{key}' is not valid JSON ({e}); re-export the IR with "
                          "`reid-export openvino`") from e
    return value if isinstance(value, dict) else {}
