"""Market-1501 loader: file names, splits, relabelling, layout errors and image checks."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from reid_export.data.market1501 import Market1501, Sample, load_market1501, parse_name, verify_images
from reid_export.errors import DataError

TRAIN = ["0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c3s1_000101_01.jpg",
         "0010_c6s2_001234_02.jpg", "-1_c1s1_000401_03.jpg", "0000_c2s1_000011_01.jpg"]
QUERY = ["0007_c1s1_000201_00.jpg", "0010_c2s1_000301_00.jpg"]
GALLERY = ["0007_c4s1_000501_01.jpg", "0010_c5s1_000601_01.jpg",
           "-1_c1s1_000001_01.jpg", "0000_c3s1_000002_02.jpg"]


def _jpeg_bytes(size: tuple[int, int] = (8, 16), noise: bool = False) -> bytes:
    if noise:
        image = Image.frombytes("RGB", size, random.Random(0).randbytes(size[0] * size[1] * 3))
    else:
        image = Image.new("RGB", size, (120, 30, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _write(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = _jpeg_bytes()
    for name in names:
        (folder / name).write_bytes(data)


@pytest.fixture
def market(tmp_path: Path) -> Path:
    root = tmp_path / "market"
    _write(root / "bounding_box_train", TRAIN)
    _write(root / "query", QUERY)
    _write(root / "bounding_box_test", GALLERY)
    (root / "gt_bbox").mkdir()  # present in the official set, ignored
    return root


def _load(root: Path, **kwargs) -> Market1501:
    return load_market1501(root, progress=False, **kwargs)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("0002_c1s1_000451_03.jpg", (2, 1)),
        ("-1_c1s1_000401_03.jpg", (-1, 1)),
        ("0000_c6s2_000011_01.jpg", (0, 6)),
        ("1501_c9s6_123456_99.png", (1501, 9)),
        ("0002_c1s1_000451_03.JPEG", (2, 1)),
        ("0002_c1s1_000451_03", (2, 1)),
        ("/data/market/query/0002_c3s1_000451_03.jpg", (2, 3)),
        ("0002_c0s1_000451_03.jpg", None),  # camera 0 does not exist
        ("0001_c2_f0046182.jpg", None),  # DukeMTMC-reID pattern
        ("-2_c1s1_000401_03.jpg", None),
        ("abcd_c1s1_000451_03.jpg", None),
        ("0002_c1s1_000451_03.txt", None),
        ("Thumbs.db", None),
        ("", None),
    ],
)
def test_parse_name(name: str, expected: tuple[int, int] | None) -> None:
    assert parse_name(name) == expected


def test_train_pids_are_relabelled_in_sorted_order(market: Path) -> None:
    data = _load(market)
    assert data.train_pids == [2, 7, 10]
    assert data.num_train_ids == 3
    assert [data.label(pid) for pid in (2, 7, 10)] == [0, 1, 2]


def test_label_of_a_non_train_pid_is_a_data_error(market: Path) -> None:
    data = _load(market)
    with pytest.raises(DataError, match=r"Person id 99 is not a training identity.*2\.\.10"):
        data.label(99)


def test_camera_ids_and_pids_come_from_the_file_name(market: Path) -> None:
    data = _load(market)
    assert [(s.pid, s.camid) for s in data.train] == [(2, 1), (2, 2), (7, 3), (10, 6)]
    assert [(s.pid, s.camid) for s in data.query] == [(7, 1), (10, 2)]
    assert data.train[0] == Sample(market / "bounding_box_train" / TRAIN[0], 2, 1)


def test_files_are_sorted_by_name(market: Path) -> None:
    data = _load(market)
    for samples in (data.train, data.query, data.gallery):
        names = [s.path.name for s in samples]
        assert names == sorted(names)


def test_junk_and_distractors_are_kept_in_gallery_and_left_out_of_train(market: Path) -> None:
    data = _load(market)
    assert sorted(s.pid for s in data.gallery) == [-1, 0, 7, 10]
    assert all(s.pid > 0 for s in data.train)
    assert sorted(s.pid for s in data.excluded["train"]) == [-1, 0]
    summary = data.summary()
    assert "leaving out 1 junk and 1 distractor images" in summary
    assert "including 1 junk and 1 distractor images" in summary


def test_junk_in_query_is_skipped_with_a_warning(market: Path) -> None:
    _write(market / "query", ["-1_c1s1_000001_00.jpg"])
    with pytest.warns(UserWarning, match="junk/distractor"):
        data = _load(market)
    assert [s.pid for s in data.query] == [7, 10]


def test_missing_folder_error_names_the_folder_and_the_layout(market: Path) -> None:
    (market / "query" / QUERY[0]).unlink()
    (market / "query" / QUERY[1]).unlink()
    (market / "query").rmdir()
    with pytest.raises(DataError) as info:
        _load(market)
    message = str(info.value)
    assert "missing query/" in message
    assert "bounding_box_train/" in message and "<- missing" in message
    assert "reid-export synth DIR" in message


def test_missing_root_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        _load(tmp_path / "nowhere")


def test_only_the_requested_splits_are_required(tmp_path: Path) -> None:
    _write(tmp_path / "bounding_box_train", TRAIN)
    data = _load(tmp_path, splits=("train",))
    assert data.num_train_ids == 3
    assert data.query == [] and data.gallery == []
    assert "query" not in data.summary()
    with pytest.raises(DataError, match="missing query/, bounding_box_test/"):
        _load(tmp_path)


def test_unknown_split_lists_the_allowed_ones(market: Path) -> None:
    with pytest.raises(DataError, match="train, query, gallery"):
        _load(market, splits=("val",))


def test_official_zip_top_folder_is_descended_into(market: Path, tmp_path: Path) -> None:
    parent = tmp_path / "downloads"
    parent.mkdir()
    market.rename(parent / "Market-1501-v15.09.15")
    (parent / "Market-1501-v15.09.15.zip.txt").write_text("notes")
    data = _load(parent)
    assert data.root == (parent / "Market-1501-v15.09.15").resolve()
    assert data.descended_from == parent.resolve()
    assert f"descended into it from the folder given, {parent.resolve()}" in data.summary()


def test_odd_file_names_are_reported_and_skipped(market: Path) -> None:
    odd = ["copy of 0002.jpg", "0002_c1s1_000451_03 (1).jpg", "._0002_c1s1_000451_03.jpg"]
    _write(market / "bounding_box_train", odd)
    with pytest.warns(UserWarning, match=r"Skipped 3 image files .*bounding_box_train"):
        data = _load(market)
    assert sorted(p.name for p in data.skipped["train"]) == sorted(odd)
    assert data.skipped["query"] == []
    assert len(data.train) == 4
    assert "Skipped 3 image files" in data.summary()


def test_non_image_files_are_ignored_silently(market: Path, recwarn: pytest.WarningsRecorder) -> None:
    (market / "bounding_box_train" / "Thumbs.db").write_bytes(b"\x00\x01")
    (market / "query" / "readme.txt").write_text("hello")
    (market / "query" / "nested").mkdir()
    data = _load(market)
    assert len(recwarn) == 0
    assert all(paths == [] for paths in data.skipped.values())
    assert len(data.query) == 2


def test_empty_split_is_a_data_error_naming_the_folder(market: Path) -> None:
    for name in QUERY:
        (market / "query" / name).unlink()
    (market / "query" / "notes.txt").write_text("nothing here")
    with pytest.raises(DataError, match=r"query split in .*query is empty.*no \.jpg"):
        _load(market)


def test_corrupt_and_truncated_images_are_reported_by_path_before_loading(market: Path) -> None:
    corrupt = market / "bounding_box_train" / "0011_c1s1_000001_01.jpg"
    corrupt.write_bytes(random.Random(1).randbytes(600))
    truncated = market / "bounding_box_test" / "0012_c2s1_000001_01.jpg"
    whole = _jpeg_bytes((64, 128), noise=True)
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError) as info:
        _load(market)
    message = str(info.value)
    assert message.startswith("2 of 12 images cannot be decoded")
    assert str(corrupt) in message and str(truncated) in message
    assert "delete these files" in message
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    assert _load(market, verify_images=False).num_train_ids == 4  # the check is what caught them


def test_verify_images_lists_the_first_ten_and_the_count(tmp_path: Path) -> None:
    paths = []
    for i in range(12):
        path = tmp_path / f"bad_{i:02d}.jpg"
        path.write_bytes(b"not a jpeg")
        paths.append(path)
    good = tmp_path / "good.jpg"
    good.write_bytes(_jpeg_bytes())
    with pytest.raises(DataError) as info:
        verify_images([good, *map(os.fspath, paths)], progress=True)
    message = str(info.value)
    assert message.startswith("12 of 13 images")
    assert "bad_09.jpg" in message and "bad_10.jpg" not in message
    assert "... and 2 more" in message
    verify_images([good], progress=True)  # passes quietly


def test_summary_reads_as_one_paragraph(market: Path) -> None:
    summary = _load(market).summary()
    assert "\n" not in summary
    assert "train 4 images of 3 ids" in summary
    assert "query 2 images of 2 ids" in summary
    assert "gallery 4 images of 2 ids" in summary
    assert "No files skipped." in summary
