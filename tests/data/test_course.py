"""The course layout: names, the attribute CSV, the validation split and the submission files."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
from PIL import Image

from reid_export.data.attributes import ATTRIBUTE_CODES, ATTRIBUTE_NAMES, LOWER_COLOURS, UPPER_COLOURS
from reid_export.data.course import (
    CourseData,
    course_validation_split,
    load_course,
    parse_course_name,
    write_attribute_predictions,
    write_reid_ranking,
)
from reid_export.data.market1501 import Sample
from reid_export.errors import DataError

# pid -> cameras of its train images
TRAIN = {474: [5, 5, 2], 475: [1, 3], 476: [1, 1, 4, 6], 10: [2, 2]}


def _codes(pid: int) -> dict[str, int]:
    rng = np.random.default_rng(pid)
    codes = {name: int(rng.choice(list(ATTRIBUTE_CODES[name]))) for name in ATTRIBUTE_NAMES}
    codes.update({c: 1 for c in UPPER_COLOURS + LOWER_COLOURS})
    codes[UPPER_COLOURS[pid % 8]] = codes[LOWER_COLOURS[pid % 9]] = 2
    return codes


def _image(path):
    Image.new("RGB", (8, 16), (120, 30, 60)).save(path, format="JPEG")


def _write_csv(path, rows, header=None):
    header = header or ["id"] + list(ATTRIBUTE_NAMES[::-1])  # not the canonical order
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _row(pid, header=None, **override):
    header = header or ["id"] + list(ATTRIBUTE_NAMES[::-1])
    values = {"id": f"{pid:04d}", **_codes(pid), **override}
    return [values[h] for h in header]


@pytest.fixture
def course(tmp_path):
    root = tmp_path / "course"
    for folder in ("train", "test", "queries"):
        (root / folder).mkdir(parents=True)
    for pid, cams in TRAIN.items():
        for k, cam in enumerate(cams):
            _image(root / "train" / f"{pid:04d}_c{cam}_{k:09d}.jpg")
    for i in range(5):
        _image(root / "test" / f"{i:06d}.jpg")
    for i in (3, 1):
        _image(root / "queries" / f"{i:06d}.jpg")
    _write_csv(root / "annotations_train.csv", [_row(pid) for pid in TRAIN])
    return root


def _load(root, **kwargs):
    return load_course(root, progress=False, **kwargs)


def test_parse_course_name():
    assert parse_course_name("0474_c5_013563167.jpg") == (474, 5)
    assert parse_course_name("some/folder/0001_c1_000000001.JPG") == (1, 1)
    assert parse_course_name("0474_c5_013563167") == (474, 5)
    for odd in ("0002_c1s1_000451_03.jpg", "474_c5_013563167.jpg", "0474_c0_013563167.jpg",
                "0474_c5_01356316.jpg", "000123.jpg", "0474_c5_013563167.txt"):
        assert parse_course_name(odd) is None, odd


def test_load_reads_folders_and_the_csv_by_header_name(course):
    _image(course / "train" / "notes.jpg")
    _image(course / "test" / "._000001.jpg")  # macOS resource fork, not an image
    with pytest.warns(UserWarning, match=r"Skipped 1 file\(s\) .*notes\.jpg"):
        data = _load(course)
    assert isinstance(data, CourseData) and data.root == course.resolve()
    assert data.train_pids == [10, 474, 475, 476]
    assert len(data.train) == 11 and all(isinstance(s, Sample) for s in data.train)
    assert data.train[0] == Sample(course.resolve() / "train" / "0010_c2_000000000.jpg", 10, 2)
    assert [p.name for p in data.test] == [f"{i:06d}.jpg" for i in range(5)]
    assert [p.name for p in data.queries] == ["000001.jpg", "000003.jpg"]
    assert data.attributes == {pid: _codes(pid) for pid in TRAIN}
    assert data.unlabelled_pids == [] and [p.name for p in data.skipped] == ["notes.jpg"]
    assert "train 11 images of 4 ids" in data.summary()


def test_train_ids_without_a_csv_row_warn_and_still_train(course):
    _write_csv(course / "annotations_train.csv", [_row(474), _row(476), _row(9999)])
    with pytest.warns(UserWarning, match=r"2 of 4 train ids \(4 images\) have no row.*0010, 0475"):
        data = _load(course)
    assert data.unlabelled_pids == [10, 475]
    assert {s.pid for s in data.train} == {10, 474, 475, 476}


def test_missing_folders_are_named_with_the_expected_tree(course):
    (course / "queries" / "000001.jpg").unlink()
    (course / "queries" / "000003.jpg").unlink()
    (course / "queries").rmdir()
    (course / "annotations_train.csv").unlink()
    with pytest.raises(DataError, match="missing annotations_train.csv, queries") as info:
        _load(course)
    text = str(info.value)
    assert "├── queries/" in text and "<- missing" in text and "Found: test/, train/" in text
    with pytest.raises(DataError, match="not found"):
        _load(course / "nowhere")


def test_empty_image_folder_is_refused(course):
    for path in (course / "test").iterdir():
        path.unlink()
    with pytest.raises(DataError, match=r"test holds no usable images"):
        _load(course)


def test_official_attribute_file_is_refused_because_the_ids_do_not_match(course, tmp_path):
    mat = tmp_path / "market_attribute.mat"
    mat.write_bytes(b"")
    with pytest.raises(DataError, match="ids in the official market_attribute.mat do not match the course ids"):
        _load(course, annotations=mat)
    (course / "market_attribute.mat").write_bytes(b"")
    with pytest.warns(UserWarning, match="Ignoring .*market_attribute.mat: its ids are the official"):
        _load(course)


def test_annotations_can_be_given_explicitly(course, tmp_path):
    other = tmp_path / "labels.csv"
    header = ["id"] + list(ATTRIBUTE_NAMES)
    _write_csv(other, [_row(pid, header=header) for pid in TRAIN], header=header)
    (course / "annotations_train.csv").unlink()
    assert _load(course, annotations=other).attributes == {pid: _codes(pid) for pid in TRAIN}
    with pytest.raises(DataError, match="missing.csv not found"):
        _load(course, annotations=tmp_path / "missing.csv")


@pytest.mark.parametrize(
    "header, rows, message",
    [
        (list(ATTRIBUTE_NAMES), None, r"lacks column\(s\) id;"),
        (["id"] + [n for n in ATTRIBUTE_NAMES if n != "bag"], None, r"lacks column\(s\) bag;"),
        (None, [_row(474), _row(475, age="old")], r"row 2 \(line 3\), column 'age': expected an integer, found 'old'"),
        (None, [_row(474, hat=3)], r"row 1 \(line 2\), column 'hat': value 3 is out of range; expected one of 1, 2"),
        (None, [_row(474), _row(474), _row(10), _row(10)], r"2 duplicate id\(s\): 0474 on lines 2, 3; 0010 on lines 4, 5"),
        (None, [_row(474)[:-1]], r"row 1 \(line 2\) has 27 fields; expected 28"),
        (None, [_row(474, id="ab")], r"row 1 \(line 2\), column 'id': expected an integer, found 'ab'"),
    ],
)
def test_bad_csv_is_refused_with_row_and_column(course, header, rows, message):
    header = header or ["id"] + list(ATTRIBUTE_NAMES[::-1])
    rows = rows if rows is not None else [_row(474, header=header)]
    _write_csv(course / "annotations_train.csv", rows, header=header)
    with pytest.raises(DataError, match=message):
        _load(course, verify_images=False)


def test_float_written_codes_and_blank_lines_are_read(course):
    rows = [_row(474, age="3.0"), [], _row(475)]
    _write_csv(course / "annotations_train.csv", rows)
    with pytest.warns(UserWarning, match="have no row"):
        data = _load(course)
    assert data.attributes[474]["age"] == 3 and set(data.attributes) == {474, 475}


def test_corrupt_image_is_reported(course):
    (course / "test" / "000002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="000002.jpg"):
        _load(course)


# -- validation split ------------------------------------------------------------------------


def _data(num_ids: int, seed: int = 0) -> CourseData:
    rng = np.random.default_rng(seed)
    train = []
    for pid in range(1, num_ids + 1):
        cams = rng.integers(1, 7, int(rng.integers(1, 6)))
        train += [Sample(f"train/{pid:04d}_c{c}_{k:09d}.jpg", pid, int(c)) for k, c in enumerate(cams)]
    return CourseData(root=None, train=train, test=[], queries=[], attributes={},
                      train_pids=sorted({s.pid for s in train}))


def test_validation_split_holds_out_the_last_ids():
    data = _data(30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ids with a single image
        train, query, gallery = course_validation_split(data, num_ids=10, seed=0)
    held = set(data.train_pids[-10:])
    assert {s.pid for s in train} == set(data.train_pids[:-10])
    assert [s.pid for s in query] == sorted(held)  # one query per held-out id, in pid order
    assert {s.pid for s in gallery} <= held
    assert sorted(train + query + gallery, key=str) == sorted(data.train, key=str)  # nothing lost or doubled
    by_pid = {pid: [s for s in data.train if s.pid == pid] for pid in held}
    for q in query:
        others = [s for s in by_pid[q.pid] if s is not q]
        assert [s for s in gallery if s.pid == q.pid] == others
        if any(a.camid != b.camid for a in by_pid[q.pid] for b in by_pid[q.pid]):
            assert any(s.camid != q.camid for s in others), "a query with a cross-camera match exists"


def test_validation_split_is_seeded():
    data = _data(60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = course_validation_split(data, num_ids=40, seed=1)
        again = course_validation_split(data, num_ids=40, seed=1)
        other = course_validation_split(data, num_ids=40, seed=2)
    assert first == again
    assert first[1] != other[1]


def test_validation_split_warns_about_single_image_ids():
    data = _data(4)
    data.train.append(Sample("train/0005_c1_000000000.jpg", 5, 1))
    data.train_pids.append(5)
    with pytest.warns(UserWarning, match=r"1 held-out id\(s\) have a single image.*0005"):
        _, query, gallery = course_validation_split(data, num_ids=1)
    assert [s.pid for s in query] == [5] and gallery == []


def test_validation_split_needs_enough_ids():
    with pytest.raises(DataError, match="needs at least 102 train ids .*found 101. Fix: pass a smaller num_ids"):
        course_validation_split(_data(101))
    with pytest.raises(DataError, match="num_ids must be a positive integer"):
        course_validation_split(_data(10), num_ids=0)


# -- submission files --------------------------------------------------------------------------


def test_reid_ranking_file_format(tmp_path):
    path = write_reid_ranking(
        tmp_path / "out" / "reid_test.txt",
        ["queries/000001.jpg", "000003.jpg"],
        [["test/000004.jpg", "000002.jpg", "000000.jpg"], ["000001.jpg"]],
        top_k=2,
    )
    assert path.read_text() == "000001.jpg: 000004.jpg, 000002.jpg\n000003.jpg: 000001.jpg\n"


def test_reid_ranking_default_keeps_the_top_100(tmp_path):
    gallery = [f"{i:06d}.jpg" for i in range(150)]
    text = write_reid_ranking(tmp_path / "r.txt", ["q.jpg"], [gallery]).read_text()
    assert text == "q.jpg: " + ", ".join(gallery[:100]) + "\n"


@pytest.mark.parametrize(
    "queries, rankings, top_k, message",
    [
        (["a.jpg"], [], 100, "1 query names and 0 rankings"),
        (["a.jpg"], [[]], 100, "ranking of query a.jpg is empty"),
        (["a.jpg"], [["b.jpg", "x/b.jpg"]], 100, "names a gallery image twice"),
        (["a.jpg"], [["b.jpg"]], 0, "top_k must be a positive integer"),
    ],
)
def test_reid_ranking_rejects_bad_input(tmp_path, queries, rankings, top_k, message):
    with pytest.raises(DataError, match=message):
        write_reid_ranking(tmp_path / "r.txt", queries, rankings, top_k=top_k)


def test_attribute_predictions_file_format(tmp_path):
    first, second = _codes(1), _codes(2)
    path = write_attribute_predictions(tmp_path / "classification_test.csv", ["test/000000.jpg", "000001.jpg"],
                                       [first, second])
    expected = (
        "id," + ",".join(ATTRIBUTE_NAMES) + "\n"
        + "000000.jpg," + ",".join(str(first[n]) for n in ATTRIBUTE_NAMES) + "\n"
        + "000001.jpg," + ",".join(str(second[n]) for n in ATTRIBUTE_NAMES) + "\n"
    )
    assert path.read_text() == expected
    assert expected.splitlines()[0].startswith("id,gender,hair,up,down,clothes,hat,backpack,bag,handbag,age,upblack")


def test_attribute_predictions_reject_bad_codes(tmp_path):
    with pytest.raises(DataError, match="1 names and 2 code dicts"):
        write_attribute_predictions(tmp_path / "c.csv", ["a.jpg"], [_codes(1), _codes(2)])
    with pytest.raises(DataError, match="prediction for a.jpg: attribute 'age' has code 0"):
        write_attribute_predictions(tmp_path / "c.csv", ["a.jpg"], [{**_codes(1), "age": 0}])
