"""Ranked-list pictures: files, geometry, frame colours by protocol status, attributes, refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_models import make_tiny_model

from reid_export.apps.visualize import (
    STATUS_COLOURS,
    Layout,
    choose_queries,
    describe_attributes,
    rank_gallery,
    visualize_rankings,
)
from reid_export.data.market1501 import Sample, load_market1501
from reid_export.errors import ReidExportError


@pytest.fixture(scope="module")
def attribute_onnx(tmp_path_factory):
    from reid_export.export.onnx import export_onnx

    return export_onnx(make_tiny_model(attributes=True), tmp_path_factory.mktemp("vis") / "attr.onnx",
                       with_attributes=True)


@pytest.fixture(scope="module")
def planted_market(tiny_market, tmp_path_factory):
    """tiny_market with one query left and exact copies of it planted in the gallery: one on another
    camera (a match), one on the same camera and one with pid -1 (both junk), one as a distractor.
    Copies embed identically, so they are the top 4 whatever the weights."""
    root = tmp_path_factory.mktemp("planted") / "Market"
    shutil.copytree(tiny_market, root)
    queries = sorted((root / "query").iterdir())
    for extra in queries[1:]:
        extra.unlink()
    query = load_market1501(root, splits=("query", "gallery"), verify_images=False, progress=False).query[0]
    other_cam = query.camid % 6 + 1
    gallery = root / "bounding_box_test"
    planted = {
        f"{query.pid:04d}_c{other_cam}s9_999991_01.jpg": "match",
        f"{query.pid:04d}_c{query.camid}s9_999992_01.jpg": "junk",
        f"-1_c{other_cam}s9_999993_01.jpg": "junk",
        f"0000_c{other_cam}s9_999994_01.jpg": "distractor",
    }
    for name in planted:
        shutil.copyfile(query.path, gallery / name)
    return root, planted


def _frame_colour(image: Image.Image, layout: Layout, position: int) -> tuple[int, int, int]:
    """Pixel in the middle of the left frame edge of a tile."""
    return image.getpixel((layout.tile_x(position) + layout.border // 2, layout.tiles_y + layout.tile_size[1] // 2))


def _text_lines(row: Image.Image, layout: Layout, top_k: int) -> int:
    """Lines of text under the tiles, from the picture's height; fails unless it is a whole number."""
    lines, rest = divmod(row.height - layout.row_size(top_k)[1], layout.line_height)
    assert rest == 0, f"height {row.height} is not the tiles plus whole lines of text"
    return lines


def _close(colour, expected, tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected))


def test_writes_one_png_per_query_and_a_contact_sheet_of_the_layout_size(tiny_market, tiny_onnx, tmp_path):
    files = visualize_rankings(tiny_market, str(tiny_onnx), tmp_path / "vis", num_queries=3, top_k=5, progress=False)

    assert len(files) == 4 and files[-1].name == "contact_sheet.png"
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == sorted(p.name for p in files)
    layout = Layout()
    rows = [Image.open(f) for f in files[:-1]]
    for row in rows:  # tiles, then whole lines of text (notes and legend: no attributes from this model)
        assert row.size == layout.row_size(5, _text_lines(row, layout, 5))
        assert _text_lines(row, layout, 5) >= 2
    tile_w, tile_h = layout.tile_size
    assert tile_w == 64 * 2 + 2 * layout.border and tile_h == 128 * 2 + 2 * layout.border  # crops upscaled 2x
    assert rows[0].width == 2 * layout.margin + 6 * tile_w + layout.query_gap + 4 * layout.gap  # query + 5 tiles
    sheet = Image.open(files[-1])
    assert sheet.width == rows[0].width
    title_lines, rest = divmod(sheet.height - sum(row.height for row in rows) - 2 * layout.margin, layout.line_height)
    assert rest == 0 and title_lines >= 1  # title lines, then the rows stacked


def test_frames_are_green_for_a_match_grey_for_junk_and_red_for_a_distractor(planted_market, tiny_onnx, tmp_path):
    root, planted = planted_market
    files = visualize_rankings(root, f"onnxruntime={tiny_onnx}", tmp_path / "vis", num_queries=5, top_k=6,
                               progress=False)

    assert len(files) == 2  # only one query is left, however many were asked for
    row, layout = Image.open(files[0]).convert("RGB"), Layout()
    assert _close(_frame_colour(row, layout, 0), STATUS_COLOURS["query"])
    top4 = sorted(_frame_colour(row, layout, rank) for rank in range(1, 5))
    expected = sorted(STATUS_COLOURS[status] for status in planted.values())
    assert all(_close(got, want) for got, want in zip(top4, expected)), (top4, expected)
    assert sum(_close(c, STATUS_COLOURS["match"]) for c in top4) == 1
    assert sum(_close(c, STATUS_COLOURS["junk"]) for c in top4) == 2


