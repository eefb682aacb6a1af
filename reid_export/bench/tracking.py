"""The tracking benchmark (`reid-export track-bench`): does an export hold up inside a tracker?

For every model spec (any runtime of the registry, so FP32/FP16/INT8/OpenVINO/TensorRT rows compare) the
detections of every sequence are embedded as a tracker would (`tracking_embed`), then each tracker runs with
those embeddings (`tracking_trackers`, boxmot's) and TrackEval scores it (`tracking_eval`): HOTA, DetA, AssA,
IDF1, IDSW, MOTA, plus Re-ID and tracker milliseconds per frame. A `none` row runs each tracker on motion
alone, the baseline Re-ID has to beat. Scenes seen by several cameras also get a cross-camera IDF1 (tracklets
handed over by appearance, `tracking_handover`); each row's hand-over threshold is chosen on tune sequences
(another seed's: `tune_data`) with that row's own runtime and tracker, or fixed by the caller. Each row is
compared with the torch FP32 row of the same architecture and tracker; a runtime that fails becomes a failed
row, the others go on.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..artefacts.info import inspect as inspect_artefact
from ..data.mot import MotSequence, find_sequences, write_rows
from ..errors import DataError, ReidExportError
from ..files import check_writable_dir
from ..runtimes import make_runtime, runtime_names
from .report import machine_info
from .run import ModelSpec
from .tracking_embed import embed_detections
from .tracking_eval import METRICS, scene_sequences, score_tracks
from .tracking_handover import choose_threshold, cross_camera_idf1
from .tracking_trackers import check_trackers, run_tracker, runs_without_appearance

__all__ = ["TrackBenchSettings", "run_track_bench", "REPORT_KIND", "UNTUNED_HANDOVER"]

REPORT_KIND = "reid-export track-bench"
UNTUNED_HANDOVER = 0.3  # cosine distance, when neither tune data nor a threshold is given (with a warning)


@dataclass(frozen=True)
class TrackBenchSettings:
    trackers: tuple[str, ...] = ("botsort", "deepocsort")  # boxmot trackers, see tracking_trackers.TRACKERS
    det_file: str | None = None  # detections per sequence: det/det.txt unless given (relative, or with {seq})
    sequences: str = "*"  # shell pattern of the sequence names to run
    handover_threshold: float | None = None  # cross-camera: largest cosine distance to join; None: tuned
    tune_data: str | None = None  # sequences of another seed on which each row's hand-over threshold is chosen
    progress: bool = True


def run_track_bench(data: str | Path, specs: list[ModelSpec], settings: TrackBenchSettings | None = None, *,
                    out_dir: str | Path, log=print) -> dict:
    """Run the benchmark; tracker results are kept under `out_dir`/tracks/ROW/data/SEQ.txt (MOTChallenge
    files). Returns the report (rows of dicts); the caller writes it."""
    s = settings or TrackBenchSettings()
    check_trackers(list(s.trackers))
    check_writable_dir(out_dir, what="--out folder")
    start = time.perf_counter()
    sequences = find_sequences(data, s.sequences)
    gt = {seq.name: seq.ground_truth() for seq in sequences}  # every input is read before any model runs
    dets = {seq.name: seq.detections(s.det_file) for seq in sequences}
    tune = _tune_sequences(s, sequences, log)
    tune_gt = {seq.name: seq.ground_truth() for seq in tune}
    tune_dets = {seq.name: seq.detections() for seq in tune}
    rows: list[dict] = []
    results: dict[str, dict[str, np.ndarray]] = {}
    sources: list[tuple[dict, dict[str, np.ndarray] | None]] = [({"model": "none", "runtime": "none",
                                                                   "precision": "-", "arch": None,
                                                                   "reid_ms_per_frame": 0.0}, None)]
    for spec in specs:
        source = {"model": str(spec.path), "runtime": spec.runtime, "precision": None, "arch": None}
        try:
            with make_runtime(spec.runtime, spec.path, **dict(spec.options)) as runtime:
                source.update(precision=runtime.precision, arch=runtime.arch or _artefact_arch(spec.path),
                              provider=runtime.provider)
                embeddings, source["reid_ms_per_frame"] = embed_detections(runtime, sequences, dets,
                                                                           progress=s.progress)
                source["_tune_embeddings"] = embed_detections(runtime, tune, tune_dets, progress=s.progress)[0] \
                    if tune else None
            sources.append((source, embeddings))
        except Exception as e:  # noqa: BLE001 - one runtime that cannot run is a failed row, not a failed sweep
            log(f"{spec.runtime} {spec.path}: failed ({type(e).__name__}: {e})")
            rows += [{**source, "tracker": t, "status": f"failed: {type(e).__name__}: {e}"} for t in s.trackers]
    for source, embeddings in sources:
        for tracker in s.trackers:
            if embeddings is None and not runs_without_appearance(tracker):
                continue
            row = {**source, "tracker": tracker, "status": "ok", "key": _key(tracker, source, len(rows))}
            tracks, ms = {}, 0.0
            for seq in sequences:
                tracks[seq.name], seq_ms = run_tracker(tracker, dets[seq.name], None if embeddings is None
                                                       else embeddings[seq.name], frames=seq.length,
                                                       frame_rate=seq.frame_rate)
                ms += seq_ms * seq.length
                write_rows(Path(out_dir) / "tracks" / row["key"] / "data" / f"{seq.name}.txt", tracks[seq.name][:, :10])
            row["tracker_ms_per_frame"] = round(ms / sum(seq.length for seq in sequences), 3)
            row["_tracks"], row["_embeddings"] = tracks, embeddings
            if embeddings is not None:
                row["handover_threshold"], row["handover_tune_IDF1"] = _threshold(tracker, tune, tune_gt, tune_dets,
                                                                                  source["_tune_embeddings"], s)
            results[row["key"]] = tracks
            rows.append(row)
            log(f"tracked: {tracker} with {source['runtime']} {source['precision']}")
    _score(rows, sequences, gt, results, s)
    _compare(rows)
    for row in rows:
        for private in ("_tracks", "_embeddings", "_tune_embeddings"):
            row.pop(private, None)
        if "reid_ms_per_frame" in row:
            row["reid_ms_per_frame"] = round(row["reid_ms_per_frame"], 3)
    return {
        "kind": REPORT_KIND, "version": 1, "machine": machine_info(), "data": str(data), "settings": asdict(s),
        "sequences": [{"name": q.name, "frames": q.length, "scene": q.scene, "camera": q.camera,
                       "gt_boxes": len(gt[q.name]), "detections": len(dets[q.name])} for q in sequences],
        "tune_sequences": [q.name for q in tune],
        "rows": rows, "wall_s": round(time.perf_counter() - start, 1),
    }


def _score(rows: list[dict], sequences: list[MotSequence], gt: dict, results: dict, s: TrackBenchSettings) -> None:
    ok = [row for row in rows if row["status"] == "ok"]
    if not ok:
        return
    with tempfile.TemporaryDirectory(prefix="track-bench-") as work:
        for key, scores in score_tracks(sequences, gt, results, Path(work) / "single").items():
            next(row for row in ok if row["key"] == key).update(scores)
        candidates = {row["key"]: (row["_tracks"], row["_embeddings"], row.get("handover_threshold", 0.0))
                      for row in ok}
        for key, idf1 in cross_camera_idf1(sequences, gt, candidates, Path(work) / "xcam").items():
            next(row for row in ok if row["key"] == key)["xcam_IDF1"] = idf1


def _threshold(tracker: str, tune: list[MotSequence], gt: dict, dets: dict, embeddings: dict | None,
               s: TrackBenchSettings) -> tuple[float, float | None]:
    """A row's hand-over threshold: the given one, else the best on the tune sequences (with its IDF1 there)."""
    if s.handover_threshold is not None or not tune:
        return (UNTUNED_HANDOVER if s.handover_threshold is None else s.handover_threshold), None
    tracks = {seq.name: run_tracker(tracker, dets[seq.name], embeddings[seq.name], frames=seq.length,
                                    frame_rate=seq.frame_rate)[0] for seq in tune}
    with tempfile.TemporaryDirectory(prefix="track-bench-tune-") as work:
        return choose_threshold(tune, gt, tracks, embeddings, Path(work))


