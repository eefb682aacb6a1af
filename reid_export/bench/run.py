"""The benchmark harness: every runtime on the same pixels, speed next to accuracy.

For each model spec (runtime + artefact) one row (`rows.BenchRow`, written as report.json's rows):
  status          ok | failed: reason | skipped: reason (`rows.Status` and the row's reason)
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

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..data.attributes import test_split_labels
from ..data.market1501 import load_market1501
from ..errors import ReidExportError, RuntimeUnavailable
from ..evaluation.agreement import embedding_agreement
from ..evaluation.split import Evaluation, Split, evaluate
from ..files import check_free_space, check_writable_dir, format_bytes, refuse_replacing
from ..images import decode_images
from ..runtimes import capabilities, infer_images, make_runtime, runtime_names
from .drift import preprocess_drift
from .report import machine_info
from .rows import SCHEMA_VERSION, BenchRow, Status, report_rows
from .settings import BenchSettings
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
        if "embedding" in capabilities(spec.runtime).options:
            out += [replace(spec, options=(*spec.options, ("embedding", name))) for name in names]
        else:
            out.append(spec)
    return out


def run_bench(data_root: str | Path, specs: list[ModelSpec], settings: BenchSettings | None = None,
              log=print) -> dict:
    """Benchmark every spec on the query/gallery of the Market-1501 folder `data_root`; returns the report dict."""
    settings = settings or BenchSettings()
    data = load_market1501(data_root, splits=("query", "gallery"), progress=settings.progress)
    split, attribute_truth = Split.from_market(data), test_split_labels(data.root)
    decoded: dict[tuple, np.ndarray] = {}  # one decode per input size, shared by every runtime
    rows, embeddings = [], []
    for spec in specs:
        log(f"[bench] {spec.label}")
        row, emb = _bench_one(spec, settings, split, decoded, attribute_truth)
        rows.append(row)
        embeddings.append(emb)
    _compare_to_reference(rows, embeddings)
    drift = preprocess_drift(specs, rows, embeddings, split, settings.preprocess_as,
                             upscale=settings.preprocess_upscale, batch_size=settings.eval_batch_size,
                             progress=settings.progress, log=log) if settings.preprocess_as else []
    return {
        "schema_version": SCHEMA_VERSION,
        "machine": machine_info(),
        "data": {"root": str(data.root), "num_query": split.num_query, "num_gallery": split.num_gallery},
        "settings": {k: v for k, v in asdict(settings).items() if k != "progress"},
        "rows": [row.to_dict() for row in rows],
        **({"drift": [row.to_dict() for row in drift]} if drift else {}),
    }


def check_gates(report: dict, *, max_map_drop: float | None = None, max_rank1_drop: float | None = None) -> list[str]:
    """Rows whose accuracy fell further below the reference than allowed (points); one message each."""
    broken = []
    for row in report_rows(report):
        if not row.ok or row.is_reference:
            continue
        for key, limit in (("mAP", max_map_drop), ("rank1", max_rank1_drop)):
            drop = -(getattr(row, f"delta_{key}") or 0.0)
            if limit is not None and drop > limit:
                broken.append(f"{row.runtime} ({row.precision}, {Path(row.model).name}): "
                              f"{key} dropped {drop:.2f} points vs {row.reference} (allowed {limit})")
    return broken


def check_report_dir(out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Before the sweep: `out_dir` must be (or become) a writable folder with a little free space, and
    hold no earlier report unless `overwrite`; with `overwrite`, a folder holding anything must hold an
    earlier bench report (--overwrite replaces a report, never a folder of other files)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ReidExportError(f"--out {out_dir} is a file; bench writes a folder (report.json, report.md, plots): "
                              "give a folder path")
    existing = [out_dir / name for name in REPORT_FILES if (out_dir / name).exists()]
    if existing and not overwrite:
        raise ReidExportError(f"{existing[0]} already exists (an earlier bench run); pass --overwrite to replace "
                              "its report and plots, or choose another --out folder")
    if overwrite and out_dir.is_dir() and any(out_dir.iterdir()):
        refuse_replacing(out_dir, own=lambda path: _is_report(path / "report.json"), option="--out",
                         kind="a bench report folder", why="it holds files but no report.json of `reid-export bench`")
    check_writable_dir(out_dir, what="--out folder")
    check_free_space(out_dir, 5_000_000, what="the bench report")
    return out_dir


def row_outcomes(report: dict) -> dict[str, list[dict]]:
    """The report's rows (dicts) grouped by their `Status`: `ok`, `failed` and `skipped`, in that order."""
    groups: dict[str, list[dict]] = {status.value: [] for status in (Status.OK, Status.FAILED, Status.SKIPPED)}
    for row, typed in zip(report["rows"], report_rows(report)):
        groups[typed.status.value].append(row)
    return groups


