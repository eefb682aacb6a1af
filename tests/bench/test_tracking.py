"""track-bench: TrackEval scores, the cross-camera hand-over and its tuning on another seed, and a run through
ONNX Runtime FP32 and INT8."""

from __future__ import annotations

import json
from dataclasses import replace
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("boxmot", reason="the `tracking` extra (boxmot, trackeval) is not installed")
pytest.importorskip("trackeval", reason="the `tracking` extra (boxmot, trackeval) is not installed")

from reid_export.bench.tracking_eval import scene_sequences, score_tracks  # noqa: E402
from reid_export.bench.tracking_handover import THRESHOLDS, choose_threshold, cross_camera_idf1, hand_over  # noqa: E402
from reid_export.data.mot import find_sequences  # noqa: E402
from reid_export.data.synthetic.video import VideoSettings, generate_sequences  # noqa: E402


TINY = VideoSettings(cameras=2, frames=80, people=8, width=320, height=180)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracks")
    generate_sequences(root, TINY, seed=2, progress=False)
    return root


@pytest.fixture(scope="module")
def tune_video(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    generate_sequences(root, TINY, seed=3, progress=False)
    return root


def _as_tracks(gt: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
    """Ground truth written as tracker output (frame, id, box, 1, -1, -1, -1, detection index)."""
    n = len(gt)
    return np.column_stack([gt[:, 0], gt[:, 1] if ids is None else ids, gt[:, 2:6], np.ones(n), -np.ones((n, 3)),
                            np.arange(n)])


def test_ground_truth_as_tracker_output_scores_perfectly_and_shuffled_ids_score_low(video, tmp_path):
    sequences = find_sequences(video)
    gt = {s.name: s.ground_truth() for s in sequences}
    rng = np.random.default_rng(0)
    results = {"perfect": {name: _as_tracks(rows) for name, rows in gt.items()},
               "shuffled": {name: _as_tracks(rows, _shuffled_per_frame(rows, rng)) for name, rows in gt.items()}}
    scores = score_tracks(sequences, gt, results, tmp_path)
    assert scores["perfect"]["HOTA"] == 100 and scores["perfect"]["IDF1"] == 100 and scores["perfect"]["IDSW"] == 0
    assert scores["shuffled"]["IDF1"] < 50 and scores["shuffled"]["AssA"] < 50 and scores["shuffled"]["IDSW"] > 100
    assert scores["shuffled"]["DetA"] > 98  # the boxes are right (HOTA matching prefers right ids among overlapping boxes)


def test_hand_over_by_appearance_joins_one_person_across_cameras(video, tmp_path):
    sequences = find_sequences(video)
    (scene, views), = scene_sequences(sequences).items()
    gt = {s.name: s.ground_truth() for s in views}
    tracks = {s.name: _as_tracks(gt[s.name], gt[s.name][:, 1] + 100 * s.camera) for s in views}  # per-camera ids
    embeddings = {s.name: np.eye(16, dtype=np.float32)[gt[s.name][:, 1].astype(int)] for s in views}  # one per person
    joined_gt = np.concatenate([gt[views[0].name], gt[views[1].name] + np.eye(1, 9)[0] * views[0].length])  # frames follow
    joined = replace(views[0], name="all", length=views[0].length + views[1].length)
    scores = score_tracks([joined], {"all": joined_gt}, {
        "appearance": {"all": hand_over(views, tracks, embeddings, 0.5)},
        "no-appearance": {"all": hand_over(views, tracks, None, 0.5)},
    }, tmp_path)
    assert scores["appearance"]["IDF1"] == 100
    assert scores["no-appearance"]["IDF1"] < 100  # people seen by both cameras count twice


def test_hand_over_never_joins_two_tracklets_seen_at_once_in_one_camera(video):
    views = find_sequences(video)
    gt = {s.name: s.ground_truth() for s in views}
    tracks = {s.name: _as_tracks(gt[s.name], gt[s.name][:, 1] + 100 * s.camera) for s in views}
    same = {s.name: np.ones((len(gt[s.name]), 4), np.float32) for s in views}  # everyone looks the same
    handed = hand_over(views, tracks, same, 0.5)
    first = handed[handed[:, 0] <= views[0].length]
    for frame in np.unique(first[:, 0]):
        ids = first[first[:, 0] == frame, 1]
        assert len(np.unique(ids)) == len(ids)  # two people in one frame keep two ids, however alike


def test_the_threshold_is_chosen_on_the_tune_sequences(tune_video, tmp_path):
    tune = find_sequences(tune_video)
    gt = {s.name: s.ground_truth() for s in tune}
    tracks = {s.name: _as_tracks(gt[s.name], gt[s.name][:, 1] + 100 * s.camera) for s in tune}
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 32))
    embeddings = {s.name: (centres[gt[s.name][:, 1].astype(int)] + 0.1 * rng.normal(size=(len(gt[s.name]), 32)))
                  for s in tune}
    threshold, idf1 = choose_threshold(tune, gt, tracks, embeddings, tmp_path)
    assert threshold in THRESHOLDS and idf1 == 100
    scores = cross_camera_idf1(tune, gt, {"chosen": (tracks, embeddings, threshold),
                                          "no-hand-over": (tracks, embeddings, 0.0)}, tmp_path / "check")
    assert scores["chosen"] == 100 > scores["no-hand-over"]


