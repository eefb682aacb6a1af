"""The gallery folder: build, add, remove, the model check, and a SIGKILL during `index add`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from serve_helpers import wait_for_commits

from reid_export.artefacts.tensorrt_sidecar import file_sha256
from reid_export.data.market1501 import parse_name
from reid_export.errors import ReidExportError
from reid_export.serve.gallery import MANIFEST, Gallery, GalleryError
from reid_export.serve.indexing import add_to_gallery, build_gallery, collect_images, remove_from_gallery


def _shard_rows(gallery_dir) -> np.ndarray:
    return np.concatenate([np.load(p) for p in sorted((gallery_dir / "shards").glob("*.npy"))])


def test_build_indexes_every_gallery_image_with_labels_and_the_model(built_gallery, tiny_market, tiny_onnx):
    files = sorted((tiny_market / "bounding_box_test").glob("*.jpg"))
    with Gallery.open(built_gallery) as gallery:
        assert len(gallery) == len(files)
        assert gallery.model.sha256 == file_sha256(tiny_onnx)
        assert gallery.model.contract["height"] == 64 and gallery.model.contract["width"] == 32
        assert gallery.embeddings.shape == (len(files), gallery.dim)
        np.testing.assert_allclose(np.linalg.norm(gallery.embeddings, axis=1), 1.0, atol=1e-4)
        by_source = {item.source: item for item in gallery.items}
        for path in files:
            item = by_source[path.name]
            assert (item.pid, item.camid) == parse_name(path.name)
            assert gallery.image_path(item.id).read_bytes() == path.read_bytes()
        assert all(item.attributes is None for item in gallery.items)  # the tiny model has no attribute head


def test_a_build_in_several_chunks_equals_a_build_in_one(built_gallery, tiny_market, tiny_onnx, tmp_path, monkeypatch):
    from reid_export.serve import indexing

    monkeypatch.setattr(indexing, "BUILD_CHUNK", 5)
    chunked = build_gallery(tiny_market, str(tiny_onnx), tmp_path / "chunked", progress=False)
    with Gallery.open(chunked) as a, Gallery.open(built_gallery) as b:
        assert len(list((chunked / "shards").iterdir())) == -(-len(a) // 5)
        assert [i.source for i in a.items] == [i.source for i in b.items]
        np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-5)


def test_build_refuses_an_existing_folder_and_leaves_no_temporary_folder(built_gallery, tiny_market, tiny_onnx):
    with pytest.raises(ReidExportError, match="already exists"):
        build_gallery(tiny_market, str(tiny_onnx), built_gallery, progress=False)
    assert not [p for p in built_gallery.parent.iterdir() if p.name.startswith(".")]


def test_overwrite_replaces_a_gallery_but_not_one_in_use(gallery, tiny_market, tiny_onnx):
    with Gallery.open(gallery, writable=True):  # as a running server holds it
        with pytest.raises(ReidExportError, match="being written by"):
            build_gallery(tiny_market, str(tiny_onnx), gallery, overwrite=True, progress=False)
        assert (gallery / MANIFEST).exists()
    old_ids = set(Gallery.open(gallery).ids)
    build_gallery(tiny_market, str(tiny_onnx), gallery, overwrite=True, progress=False)
    with Gallery.open(gallery) as g:
        assert len(g) == len(old_ids) and not old_ids & set(g.ids)
    assert not [p for p in gallery.parent.iterdir() if p.name.startswith(".")]


def test_a_folder_of_unlabelled_crops_gets_no_pid_or_camera(tmp_path, tiny_market):
    crops = tmp_path / "crops"
    crops.mkdir()
    for i, path in enumerate(sorted((tiny_market / "query").glob("*.jpg"))[:3]):
        (crops / f"person{i}.jpg").write_bytes(path.read_bytes())
    found = collect_images(crops)
    assert [(f.pid, f.camid) for f in found] == [(None, None)] * 3


def test_a_course_folder_indexes_its_anonymised_test_images(tmp_path, tiny_market):
    from course_layout import write_course

    course = write_course(tiny_market, tmp_path / "course")
    found = collect_images(course)
    assert [f.path.name for f in found] == sorted(p.name for p in (course / "test").glob("*.jpg"))
    assert all(f.pid is None and f.camid is None for f in found)


def test_add_and_remove_change_the_gallery_and_removed_people_leave_the_disk(gallery, tiny_market, tiny_onnx):
    before = len(Gallery.open(gallery))
    queries = sorted((tiny_market / "query").glob("*.jpg"))[:4]
    assert add_to_gallery(gallery, str(tiny_onnx), queries, commit_every=2, progress=False) == before + 4
    with Gallery.open(gallery) as g:
        new = [item for item in g.items if item.source in {q.name for q in queries}]
        victim = new[0]
        victim_embedding = g.embeddings[g.ids.index(victim.id)].copy()
        crop = g.image_path(victim.id)
    assert crop.is_file()
    assert remove_from_gallery(gallery, [victim.id]) == before + 3
    with Gallery.open(gallery) as g:
        assert victim.id not in g and len(g) == before + 3
    assert not crop.exists()
    rows = _shard_rows(gallery)
    assert len(rows) == before + 3  # no orphan rows kept in old shards
    assert not np.any(np.all(np.isclose(rows, victim_embedding, atol=0), axis=1))


def test_removing_an_unknown_id_changes_nothing(gallery):
    manifest = (gallery / MANIFEST).read_text()
    with pytest.raises(GalleryError, match="no gallery item"):
        remove_from_gallery(gallery, ["0123456789abcdef"])
    assert (gallery / MANIFEST).read_text() == manifest


def test_opening_with_another_model_is_refused_naming_both(gallery, tiny_checkpoint, tiny_market):
    with pytest.raises(GalleryError) as error:
        add_to_gallery(gallery, f"torch={tiny_checkpoint}", [sorted((tiny_market / "query").glob("*.jpg"))[0]],
                       progress=False)
    message = str(error.value)
    assert "tiny.onnx" in message and "tiny.pt" in message and "sha256" in message


def test_a_second_writer_is_refused_while_one_holds_the_gallery(gallery):
    with Gallery.open(gallery, writable=True):
        with pytest.raises(ReidExportError, match="being written by"):
            Gallery.open(gallery, writable=True)


@pytest.mark.slow
def test_sigkill_during_index_add_leaves_a_loadable_gallery_missing_only_the_commit_in_flight(
        gallery, tiny_market, tiny_onnx):
    with Gallery.open(gallery) as g:
        start_items, start_generation = len(g), g.generation
    sources = [tiny_market / "bounding_box_train", tiny_market / "query"]
    total = len(collect_images(sources))
    commit_every = 2
    process = subprocess.Popen([sys.executable, "-m", "reid_export.cli", "index", "add", str(gallery),
                                *map(str, sources), "--model", str(tiny_onnx), "--commit-every", str(commit_every),
                                "--batch-size", "2", "-q"],
                               env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE)
    wait_for_commits(gallery, process, after=start_generation)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with Gallery.open(gallery, writable=True) as g:  # loadable; the writer's leftovers are cleaned
        commits = g.generation - start_generation
        assert commits >= 3
        assert len(g) == min(start_items + commit_every * commits, start_items + total)
        assert len(g) < start_items + total or process.returncode == 0
        assert {p.name for p in (gallery / "crops").iterdir()} == {item.image for item in g.items}
        assert len(_shard_rows(gallery)) == len(g)
