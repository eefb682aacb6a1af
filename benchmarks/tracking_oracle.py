"""How much can appearance help these trackers at all? Per-camera scores with four kinds of embeddings.

    python benchmarks/tracking_oracle.py --data runs/seqs --model runs/demo/model.onnx --tracker botsort,deepocsort

For every tracker, on the same detections: `none` (no appearance), `model` (the Re-ID model's embeddings, through
the project's Runtime), `centred` (the same embeddings less their mean over all detections, normalised again: what
the model tells apart, without the component every crop shares), `oracle` (one-hot ground-truth identities:
perfect appearance; a detection matching no ground-truth box gets an identity of its own) and `random` (noise). If `oracle` barely beats `none`, the
sequences or the tracker leave appearance no room, whatever the model: that is a property of the benchmark, not
of the export (docs/tracking.md). Scores come from TrackEval as in `track-bench`. This is a diagnostic, not a
result to tune on: run it on sequences that are not the scored ones if you change anything from it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from reid_export.bench import tracking_eval
from reid_export.bench.tracking_embed import embed_detections
from reid_export.bench.tracking_trackers import check_trackers, run_tracker
from reid_export.data.mot import find_sequences
from reid_export.runtimes import make_runtime, parse_model_spec

MATCH_IOU = 0.3  # a detection takes the identity of the ground-truth box it overlaps most, above this IoU


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a folder of MOTChallenge sequences (synth-video)")
    parser.add_argument("--model", required=True, help="the Re-ID artefact, as for track-bench (RUNTIME=PATH or PATH)")
    parser.add_argument("--tracker", default="botsort,deepocsort")
    args = parser.parse_args()
    trackers = check_trackers(args.tracker.split(","))
    sequences = find_sequences(args.data)
    gt = {s.name: s.ground_truth() for s in sequences}
    dets = {s.name: s.detections() for s in sequences}
    runtime_name, path = parse_model_spec(args.model)
    with make_runtime(runtime_name, path) as runtime:
        model = embed_detections(runtime, sequences, dets, progress=False)[0]
    rng = np.random.default_rng(0)
    mean = np.concatenate(list(model.values())).mean(axis=0)
    kinds = {"none": None, "model": model, "centred": {k: _normalised(v - mean) for k, v in model.items()},
             "oracle": {s.name: _one_hot(dets[s.name], gt[s.name]) for s in sequences},
             "random": {k: rng.normal(size=v.shape).astype(np.float32) for k, v in model.items()}}
    results = {f"{tracker}-{kind}": {s.name: run_tracker(tracker, dets[s.name], None if emb is None else emb[s.name],
                                                         frames=s.length, frame_rate=s.frame_rate)[0]
                                     for s in sequences}
               for tracker in trackers for kind, emb in kinds.items()}
    with tempfile.TemporaryDirectory() as work:
        scores = tracking_eval.score_tracks(sequences, gt, results, Path(work))
    print(f"{'tracker-embeddings':24s}  HOTA   AssA   IDF1  IDSW   MOTA")
    for name, s in scores.items():
        print(f"{name:24s} {s['HOTA']:5.1f}  {s['AssA']:5.1f}  {s['IDF1']:5.1f}  {s['IDSW']:4d}  {s['MOTA']:5.1f}")


def _normalised(embeddings: np.ndarray) -> np.ndarray:
    return (embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _one_hot(dets: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Each detection's ground-truth identity as a one-hot vector; unmatched detections get distinct identities."""
    labels = np.full(len(dets), -1)
    for frame in np.unique(dets[:, 0]):
        di, gi = np.flatnonzero(dets[:, 0] == frame), np.flatnonzero(gt[:, 0] == frame)
        if len(gi):
            overlap = _iou(dets[di, 2:6], gt[gi, 2:6])
            hit = overlap.max(1) > MATCH_IOU
            labels[di[hit]] = gt[gi[overlap.argmax(1)[hit]], 1]
    ids = {v: i for i, v in enumerate(sorted(set(labels[labels >= 0].tolist())))}
    unmatched = np.flatnonzero(labels < 0)
    out = np.zeros((len(dets), len(ids) + len(unmatched)), np.float32)
    out[labels >= 0, [ids[v] for v in labels[labels >= 0]]] = 1
    out[unmatched, len(ids) + np.arange(len(unmatched))] = 1
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` with every box of `b`, boxes as x, y, w, h."""
    ax2, ay2 = a[:, None, 0] + a[:, None, 2], a[:, None, 1] + a[:, None, 3]
    bx2, by2 = b[None, :, 0] + b[None, :, 2], b[None, :, 1] + b[None, :, 3]
    iw = np.clip(np.minimum(ax2, bx2) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2, by2) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    return iw * ih / (a[:, None, 2] * a[:, None, 3] + b[None, :, 2] * b[None, :, 3] - iw * ih)


if __name__ == "__main__":
    main()
