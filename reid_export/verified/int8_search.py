"""Accuracy-controlled INT8: quantise, measure the retrieval mAP, and move the most sensitive layers back
to FP32 until the drop is within a bound.

    result = int8_with_accuracy_control("fp32.onnx", "model.int8.onnx", calib_data="Market-1501",
                                        search=Int8Search(max_map_drop=0.5))
    result.met, result.fp32_nodes, result.steps   # also in the artefact's metadata, SEARCH_KEY

The idea is NNCF's `quantize_with_accuracy_control`, with the Re-ID metric:

1. The mAP is measured on a validation split of the *training* folder (`training.layouts.
   market_validation_split`: the ids the checkpoint held out, else the last `val_ids` ids); query/
   and bounding_box_test/ are never read. Calibration draws from the other training ids.
2. Step 0 quantises every layer. While the mAP is more than `max_map_drop` points below the FP32
   graph's, the next step keeps `layers_per_step` more layers in FP32, the most sensitive first.
3. Sensitivity is ONNX Runtime's `qdq_loss_debug` SQNR (dB, lower is worse) of each layer's
   quantised inputs, activations and weights, measured once on the all-INT8 graph.
4. It stops when the bound is met, after `max_steps` steps, or when no ranked layer is left. If the
   bound is never met it writes the step with the smallest drop and says so (`met` False, `reason`).

Every step (layers in FP32, Rank-1, mAP, drop) and the img/s of FP32, all-INT8 and the result go
into the artefact's metadata as JSON under `reid_export.int8_search`.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..artefacts.onnx_metadata import INPUT_NAME
from ..artefacts.onnx_writer import write_onnx_artefact
from ..data.market1501 import load_market1501
from ..errors import DataError, ExportError
from ..evaluation.split import Split, evaluate
from ..export.precision import prepare_int8, quantize_int8
from ..export.settings import Int8Search, Int8Settings
from ..images import decode_images
from ..runtimes import infer_images, make_runtime
from ..training.layouts import market_validation_split

__all__ = ["SEARCH_KEY", "SENSITIVE_OPS", "SearchResult", "fallback_search", "int8_with_accuracy_control",
           "layer_sensitivity"]

SEARCH_KEY = "reid_export.int8_search"  # JSON: bound, validation split, steps, fp32 layers, speed
SENSITIVE_OPS = ("Conv", "Gemm", "MatMul", "Add", "Mul")  # layers the search may keep in FP32
SPEED_BATCH = 32  # batch size of the img/s comparison


@dataclass
class SearchResult:
    path: Path  # the INT8 file written
    met: bool  # the final mAP drop is within the bound
    reason: str  # one line: why the search stopped
    fp32_nodes: list[str]  # layers kept in FP32 in the file written
    steps: list[dict]  # per step: fp32_nodes, rank1, mAP, map_drop (points)
    fp32: dict  # the FP32 graph's rank1 / mAP on the validation split
    speed: dict = field(default_factory=dict)  # images_per_sec of fp32, int8_all, int8_result at SPEED_BATCH
    record: dict = field(default_factory=dict)  # what went into the metadata


def int8_with_accuracy_control(fp32_path: str | Path, out: str | Path, *, calib_data: str | Path,
                               settings: Int8Settings = Int8Settings(), search: Int8Search = Int8Search(),
                               validation_ids: list[int] | None = None, progress: bool = True,
                               log=print) -> SearchResult:
    """INT8 export of `fp32_path` within `search.max_map_drop` mAP points of it on a validation split of
    `calib_data`'s training folder, with as few FP32 layers as the ranking finds; see the module docstring."""
    data = load_market1501(calib_data, splits=("train",), progress=progress)
    n_ids = min(search.val_ids, max(len(data.train_pids) - 2, 1))
    rest = split = None
    if validation_ids:
        try:
            rest, split = market_validation_split(data.train, n_ids, validation_ids)
            source = f"the {len(split.pids)} ids the checkpoint held out of training"
        except DataError:  # another folder than the one trained on: the last ids, as without a record
            log(f"[int8] the checkpoint's validation ids are not training ids of {data.root}; using the last ids")
    if split is None:
        rest, split = market_validation_split(data.train, n_ids)
        source = f"the last {n_ids} training ids"
    calib = _draw([s.path for s in rest], settings.num_images, settings.seed)
    with make_runtime("onnxruntime", fp32_path) as ort:
        contract = ort.contract
    ranked_split = Split.from_market(split)
    images = decode_images(list(ranked_split.paths), contract, progress=progress)

    def measure(path: Path) -> dict:
        return _rank(path, images, ranked_split)

    fp32 = measure(Path(fp32_path))
    log(f"[int8] validation: {source}, {len(split.query)} queries, {len(split.gallery)} "
        f"gallery; FP32 mAP {fp32['mAP']:.2f}, Rank-1 {fp32['rank1']:.2f}; bound: drop <= {search.max_map_drop}")
    with tempfile.TemporaryDirectory(prefix="reid-int8-search-") as tmp:
        tmp = Path(tmp)
        prepared = prepare_int8(fp32_path, tmp / "prepared.onnx")
        files: dict[tuple, Path] = {}

        def quantize(nodes: list[str]) -> Path:
            path = tmp / f"step{len(files)}.onnx"
            files[tuple(nodes)] = quantize_int8(fp32_path, path, calib, settings, progress=False,
                                                nodes_to_exclude=nodes)
            return path

        def step(nodes: list[str]) -> dict:
            metrics = measure(quantize(nodes))
            log(f"[int8] step with {len(nodes)} FP32 layer(s): mAP {metrics['mAP']:.2f} "
                f"(drop {fp32['mAP'] - metrics['mAP']:.2f}), Rank-1 {metrics['rank1']:.2f}")
            return metrics

        ranking: list[dict] = []

        def ranked() -> list[dict]:
            if not ranking:
                batch = contract.normalize_uint8(decode_images(calib[:search.sensitivity_images], contract,
                                                               progress=False))
                ranking.extend(layer_sensitivity(prepared, files[()], batch))
            return ranking

        steps, met, reason = fallback_search(step, ranked, fp32_map=fp32["mAP"], max_map_drop=search.max_map_drop,
                                             max_steps=search.max_steps, layers_per_step=search.layers_per_step)
        best = steps[-1] if met else min(steps, key=lambda s: (s["map_drop"], len(s["fp32_nodes"])))
        chosen = files[tuple(best["fp32_nodes"])]
        speed = {"fp32": _images_per_sec(Path(fp32_path), contract), "int8_all": _images_per_sec(files[()], contract),
                 "int8_result": _images_per_sec(chosen, contract)}
        record = {"max_map_drop": search.max_map_drop, "met": met, "reason": reason,
                  "validation": split.record(source) | {"folder": Path(data.root).name},
                  "ranking": "qdq_loss_debug SQNR (dB) of each layer's quantised inputs, lowest first",
                  "settings": asdict(search), "calibration_method": settings.method, "fp32": fp32,
                  "steps": steps, "fp32_nodes": best["fp32_nodes"], "result_mAP": best["mAP"],
                  "result_map_drop": best["map_drop"], "images_per_sec": speed, "speed_batch": SPEED_BATCH,
                  "sensitivity": [dict(r) for r in ranking[:20]]}
        _write_with_record(chosen, Path(out), record)
    log(f"[int8] {'met' if met else 'NOT met'}: {reason}")
    return SearchResult(path=Path(out), met=met, reason=reason, fp32_nodes=best["fp32_nodes"], steps=steps,
                        fp32=fp32, speed=speed, record=record)


