"""The benchmark harness: every runtime on the same pixels, speed next to accuracy.

For each model spec (runtime + artefact) one row:
  status          ok | failed: reason | skipped: reason
  throughput      per batch size: images_per_sec (median), p50_ms, p99_ms, iqr_ms (model only, pre-decoded
                  tensors, warmed up, >= 5 timed calls); a batch that runs out of memory ends the sweep.
                  A batch size is `skipped` (that size only) when it is above the runtime's `max_batch`, or
                  when its input and output tensors would not fit in the memory available now
  accuracy        rank1/5/10, mAP, mINP from this runtime's own query and gallery embeddings
  agreement       cosine_min / cosine_mean / max_abs_diff of its embeddings against the reference row
  arch            the architecture the artefact records (checkpoint config, ONNX metadata)
  deltas          delta_rank1 / delta_mAP / delta_mINP / delta_attr_mA (points) against the reference
                  row: the PyTorch FP32 row of the same arch (and model file), if there is one
  stages          per-stage ms of the whole path at one batch size, the bounding stage, and end-to-end
                  images/s serial, with threaded decode, and from a uint8 decode cache
  attributes      attr_mean_accuracy (official 12 columns) and attr_mA, when the runtime outputs
                  attributes and the data folder has market_attribute.mat (test-split labels)

A failing runtime becomes a row with its reason; it never stops the sweep. That includes the accuracy
step: embeddings that are NaN or infinite fail their row (naming the first image), not the report.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..data.attributes import test_split_labels
from ..data.market1501 import load_market1501
from ..errors import ReidExportError, RuntimeUnavailable
from ..evaluation.agreement import embedding_agreement
from ..evaluation.attributes import attribute_scores
from ..evaluation.embeddings import evaluate_embeddings
from ..files import check_free_space, check_writable_dir, format_bytes
from ..images import decode_images
from ..runtimes import infer_images, make_runtime
from .drift import UPSCALE, preprocess_drift
from .report import machine_info
from .stages import staged_timing

__all__ = ["BenchSettings", "ModelSpec", "run_bench", "check_gates", "row_outcomes", "check_report_dir", "with_embeddings",
           "REPORT_FILES"]

# what a bench run writes into its --out folder (report.write_report and plots.write_plots)
REPORT_FILES = ("report.json", "report.md", "throughput.png", "accuracy_vs_throughput.png")


@dataclass(frozen=True)
class ModelSpec:
    runtime: str  # registry name, e.g. "onnxruntime"
    path: Path  # the artefact it runs
    options: tuple[tuple[str, object], ...] = ()  # runtime constructor options, e.g. (("hint", "throughput"),)

    @property
    def label(self) -> str:
        return f"{self.runtime}:{self.path.name}"


def with_embeddings(specs: list[ModelSpec], embedding: str | None) -> list[ModelSpec]:
    """`--embedding neck | pooled | both`: each PyTorch spec (a checkpoint) once per embedding named, the BNNeck
    output and the pooled feature side by side; exported files output the one they were exported with."""
    if embedding in (None, "auto"):
        return list(specs)
    names = ("neck", "pooled") if embedding == "both" else (embedding,)
    if any(name not in ("neck", "pooled") for name in names):
        raise ReidExportError(f"--embedding {embedding!r}: choose neck, pooled, both or auto")
    out = []
    for spec in specs:
        if spec.runtime.startswith("torch"):
            out += [replace(spec, options=(*spec.options, ("embedding", name))) for name in names]
        else:
            out.append(spec)
    return out


@dataclass
class BenchSettings:
    batch_sizes: tuple[int, ...] = (1, 8, 32, 128)  # model-only throughput is measured at each
    warmup_batches: int = 3  # untimed calls before measuring each batch size
    min_batches: int = 5  # measured calls per batch size, at least ...
    min_seconds: float = 2.0  # ... and for at least this long
    max_batches: int = 200  # but never more than this many
    eval_batch_size: int = 64  # batch size when extracting query/gallery embeddings
    stages: bool = True  # also time the whole path (read, decode, resize, normalise, copies, inference)
    stage_batch_size: int = 32  # batch size of the staged end-to-end timing
    progress: bool = True  # show progress bars
    extra: dict = field(default_factory=dict)  # free-form notes copied into the report
    preprocess_as: tuple[str, ...] = ()  # extra rows: query/gallery re-decoded as each target does (bench/drift.py)
    preprocess_upscale: float = UPSCALE  # ... also from crops upscaled this many times, as detector boxes are


def run_bench(data_root: str | Path, specs: list[ModelSpec], settings: BenchSettings | None = None,
              log=print) -> dict:
    """Benchmark every spec on the query/gallery of the Market-1501 folder `data_root`; returns the report dict."""
    settings = settings or BenchSettings()
    data = load_market1501(data_root, splits=("query", "gallery"), progress=settings.progress)
    eval_paths = [s.path for s in data.query] + [s.path for s in data.gallery]
    ids = {
        "q_pids": np.array([s.pid for s in data.query]), "q_camids": np.array([s.camid for s in data.query]),
        "g_pids": np.array([s.pid for s in data.gallery]), "g_camids": np.array([s.camid for s in data.gallery]),
    }
    ids["attribute_truth"] = test_split_labels(data.root)
    decoded: dict[tuple, np.ndarray] = {}  # one decode per input size, shared by every runtime
    rows, embeddings = [], []
    for spec in specs:
        log(f"[bench] {spec.label}")
        row, emb = _bench_one(spec, settings, eval_paths, decoded, ids)
        rows.append(row)
        embeddings.append(emb)
    _compare_to_reference(rows, embeddings)
    drift = preprocess_drift(specs, rows, embeddings, eval_paths, ids, settings.preprocess_as,
                             upscale=settings.preprocess_upscale, batch_size=settings.eval_batch_size,
                             progress=settings.progress, log=log) if settings.preprocess_as else []
    return {
        "machine": machine_info(),
        "data": {"root": str(data.root), "num_query": len(data.query), "num_gallery": len(data.gallery)},
        "settings": {k: v for k, v in asdict(settings).items() if k != "progress"},
        "rows": rows,
        **({"drift": drift} if drift else {}),
    }


def check_gates(report: dict, *, max_map_drop: float | None = None, max_rank1_drop: float | None = None) -> list[str]:
    """Rows whose accuracy fell further below the reference than allowed (points); one message each."""
    broken = []
    for row in report["rows"]:
        if row["status"] != "ok" or row.get("is_reference"):
            continue
        for key, limit in (("mAP", max_map_drop), ("rank1", max_rank1_drop)):
            drop = -row.get(f"delta_{key}", 0.0)
            if limit is not None and drop > limit:
                broken.append(f"{row['runtime']} ({row.get('precision')}, {Path(row['model']).name}): "
                              f"{key} dropped {drop:.2f} points vs {row['reference']} (allowed {limit})")
    return broken


def check_report_dir(out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Before the sweep: `out_dir` must be (or become) a writable folder with a little free space, and
    hold no earlier report unless `overwrite`."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ReidExportError(f"--out {out_dir} is a file; bench writes a folder (report.json, report.md, plots): "
                              "give a folder path")
    existing = [out_dir / name for name in REPORT_FILES if (out_dir / name).exists()]
    if existing and not overwrite:
        raise ReidExportError(f"{existing[0]} already exists (an earlier bench run); pass --overwrite to replace "
                              "its report and plots, or choose another --out folder")
    check_writable_dir(out_dir, what="--out folder")
    check_free_space(out_dir, 5_000_000, what="the bench report")
    return out_dir


def row_outcomes(report: dict) -> dict[str, list[dict]]:
    """The rows grouped as `ok`, `failed` and `skipped` (by the start of their status)."""
    groups: dict[str, list[dict]] = {"ok": [], "failed": [], "skipped": []}
    for row in report["rows"]:
        groups[row["status"].split(":", 1)[0] if row["status"].split(":", 1)[0] in groups else "failed"].append(row)
    return groups


def _compare_to_reference(rows: list[dict], embeddings: list) -> None:
    """Each ok row is compared with the PyTorch FP32 row of its own architecture (`arch`): of the same model
    (file name up to its first dot: `r18.pt` for `r18.int8.onnx`) when several checkpoints share the arch,
    else the first such row; an arch without one uses its first ok row. Every ok row gets the reference's
    label, its cosine agreement with it and its accuracy deltas (points); a reference row marks itself."""
    ok = [i for i, e in enumerate(embeddings) if e is not None]
    for i in ok:
        ref = _reference_of(i, rows, ok)
        rows[i]["reference"] = f"{rows[ref]['runtime']}:{Path(rows[ref]['model']).name}"
        if ref == i:
            rows[i]["is_reference"] = True
        for key in ("rank1", "mAP", "mINP", "attr_mA"):
            if key in rows[i] and key in rows[ref]:
                rows[i][f"delta_{key}"] = round(rows[i][key] - rows[ref][key], 3)
        if embeddings[i].shape == embeddings[ref].shape:
            rows[i].update(embedding_agreement(embeddings[ref], embeddings[i]))


def _reference_of(i: int, rows: list[dict], ok: list[int]) -> int:
    same_arch = [j for j in ok if rows[j].get("arch") == rows[i].get("arch")]
    torch_fp32 = [j for j in same_arch if rows[j]["runtime"].startswith("torch") and rows[j].get("precision") == "fp32"]
    pool = torch_fp32 or same_arch
    for same in (lambda j: _model_name(rows[j]) == _model_name(rows[i]),
                 lambda j: rows[j].get("embedding") == rows[i].get("embedding")):  # `--embedding both`
        pool = [j for j in pool if same(j)] or pool
    return pool[0]


def _model_name(row: dict) -> str:
    return Path(row["model"]).name.split(".")[0]


def _arch_of(runtime) -> str | None:
    """The architecture a runtime runs, as its artefact records it: the model the torch runtime loaded
    (`runtime.arch`), the ONNX `reid_export.model` metadata, or a TensorRT sidecar's copy of it."""
    if runtime.arch is not None:
        return runtime.arch
    info = getattr(runtime, "info", None)
    if isinstance(getattr(info, "model", None), dict):
        return info.model.get("arch")
    sidecar = getattr(runtime, "sidecar", None)
    if isinstance(sidecar, dict):
        model = sidecar.get("model")
        return model.get("arch") if isinstance(model, dict) else None
    return None


