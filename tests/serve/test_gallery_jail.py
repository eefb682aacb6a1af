"""The gallery folder is a jail: a manifest naming anything but its own crops and shards is refused when the
gallery is opened, naming the item; symbolic links (a crop, a shard, crops/ itself) are refused, also when
planted after opening, by the reader, the deleter and the live server's image endpoint. And the gallery's
lock, held by a live `serve --token`, keeps the token off the disk and out of a second writer's refusal."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import httpx
import numpy as np
import pytest
from serve_helpers import LiveServer

from reid_export.serve.gallery import MANIFEST, Gallery, GalleryError

TOKEN = "jail-token-8c41e2d9"


def _edit(gallery, change) -> dict:
    manifest = json.loads((gallery / MANIFEST).read_text())
    change(manifest)
    (gallery / MANIFEST).write_text(json.dumps(manifest))
    return manifest


def _first(gallery) -> dict:
    return json.loads((gallery / MANIFEST).read_text())["items"][0]


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reid_export.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture
def victim(tmp_path):
    """A file of the user's, outside every gallery."""
    path = tmp_path / "victim.txt"
    path.write_text("the user's own secret\n")
    return path


@pytest.mark.parametrize("image", ["/etc/passwd", "VICTIM", "../../victim.txt", "../crops/{id}.jpg", "sub/{id}.jpg",
                                   "{id}.jpg\x00.png", "{id}.sh", "{id}", "0123456789abcdef.jpg", "{id}.jpg\n"])
@pytest.mark.parametrize("writable", [False, True], ids=["read-only", "writable"])
def test_a_manifest_naming_a_file_outside_the_gallery_is_refused_naming_the_item(gallery, victim, image, writable):
    item = _first(gallery)
    named = str(victim) if image == "VICTIM" else image.format(id=item["id"])
    _edit(gallery, lambda m: m["items"][0].update(image=named))
    with pytest.raises(GalleryError, match=rf"item {item['id']} names the image .*reid-export index build"):
        Gallery.open(gallery, writable=writable)
    assert victim.read_text() == "the user's own secret\n"
    assert (gallery / "crops" / item["image"]).exists()  # refused before anything was deleted
    assert not (gallery / ".gallery.json.lock").exists()


@pytest.mark.parametrize("item_id", ["../../../etc", "0123456789ABCDEF", "0123456789abcdef\n", 7])
def test_an_item_id_that_is_not_16_hex_digits_is_refused(gallery, item_id):
    def change(m):
        m["items"][0]["id"] = m["shards"][0]["ids"][0] = item_id
    _edit(gallery, change)
    with pytest.raises(GalleryError, match=r"item id .* is not 16 hex digits"):
        Gallery.open(gallery)


@pytest.mark.parametrize("file", ["../../victim_shard.npy", "/tmp/victim_shard.npy", "000001-0000000g.npy",
                                  "x/000001-00000000.npy"])
def test_a_shard_outside_the_gallery_is_refused(gallery, file):
    _edit(gallery, lambda m: m["shards"][0].update(file=file))
    with pytest.raises(GalleryError, match=r"embedding shard .* is not a shard name .*reid-export index build"):
        Gallery.open(gallery)


def test_a_crop_replaced_by_a_symlink_out_is_refused_and_its_target_kept(gallery, victim):
    item = _first(gallery)
    crop = gallery / "crops" / item["image"]
    crop.unlink()
    crop.symlink_to(victim)
    for writable in (False, True):
        with pytest.raises(GalleryError, match=rf"the crop of item {item['id']}, .* is a symbolic link"):
            Gallery.open(gallery, writable=writable)
    assert victim.read_text() == "the user's own secret\n"


def test_a_shard_that_is_a_symlink_is_refused(gallery, tmp_path):
    shard = gallery / "shards" / json.loads((gallery / MANIFEST).read_text())["shards"][0]["file"]
    outside = shutil.move(shard, tmp_path / "elsewhere.npy")
    shard.symlink_to(outside)
    with pytest.raises(GalleryError, match=r"embedding shard .* is a symbolic link"):
        Gallery.open(gallery)


def test_a_crop_that_is_a_pipe_is_refused_without_blocking(gallery):
    item = _first(gallery)
    crop = gallery / "crops" / item["image"]
    crop.unlink()
    os.mkfifo(crop)
    with pytest.raises(GalleryError, match=rf"the crop of item {item['id']}, .* is not a regular file"):
        Gallery.open(gallery)