def fallback_search(step, ranked, *, fp32_map: float, max_map_drop: float, max_steps: int,
                    layers_per_step: int) -> tuple[list[dict], bool, str]:
    """The search loop. `step(nodes)` quantises with `nodes` in FP32 and returns its {rank1, mAP}; `ranked()`
    returns the layers, most sensitive first ({"node": name, ...}), and is called only if step 0 misses the
    bound. Returns (steps, met, reason)."""
    steps: list[dict] = []

    def run(nodes: list[str]) -> bool:
        metrics = step(nodes)
        drop = round(fp32_map - metrics["mAP"], 3)
        steps.append({"step": len(steps), "fp32_nodes": list(nodes), "rank1": round(metrics["rank1"], 3),
                      "mAP": round(metrics["mAP"], 3), "map_drop": drop})
        return drop <= max_map_drop

    if run([]):
        return steps, True, f"all layers INT8: mAP drop {steps[-1]['map_drop']:.2f} <= {max_map_drop}"
    order = [r["node"] for r in ranked()]
    for k in range(1, max_steps + 1):
        nodes = order[:k * layers_per_step]
        if len(nodes) == len(steps[-1]["fp32_nodes"]):
            best = min(s["map_drop"] for s in steps)
            return steps, False, (f"every one of the {len(order)} ranked layers is in FP32 and the drop is still "
                                  f"{steps[-1]['map_drop']:.2f} > {max_map_drop} (best step {best:.2f}); the loss "
                                  "is in what no layer choice restores (calibration, or the layers not ranked)")
        if run(nodes):
            return steps, True, (f"{len(nodes)} layer(s) in FP32: mAP drop {steps[-1]['map_drop']:.2f} <= "
                                 f"{max_map_drop} after {k} fallback step(s)")
    best = min(s["map_drop"] for s in steps)
    return steps, False, (f"the step limit ({max_steps} fallback steps, {len(steps[-1]['fp32_nodes'])} layers in "
                          f"FP32) was reached with the drop at {steps[-1]['map_drop']:.2f} > {max_map_drop} (best "
                          f"{best:.2f}); raise --max-map-drop, or allow more steps")