def _bench_one(spec: ModelSpec, settings: BenchSettings, eval_paths, decoded, ids) -> tuple[dict, np.ndarray | None]:
    """One row. Everything that can fail for this runtime (loading, timing, extraction, accuracy) runs
    inside the guard, so a broken runtime is a `failed:` row and the other rows and the report are kept."""
    row: dict = {"runtime": spec.runtime, "model": str(spec.path), "status": "ok"}
    if "embedding" in dict(spec.options):  # `--embedding both`: the rows say which feature they rank with
        row["runtime"] = f"{spec.runtime} ({dict(spec.options)['embedding']})"
    try:
        with make_runtime(spec.runtime, spec.path, **dict(spec.options)) as runtime:
            row.update(provider=runtime.provider, precision=runtime.precision,
                       opset=getattr(getattr(runtime, "info", None), "opset", None), max_batch=runtime.max_batch)
            row["arch"] = _arch_of(runtime)
            contract = runtime.contract
            key = (contract.height, contract.width, contract.resize_method, contract.aspect)
            if key not in decoded:
                decoded[key] = decode_images(eval_paths, contract, progress=settings.progress)
            images = decoded[key]
            row["throughput"] = _sweep(runtime, images, settings)
            if settings.stages:
                row["stages"] = staged_timing(runtime, eval_paths,
                                              batch_size=min(settings.stage_batch_size, runtime.max_batch or 1 << 30))
            t0 = time.perf_counter()
            outputs = infer_images(runtime, images, batch_size=settings.eval_batch_size,
                                   progress=settings.progress)
            row["extract_seconds"] = round(time.perf_counter() - t0, 3)
        emb = outputs["embedding"]
        _check_finite(emb, eval_paths)
        row.update(_accuracy(emb, outputs, ids))
    except RuntimeUnavailable as e:
        return {**row, "status": f"skipped: {e}"}, None
    except ReidExportError as e:  # our own errors already say what failed and the fix
        return {**row, "status": f"failed: {e}"}, None
    except Exception as e:  # a failing configuration is a row, not the end of the sweep
        return {**row, "status": f"failed: {type(e).__name__}: {e}"}, None
    return row, emb


