"""The synthetic Market-1501 generator: layout, names, determinism, protocol and difficulty."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid_export.data.attributes import ATTRIBUTE_CODES, ATTRIBUTE_NAMES, LOWER_COLOURS, UPPER_COLOURS
from reid_export.data.synthetic import SPLIT_FOLDERS, generate_market1501
from reid_export.errors import DataError

NAME = re.compile(r"^(-1|\d{4})_c([1-6])s([1-6])_(\d{6})_(\d{2})\.jpg$")
TINY = dict(train_ids=6, test_ids=5, distractors=10, junk=6, seed=3, progress=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return generate_market1501(root, **TINY)


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    """40 test ids with distractors and junk: enough for colour statistics."""
    root = tmp_path_factory.mktemp("medium")
    return generate_market1501(root, train_ids=4, test_ids=40, distractors=120, junk=40, seed=0, progress=False)


def test_layout_and_names_follow_market1501(tiny):
    names = []
    for split, folder in SPLIT_FOLDERS.items():
        files = sorted((tiny.out_dir / folder).iterdir())
        assert len(files) == tiny.counts[split]["images"] > 0
        for path in files:
            assert NAME.match(path.name), f"{path.name} is not a Market-1501 file name"
            names.append(path.name)
        with Image.open(files[0]) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (64, 128))
    assert len(names) == len(set(names)), "file names must be unique across the three folders"
    assert sorted(p.name for p in tiny.out_dir.iterdir()) == sorted([*SPLIT_FOLDERS.values(), "market_attribute.mat"])


def test_same_seed_writes_the_same_bytes_and_another_seed_does_not(tiny, tmp_path):
    again = generate_market1501(tmp_path / "again", **TINY)
    other = generate_market1501(tmp_path / "other", **{**TINY, "seed": 4})
    first, second, third = _read_all(tiny.out_dir), _read_all(again.out_dir), _read_all(other.out_dir)
    assert first == second
    assert again.attributes == tiny.attributes
    shared = first.keys() & third.keys()
    assert sum(first[name] == third[name] for name in shared) < 0.1 * len(first)
    assert other.attributes != tiny.attributes


def test_a_persons_boxes_do_not_depend_on_the_rest_of_the_set(tiny, tmp_path):
    smaller = generate_market1501(tmp_path, **{**TINY, "test_ids": 3, "distractors": 4, "junk": 0})
    full, part = _read_all(tiny.out_dir), _read_all(smaller.out_dir)
    assert part.keys() <= full.keys()
    assert all(full[name] == data for name, data in part.items())


def test_train_and_test_ids_are_disjoint_and_numbered_from_one(tiny):
    pids = {split: set(_pids(tiny.out_dir / folder)) for split, folder in SPLIT_FOLDERS.items()}
    assert pids["train"] == set(range(1, 7))
    assert pids["query"] == set(range(7, 12))
    assert pids["gallery"] - {0, -1} == pids["query"]
    assert not pids["train"] & pids["query"]
    assert set(tiny.attributes) == set(range(1, 12))
    assert tiny.counts["train"]["ids"] == 6 and tiny.counts["query"]["ids"] == tiny.counts["gallery"]["ids"] == 5


def test_one_query_per_camera_and_each_has_a_match_on_another_camera(medium):
    query = Counter(_parse(p.name)[:2] for p in (medium.out_dir / "query").iterdir())
    gallery = Counter(_parse(p.name)[:2] for p in (medium.out_dir / "bounding_box_test").iterdir())
    assert set(query.values()) == {1}, "exactly one query per (pid, camera)"
    for pid, cam in query:
        assert any(p == pid and c != cam for p, c in gallery), f"query {pid} c{cam} has no match on another camera"
    cameras = defaultdict(set)
    for pid, cam in gallery:
        if pid > 0:
            cameras[pid].add(cam)
    assert all(2 <= len(cams) <= 6 for cams in cameras.values())
    assert {(p, c) for p, c in gallery if p > 0} == set(query), "queries come from the cameras that see the id"
    per_id = Counter(p for p, c in gallery.elements() if p > 0)
    assert all(10 <= n <= 15 for n in per_id.values())


def test_distractors_and_junk_are_in_the_gallery_only(tiny):
    found = {split: Counter(_pids(tiny.out_dir / folder)) for split, folder in SPLIT_FOLDERS.items()}
    assert found["gallery"][0] == tiny.distractors == 10
    assert found["gallery"][-1] == tiny.junk == 6
    for split in ("train", "query"):
        assert found[split][0] == found[split][-1] == 0


def test_refuses_a_folder_that_already_holds_data(tmp_path):
    (tmp_path / "query").mkdir()
    mine = tmp_path / "query" / "0001_c1s1_000001_01.jpg"
    mine.write_bytes(b"user data")
    with pytest.raises(DataError, match="query.*(empty|delete)"):
        generate_market1501(tmp_path, **TINY)
    assert mine.read_bytes() == b"user data"
    assert not (tmp_path / "bounding_box_train").exists()


def test_empty_split_folders_are_fine_and_progress_can_be_silenced(tmp_path, capsys):
    for folder in SPLIT_FOLDERS.values():
        (tmp_path / folder).mkdir()
    summary = generate_market1501(
        tmp_path, train_ids=1, test_ids=1, distractors=0, junk=0, train_images=(2, 2),
        gallery_images=(2, 2), cameras_per_id=(2, 2), progress=False,
    )
    assert summary.total_images == 2 + 2 + 2
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(
    "bad", [{"train_ids": 0}, {"test_ids": 9999}, {"cameras_per_id": (1, 3)}, {"gallery_images": (1, 4)}, {"seed": -1}]
)
def test_impossible_sizes_are_refused(tmp_path, bad):
    with pytest.raises(DataError):
        generate_market1501(tmp_path, **{**TINY, **bad})


def test_attribute_vocabulary_and_codes(medium):
    assert len(ATTRIBUTE_NAMES) == len(set(ATTRIBUTE_NAMES)) == 27
    head = ("gender", "hair", "up", "down", "clothes", "hat", "backpack", "bag", "handbag", "age")
    assert ATTRIBUTE_NAMES[:10] == head
    assert ATTRIBUTE_NAMES[10:] == UPPER_COLOURS + LOWER_COLOURS
    assert (len(UPPER_COLOURS), len(LOWER_COLOURS)) == (8, 9)
    assert ATTRIBUTE_CODES["age"].keys() == {1, 2, 3, 4}
    for pid, codes in medium.attributes.items():
        assert tuple(codes) == ATTRIBUTE_NAMES
        assert all(codes[name] in ATTRIBUTE_CODES[name] for name in ATTRIBUTE_NAMES), pid
        assert sum(codes[c] == 2 for c in UPPER_COLOURS) == 1 and sum(codes[c] == 2 for c in LOWER_COLOURS) == 1
    uppers = Counter(next(c for c in UPPER_COLOURS if codes[c] == 2) for codes in medium.attributes.values())
    assert max(uppers.values()) >= 4, "upper colours are shared by several people"


def test_rendered_colours_follow_the_attributes(medium):
    """Median colour of the chest (above the hips) and of the thighs, per person, by colour attribute."""
    chest, thighs = defaultdict(list), defaultdict(list)
    for folder in ("query", "bounding_box_test"):
        for path in (medium.out_dir / folder).iterdir():
            pid = _parse(path.name)[0]
            if pid > 0:
                pixels = np.asarray(Image.open(path), dtype=np.float32)
                chest[pid].append(pixels[40:52, 26:38].mean(axis=(0, 1)))
                thighs[pid].append(pixels[72:80, 26:38].mean(axis=(0, 1)))

    def group(store, attribute, exclude=()):
        people = [
            p for p, a in medium.attributes.items()
            if a[attribute] == 2 and p in store and all(a[e] == 1 for e in exclude)
        ]
        assert people, f"the fixture needs someone with {attribute}; pick another seed"
        return np.mean([np.median(store[p], axis=0) for p in people], axis=0)

    red, blue = group(chest, "upred", ("backpack",)), group(chest, "upblue", ("backpack",))  # backpacks hide the chest
    assert (red[0] - red[2]) - (blue[0] - blue[2]) > 60, (red, blue)
    blue_legs, black_legs = group(thighs, "downblue"), group(thighs, "downblack")
    assert blue_legs[2] - black_legs[2] > 25 and blue_legs[2] - blue_legs[0] > 20, (blue_legs, black_legs)


def test_colour_alone_does_not_identify_people(medium):
    """A colour-histogram matcher on the centre of the box, after grey-world normalisation,
    matches query to gallery (Market protocol) far below what a CNN should reach."""
    query, gallery = _load(medium.out_dir / "query"), _load(medium.out_dir / "bounding_box_test")
    features = [_colour_histogram(images) for images, _, _ in (query, gallery)]
    scores = features[0] @ features[1].T
    (_, q_pid, q_cam), (_, g_pid, g_cam) = query, gallery
    hits = []
    for i in range(len(q_pid)):
        valid = (g_pid != -1) & ~((g_pid == q_pid[i]) & (g_cam == q_cam[i]))
        best = np.flatnonzero(valid)[np.argmax(scores[i, valid])]
        hits.append(g_pid[best] == q_pid[i])
    rank1 = float(np.mean(hits))
    assert 0.05 < rank1 < 0.40, f"colour-histogram rank-1 {rank1:.2f}"  # measured 0.18 (seeds 0-2: 0.18-0.24)


def _parse(name: str) -> tuple[int, int]:
    match = NAME.match(name)
    assert match, name
    return int(match[1]), int(match[2])


def _pids(folder: Path) -> list[int]:
    return [_parse(p.name)[0] for p in folder.iterdir()]


def _read_all(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for folder in SPLIT_FOLDERS.values() for p in (root / folder).iterdir()}


def _load(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    paths = sorted(folder.iterdir())
    images = np.stack([np.asarray(Image.open(p)) for p in paths])
    pids, cams = zip(*(_parse(p.name) for p in paths))
    return images, np.array(pids), np.array(cams)


def _colour_histogram(images: np.ndarray, bins: int = 8) -> np.ndarray:
    centre = images[:, 8:120, 12:52].astype(np.float32)
    centre = centre / centre.mean(axis=(1, 2), keepdims=True) * 110  # grey world: undo the camera cast
    q = np.clip(centre / 256 * bins, 0, bins - 1).astype(np.int64)
    index = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    hist = np.stack([np.bincount(i.ravel(), minlength=bins**3) for i in index]).astype(np.float32)
    return np.sqrt(hist / hist.sum(axis=1, keepdims=True))  # Hellinger: dot product of square roots
