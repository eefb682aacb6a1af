"""synth-video: the rendered ground truth is consistent, the hard moments happen (groups, re-entries, look-alikes),
detections are as noisy as configured, MOT files read back."""

from __future__ import annotations

import numpy as np
import pytest

from reid_export.data.mot import find_sequences, read_rows, write_rows
from reid_export.data.synthetic import video
from reid_export.data.synthetic.video import DetectionNoise, VideoSettings, generate_sequences, make_detections
from reid_export.errors import DataError

SMALL = VideoSettings(cameras=2, frames=300, people=6, width=320, height=180)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    generate_sequences(root, SMALL, seed=1, progress=False)
    return root


def test_sequences_are_written_in_the_motchallenge_layout(rendered):
    sequences = find_sequences(rendered)
    assert [s.name for s in sequences] == ["synth1-c1", "synth1-c2"]
    for s in sequences:
        assert (s.length, s.width, s.height, s.scene) == (300, 320, 180, "synth1")
        assert len(list((s.root / "img1").glob("*.jpg"))) == 300
        assert s.read_frame(300).shape == (180, 320, 3)
        assert s.ground_truth().shape[1] == 9 and s.detections().shape[1] == 10


def test_ground_truth_boxes_lie_inside_the_frames(rendered):
    for s in find_sequences(rendered):
        gt = s.ground_truth()
        assert len(gt) > 100
        x, y, w, h = gt[:, 2], gt[:, 3], gt[:, 4], gt[:, 5]
        assert (x >= 0).all() and (y >= 0).all() and (w >= 2).all() and (h >= 2).all()
        assert (x + w <= s.width).all() and (y + h <= s.height).all()
        assert ((gt[:, 8] >= 0) & (gt[:, 8] <= 1)).all() and (gt[:, 6] == 1).all() and (gt[:, 7] == 1).all()
        assert (gt[:, 8] < 0.5).any(), "people never hide each other"


def test_ids_are_continuous_while_in_view_and_come_back_after_a_long_gap(rendered):
    came_back = 0
    for s in find_sequences(rendered):
        gt = s.ground_truth()
        for pid in np.unique(gt[:, 1]):
            mine = gt[gt[:, 1] == pid]
            frames = mine[:, 0]
            assert len(np.unique(frames)) == len(frames)  # one box per id per frame
            breaks = np.flatnonzero(np.diff(frames) > 1)
            short = breaks[np.diff(frames)[breaks] <= SMALL.gap[0] * SMALL.fps]
            at_edge = (mine[:, 2] <= 0) | (mine[:, 2] + mine[:, 4] >= s.width)
            assert at_edge[short].all() and at_edge[short + 1].all()  # a sliver at the edge may blink out
            came_back += len(breaks) - len(short)  # the others: away longer than a tracker remembers
            centre = mine[:, 2] + mine[:, 4] / 2
            step = np.abs(np.diff(centre))[np.diff(frames) == 1]
            assert step.max() < 0.1 * s.width  # walks, never jumps, while in view
    assert came_back >= 1


def test_people_come_back_after_longer_than_a_tracker_remembers(rendered):
    gaps = []
    for s in find_sequences(rendered):
        gt = s.ground_truth()
        for pid in np.unique(gt[:, 1]):
            gaps += list(np.diff(gt[gt[:, 1] == pid, 0]))
    assert max(gaps) >= 45  # BoT-SORT at 25 fps forgets a lost track after 25 frames, DeepOCSORT after 30


def test_some_people_walk_together_for_a_second_or_more(rendered):
    """A group or an overtake: two people side by side, a body width or less apart, moving the same way."""
    longest = 0
    for s in find_sequences(rendered):
        gt = s.ground_truth()
        by_id = {pid: {int(r[0]): r for r in gt[gt[:, 1] == pid]} for pid in np.unique(gt[:, 1])}
        ids = sorted(by_id)
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                run = 0
                for f in range(5, s.length + 1):
                    ra, rb, pa, pb = (by_id[p].get(g) for p, g in ((a, f), (b, f), (a, f - 4), (b, f - 4)))
                    if any(r is None for r in (ra, rb, pa, pb)):
                        run = 0
                        continue
                    centre = [r[2] + r[4] / 2 for r in (ra, rb, pa, pb)]
                    moves = (centre[0] - centre[2]) * (centre[1] - centre[3]) > 0  # the same way over 4 frames
                    close = abs(centre[0] - centre[1]) < 0.5 * max(ra[5], rb[5])
                    run = run + 1 if moves and close and abs(ra[3] + ra[5] - rb[3] - rb[5]) < 0.06 * s.height else 0
                    longest = max(longest, run)
    assert longest >= 25