def layer_sensitivity(prepared: str | Path, qdq: str | Path, batch: np.ndarray, *, batch_size: int = 16) -> list[dict]:
    """Layers of the prepared FP32 graph (`prepare_int8`) that `qdq` quantised, ranked by the SQNR (dB) of
    their quantised inputs in `qdq`, worst first: activations (the tensor before vs after its Q/DQ pair on
    `batch`) and weights (float vs dequantised). Each entry: node, op, sqnr_db, worst_input."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        compute_weight_error,
        create_activation_matching,
        create_weight_matching,
        modify_model_output_intermediate_tensors,
    )

    feeds = [{INPUT_NAME: batch[i:i + batch_size]} for i in range(0, len(batch), batch_size)]
    with tempfile.TemporaryDirectory(prefix="reid-int8-sqnr-") as tmp:
        saved = {}
        for name, path in (("float", prepared), ("qdq", qdq)):
            augmented = str(Path(tmp) / f"{name}.onnx")
            modify_model_output_intermediate_tensors(str(path), augmented)
            saved[name] = collect_activations(augmented, feeds)
    errors = {name: e["qdq_err"] for name, e in
              compute_activation_error(create_activation_matching(saved["qdq"], saved["float"])).items()}
    errors |= compute_weight_error(create_weight_matching(str(prepared), str(qdq)))
    ranked = []
    for node in onnx.load(str(prepared), load_external_data=False).graph.node:
        scored = [(errors[t], t) for t in node.input if t in errors]
        if node.op_type in SENSITIVE_OPS and scored:
            sqnr, worst = min(scored)
            ranked.append({"node": node.name, "op": node.op_type, "sqnr_db": round(float(sqnr), 2),
                           "worst_input": worst})
    if not ranked:
        raise ExportError(f"{qdq}: found no quantised layer to rank; was it written by quantize_int8 from {prepared}?")
    return sorted(ranked, key=lambda r: r["sqnr_db"])


# -- helpers ---------------------------------------------------------------------------------------


def _draw(paths: list[Path], n: int, seed: int) -> list[Path]:
    picks = np.random.default_rng(seed).choice(len(paths), size=min(n, len(paths)), replace=False)
    return [paths[i] for i in sorted(picks)]


def _rank(path: Path, images: np.ndarray, split: Split) -> dict:
    """Rank-1 and mAP of the ONNX file `path` on `split` (`images`: its decoded pixels, in split order)."""
    with make_runtime("onnxruntime", path) as ort:
        result = evaluate(infer_images(ort, images, batch_size=64, progress=False), split)
    return {"rank1": result.rank1, "mAP": result.mAP}


def _images_per_sec(path: Path, contract, *, calls: int = 5) -> float:
    """Median img/s of ONNX Runtime on CPU at SPEED_BATCH after one warm-up call (the cost of FP32 layers)."""
    batch = np.random.default_rng(0).standard_normal((SPEED_BATCH, *contract.input_shape), dtype=np.float32)
    with make_runtime("onnxruntime", path) as ort:
        ort.infer(batch)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            ort.infer(batch)
            times.append(time.perf_counter() - t0)
    return round(SPEED_BATCH / float(np.median(times)), 1)


def _write_with_record(src: Path, out: Path, record: dict) -> None:
    """The chosen step's file (its metadata kept) with the search record, and its tracker sidecar."""
    write_onnx_artefact(src, out, extra={SEARCH_KEY: record})