def _check_finite(emb: np.ndarray, paths) -> None:
    bad = np.flatnonzero(~np.isfinite(emb).all(axis=1))
    if len(bad):
        raise ReidExportError(f"{len(bad)} of {len(emb)} embeddings are not finite (first: {Path(paths[bad[0]]).name}); "
                              "the model outputs NaN/Inf: check its weights (a diverged training run?) or precision")


def _accuracy(emb: np.ndarray, outputs: dict, ids: dict) -> dict:
    nq = len(ids["q_pids"])
    metrics = evaluate_embeddings(emb[:nq], emb[nq:], ids["q_pids"], ids["g_pids"], ids["q_camids"], ids["g_camids"],
                                  metric="cosine")
    result = {k: round(float(metrics[k]), 3) for k in ("rank1", "rank5", "rank10", "mAP", "mINP")}
    result["num_valid_queries"] = int(metrics["num_valid_queries"])
    if "attributes" in outputs and ids["attribute_truth"]:
        scores = attribute_scores(outputs["attributes"], np.concatenate([ids["q_pids"], ids["g_pids"]]),
                                  ids["attribute_truth"])
        if scores is not None:
            result.update(attr_mean_accuracy=round(float(scores["mean_accuracy_12"]), 3),
                          attr_mA=round(float(scores["mA"]), 3), attr_images=int(scores["num_samples"]))
    return result


