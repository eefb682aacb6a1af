"""synth-video: the rendered ground truth is consistent, detections are as noisy as configured, MOT files read back."""

from __future__ import annotations

import numpy as np
import pytest

from reid_export.data.mot import find_sequences, read_rows, write_rows
from reid_export.data.synthetic.video import DetectionNoise, VideoSettings, generate_sequences, make_detections
from reid_export.errors import DataError

SMALL = VideoSettings(cameras=2, frames=300, people=6, width=320, height=180)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    generate_sequences(root, SMALL, seed=1, progress=False)
    return root


def test_sequences_are_written_in_the_motchallenge_layout(video):
    sequences = find_sequences(video)
    assert [s.name for s in sequences] == ["synth1-c1", "synth1-c2"]
    for s in sequences:
        assert (s.length, s.width, s.height, s.scene) == (300, 320, 180, "synth1")
        assert len(list((s.root / "img1").glob("*.jpg"))) == 300
        assert s.read_frame(300).shape == (180, 320, 3)
        assert s.ground_truth().shape[1] == 9 and s.detections().shape[1] == 10


def test_ground_truth_boxes_lie_inside_the_frames(video):
    for s in find_sequences(video):
        gt = s.ground_truth()
        assert len(gt) > 100
        x, y, w, h = gt[:, 2], gt[:, 3], gt[:, 4], gt[:, 5]
        assert (x >= 0).all() and (y >= 0).all() and (w >= 2).all() and (h >= 2).all()
        assert (x + w <= s.width).all() and (y + h <= s.height).all()
        assert ((gt[:, 8] >= 0) & (gt[:, 8] <= 1)).all() and (gt[:, 6] == 1).all() and (gt[:, 7] == 1).all()
        assert (gt[:, 8] < 0.5).any(), "people never hide each other"


def test_ids_are_continuous_while_in_view_and_come_back_after_a_long_gap(video):
    came_back = 0
    for s in find_sequences(video):
        gt = s.ground_truth()
        for pid in np.unique(gt[:, 1]):
            mine = gt[gt[:, 1] == pid]
            frames = mine[:, 0]
            assert len(np.unique(frames)) == len(frames)  # one box per id per frame
            breaks = np.flatnonzero(np.diff(frames) > 1)
            short = breaks[np.diff(frames)[breaks] <= SMALL.gap[0]]
            at_edge = (mine[:, 2] <= 0) | (mine[:, 2] + mine[:, 4] >= s.width)
            assert at_edge[short].all() and at_edge[short + 1].all()  # a sliver at the edge may blink out
            came_back += len(breaks) - len(short)  # the others: away longer than a tracker remembers
            centre = mine[:, 2] + mine[:, 4] / 2
            step = np.abs(np.diff(centre))[np.diff(frames) == 1]
            assert step.max() < 0.1 * s.width  # walks, never jumps, while in view
    assert came_back >= 1


def test_cameras_share_identities_and_differ_in_look(video):
    c1, c2 = find_sequences(video)
    shared = set(c1.ground_truth()[:, 1]) & set(c2.ground_truth()[:, 1])
    assert len(shared) >= 2
    assert abs(c1.read_frame(1).astype(float).mean(axis=(0, 1)) - c2.read_frame(1).astype(float).mean(axis=(0, 1))).max() > 3


def test_the_same_seed_gives_the_same_bytes(tmp_path):
    tiny = VideoSettings(cameras=1, frames=12, people=3, width=200, height=140)
    for run in ("a", "b"):
        generate_sequences(tmp_path / run, tiny, seed=5, progress=False)
    for name in ("gt/gt.txt", "det/det.txt", "img1/000012.jpg"):
        assert (tmp_path / "a" / "synth5-c1" / name).read_bytes() == (tmp_path / "b" / "synth5-c1" / name).read_bytes()


def test_a_folder_holding_a_sequence_is_refused(video):
    with pytest.raises(DataError, match="already holds files"):
        generate_sequences(video, SMALL, seed=1, progress=False)


def _gt(n: int, visibility: float | np.ndarray = 1.0) -> np.ndarray:
    """n ground-truth rows, 4 per frame, 40 x 100 boxes."""
    frames = np.arange(n) // 4 + 1
    return np.column_stack([frames, np.arange(n) % 4 + 1, np.full(n, 100.0), np.full(n, 50.0), np.full(n, 40.0),
                            np.full(n, 100.0), np.ones(n), np.ones(n), np.broadcast_to(visibility, (n,))])


def _detect(gt, **noise):
    return make_detections(gt, DetectionNoise(**{"jitter": 0, "miss": 0, "occluded_miss": 0, "min_visibility": 0,
                                                 "false_positives": 0, **noise}),
                           np.random.default_rng(0), width=640, height=360, frames=int(gt[-1, 0]))


def test_without_noise_the_detections_are_the_ground_truth():
    gt = _gt(400)
    dets = _detect(gt)
    np.testing.assert_allclose(dets[:, [0, 2, 3, 4, 5]], gt[:, [0, 2, 3, 4, 5]])
    assert (dets[:, 1] == -1).all() and (dets[:, 6] > 0.8).all()


def test_misses_follow_the_configured_rates():
    assert len(_detect(_gt(8000), miss=0.25)) == pytest.approx(6000, rel=0.05)
    half_hidden = _detect(_gt(8000, 0.5), occluded_miss=0.6)  # miss chance 0.6 * (1 - 0.5)
    assert len(half_hidden) == pytest.approx(8000 * 0.7, rel=0.05)
    assert len(_detect(_gt(400, 0.2), min_visibility=0.3)) == 0  # too hidden to be detected at all


def test_jitter_and_false_positives_follow_the_configured_amounts():
    gt = _gt(8000)
    dets = _detect(gt, jitter=0.05)
    assert np.std(dets[:, 2] - gt[:, 2]) / 40 == pytest.approx(0.05, rel=0.1)
    assert np.std(dets[:, 3] - gt[:, 3]) / 100 == pytest.approx(0.05, rel=0.1)
    with_false = _detect(gt, false_positives=0.5)
    assert len(with_false) - len(gt) == pytest.approx(0.5 * 2000, rel=0.15)
    assert (with_false[:, 2] >= 0).all() and (with_false[:, 2] + with_false[:, 4] <= 640.01).all()


def test_mot_rows_read_back_and_short_rows_are_padded(tmp_path):
    rows = _gt(8)
    write_rows(tmp_path / "gt.txt", rows)
    np.testing.assert_allclose(read_rows(tmp_path / "gt.txt", 9), rows)
    (tmp_path / "det.txt").write_text("2,-1,1.5,2,3,4,0.9\n1,-1,5,6,7,8,0.8\n")
    dets = read_rows(tmp_path / "det.txt", 10)
    assert dets.shape == (2, 10) and dets[0, 0] == 1 and (dets[:, 7:] == -1).all()
    (tmp_path / "bad.txt").write_text("1,2,3\n")
    with pytest.raises(DataError, match="bad.txt:1"):
        read_rows(tmp_path / "bad.txt", 10)


def test_user_detections_are_found_by_pattern(video, tmp_path):
    seq = find_sequences(video, "*c2")[0]
    assert seq.det_path() == seq.root / "det" / "det.txt"
    assert seq.det_path(str(tmp_path / "{seq}.txt")) == tmp_path / "synth1-c2.txt"
    with pytest.raises(DataError, match="no detections for sequence synth1-c2"):
        seq.detections(str(tmp_path / "{seq}.txt"))
    with pytest.raises(DataError, match="no sequence named"):
        find_sequences(video, "MOT17*")
