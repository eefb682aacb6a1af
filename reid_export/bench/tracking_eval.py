"""Scoring tracker output with TrackEval (HOTA, CLEAR, Identity), and the cross-camera hand-over.

TrackEval (PyPI `trackeval`, the `tracking` extra) is the reference implementation of HOTA and the
CLEAR/Identity metrics; it reads MOTChallenge files, so results and ground truth are written in its
layout under a work folder and read back as numbers (percent, IDSW a count).

Hand-over: each camera's tracklets are given scene-wide identities by their appearance (the mean of their
normalised embeddings), in order of first frame: a tracklet joins the nearest identity (cosine distance below
the threshold) that has no tracklet overlapping it in time in the same camera, else starts a new one. The
cameras of a scene are then laid end to end as one sequence and scored with IDF1 against the ground-truth
ids, which are shared across cameras: the multi-camera IDF1 of Ristani et al.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from ..data.mot import MotSequence, write_rows, write_seqinfo
from ..errors import ReidExportError

__all__ = ["score_tracks", "hand_over", "scene_sequences", "METRICS"]

METRICS = ("HOTA", "DetA", "AssA", "IDF1", "IDSW", "MOTA")


def score_tracks(sequences: list[MotSequence], gt: dict[str, np.ndarray], results: dict[str, dict[str, np.ndarray]],
                 work: Path) -> dict[str, dict[str, float]]:
    """TrackEval over all `sequences` at once: {result key: {HOTA, DetA, AssA, IDF1, MOTA (percent), IDSW}}.
    `results` maps a key to {sequence name: tracker rows (frame, id, x, y, w, h, ...)}."""
    try:
        import trackeval  # lazy: the `tracking` extra, and matplotlib behind it
    except ImportError:
        raise ReidExportError("track-bench scores with TrackEval: pip install 'reid-export[tracking]'") from None
    for seq in sequences:
        write_rows(work / "gt" / seq.name / "gt" / "gt.txt", gt[seq.name])
        write_seqinfo(work / "gt" / seq.name, seq)
    for key, by_seq in results.items():
        for seq in sequences:
            write_rows(work / "trackers" / key / "data" / f"{seq.name}.txt", by_seq[seq.name][:, :10])
    dataset = trackeval.datasets.MotChallenge2DBox({
        **trackeval.datasets.MotChallenge2DBox.get_default_dataset_config(),
        "GT_FOLDER": str(work / "gt"), "TRACKERS_FOLDER": str(work / "trackers"), "OUTPUT_FOLDER": str(work / "out"),
        "TRACKERS_TO_EVAL": list(results), "SEQ_INFO": {seq.name: seq.length for seq in sequences},
        "SKIP_SPLIT_FOL": True, "PRINT_CONFIG": False,
    })
    evaluator = trackeval.Evaluator({
        **trackeval.Evaluator.get_default_eval_config(), "USE_PARALLEL": False, "PRINT_RESULTS": False,
        "PRINT_CONFIG": False, "TIME_PROGRESS": False, "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False,
        "PLOT_CURVES": False, "LOG_ON_ERROR": str(work / "trackeval_error.txt"),
    })
    metrics = [trackeval.metrics.HOTA({"PRINT_CONFIG": False}), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
               trackeval.metrics.Identity({"PRINT_CONFIG": False})]
    with contextlib.redirect_stdout(io.StringIO()) as said:  # TrackEval prints its progress
        output, messages = evaluator.evaluate([dataset], metrics)
    scores = {}
    for key in results:
        if messages["MotChallenge2DBox"][key] != "Success":
            raise ReidExportError(f"TrackEval could not score {key}: {messages['MotChallenge2DBox'][key]} "
                                  f"({said.getvalue().strip()[-300:]})")
        res = output["MotChallenge2DBox"][key]["COMBINED_SEQ"]["pedestrian"]
        scores[key] = {
            "HOTA": _percent(res["HOTA"]["HOTA"]), "DetA": _percent(res["HOTA"]["DetA"]),
            "AssA": _percent(res["HOTA"]["AssA"]), "IDF1": _percent(res["Identity"]["IDF1"]),
            "IDSW": int(res["CLEAR"]["IDSW"]), "MOTA": _percent(res["CLEAR"]["MOTA"]),
        }
    return scores


def scene_sequences(sequences: list[MotSequence]) -> dict[str, list[MotSequence]]:
    """Scenes seen by two or more cameras: scene name -> its sequences by camera."""
    scenes: dict[str, list[MotSequence]] = {}
    for seq in sequences:
        if seq.scene is not None:
            scenes.setdefault(seq.scene, []).append(seq)
    return {name: sorted(seqs, key=lambda s: s.camera or 0) for name, seqs in scenes.items() if len(seqs) > 1}


def hand_over(scene: list[MotSequence], tracks: dict[str, np.ndarray], embeddings: dict[str, np.ndarray] | None,
              threshold: float) -> np.ndarray:
    """The scene's cameras end to end (camera 2's frame 1 follows camera 1's last) as tracker rows with
    scene-wide ids. Without embeddings each tracklet keeps an id of its own (no hand-over)."""
    tracklets = []  # (first frame, camera index, sequence name, track id, last frame, mean embedding)
    for c, seq in enumerate(scene):
        rows = tracks[seq.name]
        for tid in np.unique(rows[:, 1]).astype(int):
            mine = rows[rows[:, 1] == tid]
            taken = mine[:, 10][mine[:, 10] >= 0].astype(int)
            mean = None
            if embeddings is not None and len(taken):
                e = embeddings[seq.name][taken]
                mean = (e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)).mean(axis=0)
            tracklets.append((mine[:, 0].min(), c, seq.name, tid, mine[:, 0].max(), mean))
    ids: dict[tuple[str, int], int] = {}
    identities: list[dict] = []  # {"sum": embedding sum or None, "spans": [(camera index, first, last)]}
    for first, c, name, tid, last, mean in sorted(tracklets, key=lambda t: (t[0], t[1], t[3])):
        best, best_cost = None, threshold
        for n, identity in enumerate(identities if mean is not None else []):
            if identity["sum"] is None or any(cc == c and f <= last and first <= l for cc, f, l in identity["spans"]):
                continue
            norms = float(np.linalg.norm(mean) * np.linalg.norm(identity["sum"]))
            cost = 1 - float(mean @ identity["sum"]) / max(norms, 1e-12)
            if cost < best_cost:
                best, best_cost = n, cost
        if best is None:
            identities.append({"sum": None if mean is None else np.zeros_like(mean), "spans": []})
            best = len(identities) - 1
        identity = identities[best]
        identity["spans"].append((c, first, last))
        if mean is not None:
            identity["sum"] = identity["sum"] + mean
        ids[(name, tid)] = best + 1
    out, offset = [], 0
    for seq in scene:
        rows = tracks[seq.name].copy()
        rows[:, 0] += offset
        rows[:, 1] = [ids[(seq.name, int(t))] for t in rows[:, 1]]
        out.append(rows)
        offset += seq.length
    return np.concatenate(out) if out else np.zeros((0, 11))


def _percent(value) -> float:
    return round(float(np.mean(value)) * 100, 2)  # HOTA, DetA, AssA: the mean over localisation thresholds