def test_tune_data_sharing_a_scene_with_the_scored_data_is_refused(video, tmp_path):
    result = _cli("track-bench", "--data", video, "--tune-data", video, "-o", tmp_path / "out", "-q")
    assert result.returncode == 2 and "shares synth2" in result.stderr and "another seed" in result.stderr


def test_track_bench_runs_onnxruntime_fp32_and_int8_against_none(video, tune_video, tiny_onnx, tiny_market, tmp_path):
    from reid_export.export.precision import calibration_images, quantize_int8
    from reid_export.export.settings import Int8Settings

    int8 = quantize_int8(tiny_onnx, tmp_path / "tiny.int8.onnx", calibration_images(tiny_market, 16), Int8Settings(),
                         progress=False)
    out = tmp_path / "report"
    result = _cli("track-bench", "--data", video, "--model", tiny_onnx, "--model", f"onnxruntime={int8}",
                  "--tracker", "botsort", "--tune-data", tune_video, "-o", out, "-q")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    rows = {(r["runtime"], r["precision"]): r for r in report["rows"]}
    assert set(rows) == {("none", "-"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")}
    for row in rows.values():
        assert row["status"] == "ok" and row["tracker"] == "botsort"
        assert 0 < row["HOTA"] <= 100 and 0 < row["IDF1"] <= 100 and 0 < row["xcam_IDF1"] <= 100
        assert row["tracker_ms_per_frame"] > 0
    assert rows[("onnxruntime", "int8")]["reid_ms_per_frame"] > 0
    assert rows[("onnxruntime", "int8")]["handover_threshold"] in THRESHOLDS  # chosen on the tune sequences
    assert report["tune_sequences"] == ["synth3-c1", "synth3-c2"]
    assert "IDF1_over_none" in rows[("onnxruntime", "fp32")]
    assert (out / "idf1_vs_reid_ms.png").stat().st_size > 0 and "| botsort |" in (out / "report.md").read_text()
    assert (out / "tracks").is_dir() and "IDF1" in result.stdout
    again = _cli("track-bench", "--data", video, "-o", out, "-q")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_an_unknown_tracker_is_refused_naming_the_choices(video, tmp_path):
    result = _cli("track-bench", "--data", video, "--tracker", "sort", "-o", tmp_path)
    assert result.returncode == 2 and "botsort, deepocsort" in result.stderr


def _shuffled_per_frame(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The ids of each frame's boxes dealt out again at random among those boxes."""
    ids = gt[:, 1].copy()
    for frame in np.unique(gt[:, 0]):
        here = np.flatnonzero(gt[:, 0] == frame)
        ids[here] = rng.permutation(ids[here])
    return ids


def _cli(*args):
    """The real entry point, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "reid_export.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_embedding_option_reaches_the_checkpoint_row(video, tiny_checkpoint, tmp_path):
    """`--embedding pooled` makes the torch row embed with the pooled feature: it tracks exactly as an ONNX export
    of that embedding, and unlike one of the BNNeck output (the tiny model's default)."""
    from reid_export.checkpoint import load_model
    from reid_export.export.onnx import export_onnx
    from reid_export.models import with_embedding

    model = load_model(tiny_checkpoint)
    assert model.config.embedding != "pooled"  # else the option would change nothing here
    pooled = export_onnx(with_embedding(model, "pooled"), tmp_path / "pooled.onnx")
    out = tmp_path / "report"
    result = _cli("track-bench", "--data", video, "--model", tiny_checkpoint, "--model", pooled, "--embedding", "pooled",
                  "--tracker", "deepocsort", "--handover-threshold", "0.3", "-o", out, "-q")
    assert result.returncode == 0, result.stderr
    rows = {r["runtime"]: r for r in json.loads((out / "report.json").read_text())["rows"]}
    for key in ("HOTA", "IDF1", "IDSW", "xcam_IDF1"):
        assert rows["torch"][key] == pytest.approx(rows["onnxruntime"][key], abs=1e-6), key