def _compare_to_reference(rows: list[BenchRow], embeddings: list) -> None:
    """Each ok row is compared with the PyTorch FP32 row of its own architecture (`arch`): of the same model
    (file name up to its first dot: `r18.pt` for `r18.int8.onnx`) when several checkpoints share the arch,
    else the first such row; an arch without one uses its first ok row. Every ok row gets the reference's
    label, its cosine agreement with it and its accuracy deltas (points); a reference row marks itself."""
    ok = [i for i, e in enumerate(embeddings) if e is not None]
    for i in ok:
        j = _reference_of(i, rows, ok)
        row, ref = rows[i], rows[j]
        row.reference, row.is_reference = f"{ref.runtime}:{Path(ref.model).name}", j == i
        for key in ("rank1", "mAP", "mINP", "attr_mA"):
            if getattr(row, key) is not None and getattr(ref, key) is not None:
                setattr(row, f"delta_{key}", round(getattr(row, key) - getattr(ref, key), 3))
        if embeddings[i].shape == embeddings[j].shape:
            for key, value in embedding_agreement(embeddings[j], embeddings[i]).items():
                setattr(row, key, value)


def _reference_of(i: int, rows: list[BenchRow], ok: list[int]) -> int:
    same_arch = [j for j in ok if rows[j].arch == rows[i].arch]
    torch_fp32 = [j for j in same_arch if rows[j].runtime.partition(" ")[0] in runtime_names(reference=True)  # " (neck)"
                  and rows[j].precision == "fp32"]
    pool = torch_fp32 or same_arch
    for same in (lambda j: _model_name(rows[j]) == _model_name(rows[i]),
                 lambda j: rows[j].extra.get("embedding") == rows[i].extra.get("embedding")):  # `--embedding both`
        pool = [j for j in pool if same(j)] or pool
    return pool[0]


def _model_name(row: BenchRow) -> str:
    return Path(row.model).name.split(".")[0]


def _arch_of(runtime) -> str | None:
    """The architecture an active runtime runs, as its model or its artefact records it (`RuntimeInfo.arch`)."""
    return runtime.info.arch


def _bench_one(spec: ModelSpec, settings: BenchSettings, split: Split, decoded,
               attribute_truth: dict | None) -> tuple[BenchRow, np.ndarray | None]:
    """One row. Everything that can fail for this runtime (loading, timing, extraction, accuracy) runs
    inside the guard, so a broken runtime is a `failed` row and the other rows and the report are kept."""
    row = BenchRow(runtime=spec.runtime, model=str(spec.path))
    if "embedding" in dict(spec.options):  # `--embedding both`: the rows say which feature they rank with
        row.runtime = f"{spec.runtime} ({dict(spec.options)['embedding']})"
    try:
        with make_runtime(spec.runtime, spec.path, **dict(spec.options)) as runtime:
            row.provider, row.precision = runtime.provider, runtime.precision
            row.opset, row.max_batch = runtime.info.opset, runtime.info.max_batch
            row.arch = _arch_of(runtime)
            row.compile_seconds = runtime.info.extra.get("compile_seconds")  # torch-compile's activate(), apart
            contract = runtime.contract
            key = (contract.height, contract.width, contract.resize_method, contract.aspect)
            if key not in decoded:
                decoded[key] = decode_images(list(split.paths), contract, progress=settings.progress)
            images = decoded[key]
            row.throughput = _sweep(runtime, images, settings)
            if settings.stages:
                row.stages = staged_timing(runtime, list(split.paths),
                                           batch_size=min(settings.stage_batch_size, runtime.max_batch or 1 << 30))
            t0 = time.perf_counter()
            outputs = infer_images(runtime, images, batch_size=settings.eval_batch_size,
                                   progress=settings.progress)
            row.extract_seconds = round(time.perf_counter() - t0, 3)
        _set_accuracy(row, evaluate(outputs, split, attribute_truth=attribute_truth))
    except RuntimeUnavailable as e:
        return row.skipped(str(e)), None
    except ReidExportError as e:  # our own errors already say what failed and the fix
        return row.failed(str(e)), None
    except Exception as e:  # a failing configuration is a row, not the end of the sweep
        return row.failed(f"{type(e).__name__}: {e}"), None
    return row, outputs["embedding"]


def _set_accuracy(row: BenchRow, result: Evaluation) -> None:
    """The row's accuracy columns from its own embeddings: ranking and, when scored, attributes (3 decimals)."""
    for key, value in result.ranking(digits=3).items():
        setattr(row, key, value)
    row.num_valid_queries = result.num_valid_queries
    if result.attributes is not None:
        row.attr_mean_accuracy = round(result.attributes.mean_accuracy, 3)
        row.attr_mA = round(result.attributes.mA, 3)
        row.attr_images = result.attributes.num_images


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


def _is_report(path: Path) -> bool:
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(report, dict)  # a JSON object: what bench writes (an older or failed run's may lack rows)