def test_lookalikes_wear_another_persons_outfit_but_stay_other_people():
    people = video._people(VideoSettings(people=8, lookalikes=1.0), seed=3)
    for pid in range(2, 9):
        me = people[pid]
        twin = [p for q, p in people.items() if q < pid and (p.upper, p.lower) == (me.upper, me.lower)]
        assert twin and all(p != me for p in twin)


def test_cameras_share_identities_and_differ_in_look(rendered):
    c1, c2 = find_sequences(rendered)
    shared = set(c1.ground_truth()[:, 1]) & set(c2.ground_truth()[:, 1])
    assert len(shared) >= 2
    assert abs(c1.read_frame(1).astype(float).mean(axis=(0, 1)) - c2.read_frame(1).astype(float).mean(axis=(0, 1))).max() > 3


def test_the_same_seed_gives_the_same_bytes(tmp_path):
    tiny = VideoSettings(cameras=1, frames=12, people=3, width=200, height=140)
    for run in ("a", "b"):
        generate_sequences(tmp_path / run, tiny, seed=5, progress=False)
    for name in ("gt/gt.txt", "det/det.txt", "img1/000012.jpg"):
        assert (tmp_path / "a" / "synth5-c1" / name).read_bytes() == (tmp_path / "b" / "synth5-c1" / name).read_bytes()


def test_a_folder_holding_a_sequence_is_refused(rendered):
    with pytest.raises(DataError, match="already holds files"):
        generate_sequences(rendered, SMALL, seed=1, progress=False)


def _gt(n: int, visibility: float | np.ndarray = 1.0) -> np.ndarray:
    """n ground-truth rows, 4 per frame, 40 x 100 boxes."""
    frames = np.arange(n) // 4 + 1
    return np.column_stack([frames, np.arange(n) % 4 + 1, np.full(n, 100.0), np.full(n, 50.0), np.full(n, 40.0),
                            np.full(n, 100.0), np.ones(n), np.ones(n), np.broadcast_to(visibility, (n,))])


def _detect(gt, **noise):
    return make_detections(gt, DetectionNoise(**{"jitter": 0, "miss": 0, "occluded_miss": 0, "min_visibility": 0,
                                                 "false_positives": 0, "near": 0, **noise}),
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


def test_misses_start_a_few_frames_before_an_occlusion():
    frames = np.arange(1, 21)
    gt = np.concatenate([np.column_stack([frames, np.full(20, pid), np.full(20, 100.0), np.full(20, 50.0),
                                          np.full(20, 40.0), np.full(20, 100.0), np.ones(20), np.ones(20),
                                          np.where(frames == 10, 0.0, 1.0)]) for pid in (1, 2)])
    gt = gt[np.argsort(gt[:, 0], kind="stable")]
    seen = set(_detect(gt, min_visibility=0.3, near=3)[:, 0].astype(int))
    assert seen == set(range(1, 7)) | set(range(14, 21))  # frames 7-13 are within 3 of the hidden frame 10
    assert set(_detect(gt, min_visibility=0.3, near=0)[:, 0].astype(int)) == set(frames) - {10}


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


def test_user_detections_are_found_by_pattern(rendered, tmp_path):
    seq = find_sequences(rendered, "*c2")[0]
    assert seq.det_path() == seq.root / "det" / "det.txt"
    assert seq.det_path(str(tmp_path / "{seq}.txt")) == tmp_path / "synth1-c2.txt"
    with pytest.raises(DataError, match="no detections for sequence synth1-c2"):
        seq.detections(str(tmp_path / "{seq}.txt"))
    with pytest.raises(DataError, match="no sequence named"):
        find_sequences(rendered, "MOT17*")