def test_rank_gallery_applies_the_junk_rule_and_keeps_ties_in_gallery_order():
    query = Sample(Path("q.jpg"), pid=7, camid=1)
    gallery = [
        Sample(Path("a.jpg"), 7, 2),  # same person, other camera
        Sample(Path("b.jpg"), 7, 1),  # same person, same camera: junk
        Sample(Path("c.jpg"), -1, 3),  # junk box
        Sample(Path("d.jpg"), 0, 2),  # distractor
        Sample(Path("e.jpg"), 9, 1),  # another person
    ]
    hits = rank_gallery(np.array([0.3, 0.1, 0.1, 0.2, 0.05], dtype=np.float32), query, gallery, top_k=4)

    assert [(h.sample.path.name, h.status) for h in hits] == [
        ("e.jpg", "wrong"), ("b.jpg", "junk"), ("c.jpg", "junk"), ("d.jpg", "distractor")]
    assert hits[0].distance == pytest.approx(0.05)


def test_attribute_predictions_are_written_under_the_row(tiny_market, attribute_onnx, tiny_onnx, tmp_path):
    files = visualize_rankings(tiny_market, str(attribute_onnx), tmp_path / "vis", num_queries=2, top_k=4,
                               progress=False)

    plain = visualize_rankings(tiny_market, str(tiny_onnx), tmp_path / "plain", num_queries=2, top_k=4,
                               progress=False)
    layout = Layout()
    for with_attributes, without in zip(files[:-1], plain[:-1]):
        row, bare = Image.open(with_attributes), Image.open(without)
        assert row.size == layout.row_size(4, _text_lines(row, layout, 4))
        assert _text_lines(row, layout, 4) > _text_lines(bare, layout, 4)  # the attribute lines


def test_describe_attributes_marks_wrong_predictions_with_the_truth():
    from reid_export.data.attributes import ATTRIBUTE_NAMES

    truth = {name: 1 for name in ATTRIBUTE_NAMES} | {"age": 3, "gender": 2, "backpack": 2, "upred": 2, "downblue": 2}
    predicted = dict(truth) | {"gender": 1, "backpack": 1, "upred": 1, "upwhite": 2}

    phrases = dict(describe_attributes(predicted, truth))
    assert phrases["male (true: female)"] is False
    assert phrases["no backpack (true: backpack)"] is False
    assert phrases["upper: white (true: red)"] is False
    assert phrases["adult"] is True and phrases["lower: blue"] is True
    assert all(correct is None for _, correct in describe_attributes(predicted))
    assert [text for text, _ in describe_attributes(truth)][:3] == ["female", "short hair", "adult"]


def test_refuses_to_write_into_a_non_empty_folder(tiny_market, tiny_onnx, tmp_path):
    out = tmp_path / "vis"
    out.mkdir()
    (out / "keep.png").write_bytes(b"mine")

    with pytest.raises(ReidExportError, match=r"not empty.*choose an empty or new folder") as info:
        visualize_rankings(tiny_market, str(tiny_onnx), out, progress=False)
    assert str(out) in str(info.value)
    assert [p.name for p in out.iterdir()] == ["keep.png"] and (out / "keep.png").read_bytes() == b"mine"


def test_query_choice_is_deterministic_for_a_seed_and_spread_over_identities(tiny_market, tiny_onnx, tmp_path):
    queries = load_market1501(tiny_market, splits=("query", "gallery"), verify_images=False, progress=False).query
    num_pids = len({q.pid for q in queries})

    first = choose_queries(queries, num_pids, seed=5)
    assert first == choose_queries(queries, num_pids, seed=5)
    assert len({queries[i].pid for i in first}) == num_pids  # one query per identity
    assert len({tuple(choose_queries(queries, 3, seed=s)) for s in range(6)}) > 1  # the seed matters
    assert sorted(choose_queries(queries, 10 * len(queries), seed=0)) == list(range(len(queries)))

    runs = [visualize_rankings(tiny_market, str(tiny_onnx), tmp_path / f"run{i}", num_queries=3, top_k=3,
                               seed=1, progress=False) for i in range(2)]
    assert [p.name for p in runs[0]] == [p.name for p in runs[1]]
    assert runs[0][0].read_bytes() == runs[1][0].read_bytes()
