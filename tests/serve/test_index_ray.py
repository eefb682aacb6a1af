"""`--engine ray`: the Ray Data pipeline indexes exactly what the single-process engine does (a real local Ray,
started once for the module: it takes about ten seconds)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from reid_export.errors import ReidExportError
from reid_export.serve.gallery import Gallery
from reid_export.serve.indexing import add_to_gallery, build_gallery

pytest.importorskip("ray.data", reason="the ray extra is not installed")

from reid_export.serve.ray_index import RayEngine, RaySettings  # noqa: E402 - after the skip


@pytest.fixture(scope="module")
def ray_engine():
    with RayEngine(RaySettings(actors=2)) as engine:
        yield engine


@pytest.fixture
def crops(tiny_market, tmp_path):
    """The tiny gallery's crops, plus one file that is not an image, one copy of a crop and one new crop."""
    from PIL import Image, ImageOps

    folder = shutil.copytree(tiny_market / "bounding_box_test", tmp_path / "crops")
    (folder / "0000_c1s1_000000_99.jpg").write_bytes(b"not an image")
    first = sorted(folder.glob("0*.jpg"))[1]
    shutil.copy(first, folder / "9999_c6s1_000000_01.jpg")
    ImageOps.mirror(Image.open(first)).save(folder / "9998_c6s1_000000_01.png")
    return folder


def _same_items(a: Gallery, b: Gallery) -> None:
    assert [(i.source, i.pid, i.camid, i.sha256) for i in a.items] == \
        [(i.source, i.pid, i.camid, i.sha256) for i in b.items]
    np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-5)


def test_a_ray_build_gives_the_embeddings_of_a_local_build(ray_engine, crops, tiny_onnx, tmp_path):
    logs = {}
    local = build_gallery(crops, str(tiny_onnx), tmp_path / "local", progress=False, log=logs.setdefault)
    remote = build_gallery(crops, str(tiny_onnx), tmp_path / "ray", engine=ray_engine, batch_size=8,
                           progress=False, log=logs.setdefault)
    with Gallery.open(local) as a, Gallery.open(remote) as b:
        _same_items(a, b)
        assert len(a) == len(list(crops.iterdir())) - 2  # the non-image and the copy are left out
    summaries = list(logs)
    assert summaries[0].split(": ", 1)[1] == summaries[1].split(": ", 1)[1]  # same counts, same files named
    assert "1 unreadable" in summaries[1] and "1 duplicates" in summaries[1]


def test_a_ray_add_skips_what_the_gallery_holds_and_adds_the_rest_as_a_local_add_does(
        ray_engine, built_gallery, crops, tiny_onnx, tmp_path):
    local, remote = (shutil.copytree(built_gallery, tmp_path / name) for name in ("local", "ray"))
    size = add_to_gallery(local, str(tiny_onnx), [crops], commit_every=5, progress=False)
    assert add_to_gallery(remote, str(tiny_onnx), [crops], commit_every=5, engine=ray_engine,
                          progress=False) == size
    with Gallery.open(local) as a, Gallery.open(remote) as b:
        _same_items(a, b)
        assert len(a) == len(Gallery.open(built_gallery)) + 1  # only the mirrored crop is new


def test_ray_refuses_a_gallery_of_another_model_before_starting_work(ray_engine, built_gallery, crops, tmp_path):
    from tiny_models import make_tiny_model

    from reid_export.export.onnx import export_onnx

    other = export_onnx(make_tiny_model(seed=1), tmp_path / "other.onnx")
    with pytest.raises(ReidExportError, match="index migrate"):
        add_to_gallery(built_gallery, str(other), [crops], engine=ray_engine, progress=False)
