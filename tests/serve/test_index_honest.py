"""`index build|add` say what they did: images added, unreadable ones skipped (a count and the first few),
duplicates skipped (same bytes), and, when an add stops part-way, how many were committed and how to go on."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from serve_helpers import wait_for_commits

from reid_export.errors import DataError
from reid_export.images import decode_images
from reid_export.serve.gallery import MANIFEST, Gallery
from reid_export.serve.indexing import add_to_gallery, build_gallery


def _crops(tiny_market, folder, n=None):
    """A folder of `n` real crops from the tiny set (its query images)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted((tiny_market / "query").glob("*.jpg"))[:n]:
        shutil.copy(path, folder / path.name)
    return folder


def _add(gallery, model, sources, **kwargs) -> tuple[int, list[str]]:
    lines: list[str] = []
    size = add_to_gallery(gallery, str(model), sources, progress=False, log=lines.append, **kwargs)
    return size, lines


def test_adding_the_same_folder_twice_adds_nothing_and_says_so(gallery, tiny_market, tiny_onnx, tmp_path):
    crops = _crops(tiny_market, tmp_path / "new", 6)
    before = len(Gallery.open(gallery))
    size, lines = _add(gallery, tiny_onnx, [crops])
    assert size == before + 6 and "added 6 of 6 images" in lines[-1]
    size, lines = _add(gallery, tiny_onnx, [crops])
    assert size == before + 6
    assert "added 0 of 6 images" in lines[-1] and "6 duplicates skipped" in lines[-1]


def test_allow_duplicates_adds_them_anyway(gallery, tiny_market, tiny_onnx, tmp_path):
    crops = _crops(tiny_market, tmp_path / "new", 3)
    before = len(Gallery.open(gallery))
    _add(gallery, tiny_onnx, [crops])
    size, lines = _add(gallery, tiny_onnx, [crops], allow_duplicates=True)
    assert size == before + 6 and "duplicates skipped" not in lines[-1]


def test_identical_files_in_one_add_are_added_once(gallery, tiny_market, tiny_onnx, tmp_path):
    crops = _crops(tiny_market, tmp_path / "new", 2)
    first = sorted(crops.iterdir())[0]
    shutil.copy(first, crops / "copy_of_first.jpg")
    before = len(Gallery.open(gallery))
    size, lines = _add(gallery, tiny_onnx, [crops])
    assert size == before + 2 and "1 duplicates skipped" in lines[-1]


def test_a_gallery_written_before_content_hashes_still_finds_duplicates(gallery, tiny_market, tiny_onnx):
    manifest = json.loads((gallery / MANIFEST).read_text())
    for item in manifest["items"]:
        item.pop("sha256", None)  # as galleries written before the field
    (gallery / MANIFEST).write_text(json.dumps(manifest))
    with Gallery.open(gallery) as g:
        assert all(item.sha256 is None for item in g.items)
        before = len(g)
    size, lines = _add(gallery, tiny_onnx, [tiny_market / "bounding_box_test"])  # what it was built from
    assert size == before and f"{before} duplicates skipped" in lines[-1]


def test_unreadable_images_are_skipped_counted_and_named(gallery, tiny_market, tiny_onnx, tmp_path):
    crops = _crops(tiny_market, tmp_path / "new", 4)
    (crops / "a_broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (crops / "b_notes.png").write_text("hello")
    before = len(Gallery.open(gallery))
    size, lines = _add(gallery, tiny_onnx, [crops], commit_every=2)
    assert size == before + 4
    assert "added 4 of 6 images" in lines[-1]
    assert "skipped 2 unreadable (first: a_broken.jpg (" in lines[-1] and "b_notes.png (" in lines[-1]
    with Gallery.open(gallery) as g:
        assert not {"a_broken.jpg", "b_notes.png"} & {item.source for item in g.items}


def test_many_unreadable_images_get_a_count_and_the_first_few(gallery, tiny_market, tiny_onnx, tmp_path):
    crops = _crops(tiny_market, tmp_path / "new", 2)
    for i in range(300):
        (crops / f"junk{i:05d}.jpg").write_bytes(b"junk")
    _, lines = _add(gallery, tiny_onnx, [crops], commit_every=64)
    summary = lines[-1]
    assert "added 2 of 302 images" in summary and "skipped 300 unreadable (first: junk00000.jpg (" in summary
    assert "junk00000.jpg" in summary and "junk00004.jpg" in summary and "and 295 more" in summary
    assert "junk00005.jpg" not in summary and len(summary) < 1500


def test_a_build_with_only_unreadable_images_writes_no_gallery(tmp_path, tiny_onnx):
    junk = tmp_path / "junk"
    junk.mkdir()
    for i in range(12):
        (junk / f"x{i}.jpg").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"no image could be indexed: added 0 of 12 images; skipped 12 unreadable \(first: x0.jpg"):
        build_gallery(junk, str(tiny_onnx), tmp_path / "gallery", progress=False)
    assert not (tmp_path / "gallery").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["junk"]


def test_decoding_for_bench_or_predict_reports_every_unreadable_file_together(tmp_path, tiny_market, tiny_onnx):
    from reid_export.runtimes import make_runtime

    paths = sorted((tiny_market / "query").glob("*.jpg"))[:3]
    for i in range(40):
        (tmp_path / f"bad{i:02d}.jpg").write_bytes(b"junk")
        paths.append(tmp_path / f"bad{i:02d}.jpg")
    with make_runtime("onnxruntime", tiny_onnx) as runtime, pytest.raises(DataError) as error:
        decode_images(paths, runtime.contract, progress=False)
    message = str(error.value)
    assert message.startswith("40 of 43 images cannot be decoded: bad00.jpg (") and "and 35 more" in message


@pytest.mark.slow
def test_an_interrupted_add_says_what_it_committed_and_a_rerun_adds_only_the_rest(gallery, tiny_market, tiny_onnx):
    sources = [tiny_market / "bounding_box_train", tiny_market / "query"]
    total = sum(1 for s in sources for _ in s.glob("*.jpg"))
    with Gallery.open(gallery) as g:
        start_items, start_generation = len(g), g.generation
    command = [sys.executable, "-m", "reid_export.cli", "index", "add", str(gallery), *map(str, sources), "--model",
               str(tiny_onnx), "--commit-every", "1", "--batch-size", "1", "-q"]
    process = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    wait_for_commits(gallery, process, after=start_generation)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    with Gallery.open(gallery) as g:
        committed = len(g) - start_items
    if committed < total:  # stopped part-way (the usual case): it says so, with the count
        assert f"index add stopped part-way: {committed} of {total} images were committed" in out + err
        assert "Run the same command again" in out + err
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"added {total - committed} of {total} images" in rerun.stdout
    assert f"{committed} duplicates skipped" in rerun.stdout or committed == 0
    with Gallery.open(gallery) as g:
        assert len(g) == start_items + total
        assert len({item.sha256 for item in g.items}) == len(g)  # no image twice