def test_crops_folder_symlinked_to_the_users_photos_is_refused_and_nothing_deleted(gallery, tmp_path):
    photos = shutil.copytree(gallery / "crops", tmp_path / "photos")
    (photos / "holiday.jpg").write_bytes(b"the user's photo")
    shutil.rmtree(gallery / "crops")
    (gallery / "crops").symlink_to(photos, target_is_directory=True)
    with pytest.raises(GalleryError, match=r"the gallery's crops/ folder, .* is a symbolic link"):
        Gallery.open(gallery, writable=True)
    assert (photos / "holiday.jpg").read_bytes() == b"the user's photo"
    result = _cli("index", "remove", gallery, _first(gallery)["id"])
    assert result.returncode == 2 and "crops/ folder" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr and (photos / "holiday.jpg").exists()


def test_links_planted_after_opening_are_not_followed_by_reads_or_deletes(gallery, tmp_path, victim):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"the user's photo")
    with Gallery.open(gallery, writable=True) as g:
        first, second, third = g.items[0], g.items[1], g.items[2]
        crop = gallery / "crops" / first.image
        crop.unlink()
        crop.symlink_to(victim)
        with pytest.raises(GalleryError, match=r"is a symbolic link"):
            g.read_image(first.id)
        with pytest.raises(GalleryError, match=r"is a symbolic link"):
            g.image_path(first.id)
        assert g.read_image(second.id) == (gallery / "crops" / second.image).read_bytes()
        (gallery / "crops" / "stale.jpg").symlink_to(photos / "holiday.jpg")  # unreferenced: removed, target kept
        g.remove([first.id])
        assert not crop.is_symlink() and not (gallery / "crops" / "stale.jpg").is_symlink()
        assert victim.exists() and (photos / "holiday.jpg").exists()
        for name in os.listdir(gallery / "crops"):  # crops/ swapped for a link to the user's photos
            shutil.copy(gallery / "crops" / name, photos / name)
        shutil.rmtree(gallery / "crops")
        (gallery / "crops").symlink_to(photos, target_is_directory=True)
        with pytest.raises(GalleryError, match=r"crops/ folder, .* is a symbolic link"):
            g.remove([second.id])
        with pytest.raises(GalleryError, match=r"crops/ folder, .* is a symbolic link"):
            g.read_image(third.id)
    assert (photos / "holiday.jpg").read_bytes() == b"the user's photo"
    assert victim.read_text() == "the user's own secret\n"


def test_the_image_endpoint_does_not_serve_a_symlink_planted_after_start(live_server, gallery, victim):
    items = json.loads((gallery / MANIFEST).read_text())["items"]
    served = httpx.get(f"{live_server.url}/v1/gallery/{items[1]['id']}/image", timeout=30)
    assert served.status_code == 200 and served.content == (gallery / "crops" / items[1]["image"]).read_bytes()
    assert served.headers["content-type"] == "image/jpeg"
    crop = gallery / "crops" / items[0]["image"]
    crop.unlink()
    crop.symlink_to(victim)
    planted = httpx.get(f"{live_server.url}/v1/gallery/{items[0]['id']}/image", timeout=30)
    assert planted.status_code == 404 and "symbolic link" in planted.json()["error"]
    assert b"secret" not in planted.content


def test_serve_with_a_token_keeps_it_out_of_the_lock_and_a_second_writers_refusal(tiny_onnx, gallery, tiny_market):
    server = LiveServer(["--model", str(tiny_onnx), "--gallery", str(gallery), "--token", TOKEN],
                        headers={"Authorization": f"Bearer {TOKEN}"})
    server.start()
    try:
        lock = gallery / ".gallery.json.lock"
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
        assert TOKEN not in lock.read_text() and "--token ***" in json.loads(lock.read_text())["command"]
        result = _cli("index", "add", gallery, tiny_market / "query", "--model", tiny_onnx, "-q")
        said = result.stdout + result.stderr
        assert result.returncode == 2 and f"being written by pid {server.process.pid}" in said
        assert TOKEN not in said and "Traceback" not in said
    finally:
        server.stop()
    assert TOKEN not in server.output()


def test_a_clean_gallery_still_opens_and_reads(built_gallery):
    with Gallery.open(built_gallery) as g:
        assert g.read_image(g.ids[0]) == g.image_path(g.ids[0]).read_bytes()
        assert np.isfinite(g.embeddings).all()