def _time_batches(runtime, images: np.ndarray, batch_size: int, settings: BenchSettings) -> dict:
    """Model-only latency of one batch size: pre-normalised input, warm-up, then at least
    `min_batches` timed calls. `infer` returns host arrays, so each clock read comes after the device
    finished (a device sync). Reports the median rate and the spread."""
    batch = runtime.contract.normalize_uint8(images[np.arange(batch_size) % len(images)])
    for _ in range(settings.warmup_batches):
        runtime.infer(batch)
    latencies = []
    start = time.perf_counter()
    while len(latencies) < settings.max_batches and (
            len(latencies) < settings.min_batches or time.perf_counter() - start < settings.min_seconds):
        t0 = time.perf_counter()
        runtime.infer(batch)
        latencies.append(time.perf_counter() - t0)
    lat = np.array(latencies) * 1e3
    p25, p50, p75, p99 = np.percentile(lat, [25, 50, 75, 99])
    return {
        "images_per_sec": round(batch_size / (p50 / 1e3), 2),
        "images_per_sec_mean": round(batch_size * len(lat) / (lat.sum() / 1e3), 2),
        "p50_ms": round(float(p50), 3),
        "p99_ms": round(float(p99), 3),
        "iqr_ms": round(float(p75 - p25), 3),
        "std_ms": round(float(lat.std()), 3),
        "batches": len(lat),
    }


def _sweep(runtime, images: np.ndarray, settings: BenchSettings) -> dict:
    """Throughput per batch size, smallest first. A size above the runtime's `max_batch`, or whose tensors
    would not fit in the memory available now, is `skipped` (that size only); a batch that still runs out
    of memory is recorded with its error and ends the sweep (larger ones would not fit either)."""
    results = {}
    per_image, limit = None, getattr(runtime, "max_batch", None)
    for bs in sorted(settings.batch_sizes):
        if limit is not None and bs > limit:
            results[str(bs)] = {"skipped": f"batch {bs} is above this runtime's max_batch {limit} "
                                           "(the engine's profile maximum; rebuild with a larger --max-batch)"}
            continue
        if per_image is None:
            per_image = _bytes_per_image(runtime, images)
        reason = _does_not_fit(runtime, bs, per_image)
        if reason:
            results[str(bs)] = {"skipped": reason}
            continue
        try:
            results[str(bs)] = _time_batches(runtime, images, bs, settings)
        except Exception as e:  # torch.cuda.OutOfMemoryError, MemoryError, ORT allocation failures
            if not _is_out_of_memory(e):
                raise
            results[str(bs)] = {"error": f"out of memory at batch {bs}: {str(e).splitlines()[0][:200]}"}
            break
    return results


def _bytes_per_image(runtime, images: np.ndarray) -> dict[str, int]:
    """Host bytes one image costs in a timed batch: the uint8 gather, the float32 input, the outputs
    (measured on one image). The model's own working memory is not counted: the estimate is a floor."""
    c, h, w = runtime.contract.input_shape
    try:
        outputs = runtime.infer(runtime.contract.normalize_uint8(images[:1]))
        output = sum(int(v.nbytes) for v in outputs.values())
    except ReidExportError:  # e.g. an engine whose profile starts above batch 1: count the input alone
        output = 0
    return {"input": c * h * w * 4, "uint8": c * h * w, "output": output}


def _does_not_fit(runtime, batch_size: int, per_image: dict[str, int]) -> str | None:
    """A reason when a batch's tensors need more memory than is available now (host, and the GPU for
    device runtimes), else None."""
    host = batch_size * (per_image["uint8"] + 2 * per_image["input"] + per_image["output"])  # + contiguous copy
    checks = [("", host, _host_available())]
    if str(getattr(runtime, "device", "cpu")).split(":")[0] in ("cuda", "tensorrt"):
        checks.append((" on the GPU", batch_size * (per_image["input"] + per_image["output"]), _gpu_available(runtime)))
    for where, need, available in checks:
        if available is not None and need > available:
            return f"batch {batch_size} needs ~{format_bytes(need)}{where}, {format_bytes(available)} available"
    return None


def _host_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gpu_available(runtime) -> int | None:
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        device = str(runtime.device)
        index = int(device.split(":")[1]) if ":" in device else 0
        return int(torch.cuda.mem_get_info(index)[0])
    except Exception:  # no torch, no driver: the runtime will say so itself
        return None


def _is_out_of_memory(error: Exception) -> bool:
    text = f"{type(error).__name__} {error}".lower()
    return isinstance(error, MemoryError) or "out of memory" in text or "outofmemory" in text or "bad_alloc" in text