def _tune_sequences(s: TrackBenchSettings, sequences: list[MotSequence], log) -> list[MotSequence]:
    """The tune sequences, refused when they share a sequence or a scene with the scored ones."""
    if s.tune_data is None:
        if s.handover_threshold is None and scene_sequences(sequences):
            log(f"warning: the cross-camera hand-over threshold is not tuned; using {UNTUNED_HANDOVER}. Give "
                "--tune-data (sequences rendered from another seed) or --handover-threshold")
        return []
    tune = find_sequences(s.tune_data)
    shared = ({q.name for q in tune} & {q.name for q in sequences}) | \
        ({q.scene for q in tune if q.scene} & {q.scene for q in sequences if q.scene})
    if shared:
        raise DataError(f"--tune-data {s.tune_data}: shares {sorted(shared)[0]} with --data; thresholds must be chosen "
                        "on other sequences than those scored: render them with another seed "
                        "(reid-export synth-video DIR --seed 1)")
    if not scene_sequences(tune):
        raise DataError(f"--tune-data {s.tune_data}: no scene seen by two or more cameras, so nothing to tune the "
                        "hand-over on; give synth-video sequences (--cameras 2 or more)")
    return tune


def _compare(rows: list[dict]) -> None:
    """Deltas (points, IDSW a count) against the torch FP32 row of the same arch and tracker, and the IDF1
    margin over the same tracker's `none` row."""
    ok = [row for row in rows if row["status"] == "ok"]
    for row in ok:
        if row["runtime"] == "none":
            continue
        ref = next((r for r in ok if r["tracker"] == row["tracker"] and r["arch"] == row["arch"]
                    and r["runtime"] in runtime_names(reference=True) and r["precision"] == "fp32"), None)
        if ref is not None:
            row["reference"] = f"{ref['runtime']} {ref['precision']}"
            for key in (*METRICS, "xcam_IDF1"):
                if key in row and key in ref:
                    row[f"delta_{key}"] = round(row[key] - ref[key], 2)
        baseline = next((r for r in ok if r["tracker"] == row["tracker"] and r["runtime"] == "none"), None)
        if baseline is not None:
            row["IDF1_over_none"] = round(row["IDF1"] - baseline["IDF1"], 2)
            if "xcam_IDF1" in row:
                row["xcam_IDF1_over_none"] = round(row["xcam_IDF1"] - baseline["xcam_IDF1"], 2)


def _key(tracker: str, source: dict, n: int) -> str:
    """A file-safe, unique row name: botsort-onnxruntime-int8-3."""
    name = "-".join(str(part) for part in (tracker, source["runtime"], source["precision"]) if part not in (None, "-"))
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) + f"-{n}"


def _artefact_arch(path) -> str | None:
    """The architecture the artefact records (ONNX metadata, IR rt_info, engine sidecar), None if it says none."""
    try:
        return inspect_artefact(path).arch
    except (ReidExportError, OSError):
        return None
