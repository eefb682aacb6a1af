"""Which precision TensorRT chose for each layer of an engine, read from the engine inspector's JSON.

    layers = layer_precision_summary(json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON)),
                                     expected="fp16")
    layers["counts"]  # {"fp16": 41, "fp32": 3, ...}; layers["warnings"] names compute layers left in FP32

`build_engine` (reid_export.export.tensorrt) runs the inspector on a fresh engine and stores this summary
in the engine's sidecar. Parsing the JSON needs no TensorRT, torch or onnx.
"""

from __future__ import annotations

import re

__all__ = ["layer_precision_summary"]

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
