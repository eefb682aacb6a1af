"""Cross-camera hand-over: scene-wide identities for the tracklets of a scene's cameras, by appearance.

Each tracklet (one track id in one camera) is described by the mean of its detections' normalised embeddings.
The tracklets are then clustered bottom-up: the two closest clusters (average cosine distance between their
tracklets) join, again and again, while that distance is below the threshold. Two tracklets of one camera that
overlap in time are two people, so clusters holding such a pair never join. Tracklets of one camera that do
not overlap can join: that is a person who left and came back (a re-entry the tracker's memory did not span).

The cameras of a scene are then laid end to end as one sequence and scored with IDF1 against the ground-truth
ids, which are shared across cameras: the multi-camera IDF1 of Ristani et al. (`cross_camera_idf1`).

The threshold depends on the model (how far apart its embeddings of different people lie: the demo model puts
most pairs of different people within 0.25), so it is chosen on other sequences (`choose_threshold`, on a tune
set rendered from another seed), never on those scored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..data.mot import MotSequence
from .tracking_eval import scene_sequences, score_tracks

__all__ = ["hand_over", "cross_camera_idf1", "choose_threshold", "THRESHOLDS"]

# the thresholds `choose_threshold` tries: cosine distances, dense where Re-ID models put their thresholds
THRESHOLDS = (0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)


@dataclass
class _Cluster:
    total: np.ndarray | None  # sum of its tracklets' unit mean embeddings; None: no embedding, never joins
    count: int  # tracklets in it
    spans: list[tuple[int, float, float]]  # (camera index, first frame, last frame) of each tracklet


def hand_over(scene: list[MotSequence], tracks: dict[str, np.ndarray], embeddings: dict[str, np.ndarray] | None,
              threshold: float) -> np.ndarray:
    """The scene's cameras end to end (camera 2's frame 1 follows camera 1's last) as tracker rows with
    scene-wide ids. Without embeddings each tracklet keeps an id of its own (no hand-over)."""
    names, clusters = [], []
    for c, seq in enumerate(scene):
        rows = tracks[seq.name]
        for tid in np.unique(rows[:, 1]).astype(int):
            mine = rows[rows[:, 1] == tid]
            mean = None if embeddings is None else _unit_mean(embeddings[seq.name], mine[:, 10])
            names.append((seq.name, tid))
            clusters.append(_Cluster(mean, 1, [(c, mine[:, 0].min(), mine[:, 0].max())]))
    members = _agglomerate(clusters, threshold)
    ids = {names[i]: n + 1 for n, group in enumerate(members) for i in group}
    out, offset = [], 0
    for seq in scene:
        rows = tracks[seq.name].copy()
        rows[:, 0] += offset
        rows[:, 1] = [ids[(seq.name, int(t))] for t in rows[:, 1]]
        out.append(rows)
        offset += seq.length
    return np.concatenate(out) if out else np.zeros((0, 11))


def cross_camera_idf1(sequences: list[MotSequence], gt: dict[str, np.ndarray],
                      candidates: dict[str, tuple[dict, dict | None, float]], work: Path) -> dict[str, float]:
    """IDF1 after hand-over, the mean over the scenes seen by two or more cameras, for each candidate key:
    (tracks by sequence, embeddings by sequence or None, threshold). Empty when no scene has two cameras."""
    per_scene: dict[str, list[float]] = {key: [] for key in candidates}
    for scene, views in scene_sequences(sequences).items():
        joined = replace(views[0], name=f"{scene}-all-cameras", length=sum(v.length for v in views))
        offsets = np.cumsum([0] + [v.length for v in views[:-1]])
        scene_gt = np.concatenate([_shifted(gt[v.name], offset) for v, offset in zip(views, offsets)])
        handed = {key: {joined.name: hand_over(views, tracks, embeddings, threshold)}
                  for key, (tracks, embeddings, threshold) in candidates.items()}
        for key, scores in score_tracks([joined], {joined.name: scene_gt}, handed, work / f"xcam-{scene}").items():
            per_scene[key].append(scores["IDF1"])
    return {key: round(float(np.mean(v)), 2) for key, v in per_scene.items() if v}


def choose_threshold(sequences: list[MotSequence], gt: dict[str, np.ndarray], tracks: dict[str, np.ndarray],
                     embeddings: dict[str, np.ndarray], work: Path) -> tuple[float, float]:
    """The hand-over threshold with the best cross-camera IDF1 on these (tune) sequences, the middle one of a
    tie; returns (threshold, its IDF1)."""
    scores = cross_camera_idf1(sequences, gt, {f"t{i}": (tracks, embeddings, t) for i, t in enumerate(THRESHOLDS)},
                               work)
    best = max(scores.values())
    tied = [t for i, t in enumerate(THRESHOLDS) if scores[f"t{i}"] == best]
    return tied[len(tied) // 2], best


def _agglomerate(clusters: list[_Cluster], threshold: float) -> list[list[int]]:
    """Average-linkage clustering under the cannot-link rule; returns the tracklet indices of each cluster, in
    order of their first tracklet."""
    members = [[i] for i in range(len(clusters))]
    alive = list(range(len(clusters)))
    cost = np.full((len(clusters), len(clusters)), np.inf)
    for a in alive:
        for b in alive:
            if a < b:
                cost[a, b] = cost[b, a] = _distance(clusters[a], clusters[b])
    while len(alive) > 1:
        sub = cost[np.ix_(alive, alive)]
        flat = int(np.argmin(sub))
        i, j = alive[flat // len(alive)], alive[flat % len(alive)]
        if not sub.flat[flat] < threshold:
            break
        a, b = min(i, j), max(i, j)
        clusters[a] = _Cluster(clusters[a].total + clusters[b].total, clusters[a].count + clusters[b].count,
                               clusters[a].spans + clusters[b].spans)
        members[a] += members[b]
        alive.remove(b)
        cost[b, :] = cost[:, b] = np.inf
        for k in alive:
            if k != a:
                cost[a, k] = cost[k, a] = _distance(clusters[a], clusters[k])
    return sorted((sorted(members[k]) for k in alive), key=lambda group: group[0])


def _distance(a: _Cluster, b: _Cluster) -> float:
    """Average cosine distance between the tracklets of two clusters; inf when they may not join."""
    if a.total is None or b.total is None:
        return np.inf
    if any(ca == cb and fa <= lb and fb <= la for ca, fa, la in a.spans for cb, fb, lb in b.spans):
        return np.inf
    return 1.0 - float(a.total @ b.total) / (a.count * b.count)


def _unit_mean(embeddings: np.ndarray, taken: np.ndarray) -> np.ndarray | None:
    """The unit-length mean of the normalised embeddings of the detections a track took; None if it took none."""
    taken = taken[taken >= 0].astype(int)
    if not len(taken):
        return None
    e = embeddings[taken].astype(np.float64)
    mean = (e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)).mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def _shifted(rows: np.ndarray, frames: int) -> np.ndarray:
    """MOTChallenge rows with `frames` added to their frame numbers."""
    rows = rows.copy()
    rows[:, 0] += frames
    return rows
