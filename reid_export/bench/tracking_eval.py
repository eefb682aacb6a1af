"""Scoring tracker output with TrackEval (HOTA, CLEAR, Identity).

TrackEval (PyPI `trackeval`, the `tracking` extra) is the reference implementation of HOTA and the
CLEAR/Identity metrics; it reads MOTChallenge files, so results and ground truth are written in its
layout under a work folder and read back as numbers (percent, IDSW a count). The cross-camera score
(`tracking_handover`) scores its joined sequences here too.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from ..data.mot import MotSequence, write_rows, write_seqinfo
from ..errors import ReidExportError

__all__ = ["score_tracks", "scene_sequences", "METRICS"]

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


def _percent(value) -> float:
    return round(float(np.mean(value)) * 100, 2)  # HOTA, DetA, AssA: the mean over localisation thresholds
