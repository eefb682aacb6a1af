"""Filling a gallery from image files through a runtime: `reid-export index build | add | remove`.

    build_gallery("Market/bounding_box_test", "engines/model.onnx", "runs/gallery")
    add_to_gallery("runs/gallery", "engines/model.onnx", ["new_crops/"])
    remove_from_gallery("runs/gallery", ["3f2a9c0d1e4b5a67"])

`--data` may be a Market-1501 folder (its gallery `bounding_box_test/` is used), a course folder (its
`test/`), or any folder of crops (searched recursively). pid and camera come from Market-1501 or course
file names (`0002_c1s1_000451_03.jpg`, `0474_c5_013563167.jpg`) and stay empty otherwise.

A build is written into a temporary folder and renamed into place at the end, so a gallery either
exists complete or not at all. `add` commits every `commit_every` images, so a killed `add` loses
at most the images of the commit in flight.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.attributes import ATTRIBUTE_NAMES, decode_probabilities
from ..data.course import parse_course_name
from ..data.market1501 import IMAGE_SUFFIXES, parse_name
from ..errors import DataError, ReidExportError
from ..files import output_lock
from ..images import decode_images
from ..progress import progress_bar
from ..runtimes import Runtime, infer_images, make_runtime, parse_model_spec
from .gallery import MANIFEST, Gallery, NewItem, model_identity

__all__ = ["ImageFile", "collect_images", "build_gallery", "add_to_gallery", "remove_from_gallery",
           "embed_arrays", "COMMIT_EVERY"]

COMMIT_EVERY = 256  # images per commit while adding: what a killed `index add` can lose at most
BUILD_CHUNK = 2048  # images decoded and embedded at a time by a build (bounds its memory; one shard each)


@dataclass(frozen=True)
class ImageFile:
    path: Path
    pid: int | None = None
    camid: int | None = None


def collect_images(sources) -> list[ImageFile]:
    """Image files from folders and files: a Market-1501 root gives `bounding_box_test/`, a course root
    `test/`, any other folder every image under it (sorted); pid/camera parsed from the names."""
    found: list[ImageFile] = []
    for source in [sources] if isinstance(sources, (str, Path)) else sources:
        source = Path(source)
        if source.is_file():
            paths = [source]
        elif source.is_dir():
            if (source / "bounding_box_test").is_dir():
                source = source / "bounding_box_test"
            elif (source / "test").is_dir() and (source / "queries").is_dir():
                source = source / "test"
            paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                           and not p.name.startswith("."))
        else:
            raise DataError(f"{source}: no such file or folder; give a folder of images (or a Market-1501 or "
                            "course folder)")
        for path in paths:
            parsed = parse_name(path.name) or parse_course_name(path.name)
            found.append(ImageFile(path, *(parsed or (None, None))))
    if not found:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {sources}; give a folder of crops")
    return found


def embed_arrays(runtime: Runtime, images: np.ndarray, *, batch_size: int = 64) -> dict[str, np.ndarray]:
    """uint8 images (N, H, W, 3) -> {"embedding": (N, D)[, "attributes": (N, 30)]}."""
    return infer_images(runtime, images, batch_size=batch_size, progress=False)


def attribute_codes(outputs: dict[str, np.ndarray]) -> list[list[int] | None]:
    """Per image, its 27 attribute codes in ATTRIBUTE_NAMES order, or None when the model has no attributes."""
    if "attributes" not in outputs:
        return [None] * len(outputs["embedding"])
    return [[int(codes[name]) for name in ATTRIBUTE_NAMES] for codes in decode_probabilities(outputs["attributes"])]


def build_gallery(data, model_spec: str, out: str | Path, *, overwrite: bool = False, batch_size: int = 64,
                  progress: bool = True) -> Path:
    """Embed every image of `data` and write a new gallery at `out` (atomically: a temporary folder renamed
    into place); returns `out`."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise ReidExportError(f"{out} already exists; pass --overwrite to replace it, or add to it with "
                              "`reid-export index add`")
    files = collect_images(data)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    name, path = parse_model_spec(model_spec)
    try:
        with make_runtime(name, path) as runtime:
            identity = model_identity(runtime)
            gallery = _add_files(runtime, files, lambda dim: Gallery.create(tmp, identity, dim),
                                 batch_size=batch_size, commit_every=BUILD_CHUNK, progress=progress)
            gallery.close()
        if out.exists():  # --overwrite: only while no one (a running server) holds the old gallery
            with contextlib.ExitStack() as held:
                if (out / MANIFEST).exists():
                    held.enter_context(output_lock(out / MANIFEST, "reid-export index build --overwrite"))
                old = out.with_name(f".{out.name}.{os.getpid()}.old")
                os.replace(out, old)
                os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def add_to_gallery(gallery_dir: str | Path, model_spec: str, sources, *, batch_size: int = 64,
                   commit_every: int = COMMIT_EVERY, progress: bool = True) -> int:
    """Embed the images of `sources` into an existing gallery (same model only); returns its new size."""
    files = collect_images(sources)
    name, path = parse_model_spec(model_spec)
    with make_runtime(name, path) as runtime, \
            Gallery.open(gallery_dir, model=model_identity(runtime), writable=True) as gallery:
        _add_files(runtime, files, lambda dim: gallery, batch_size=batch_size, commit_every=commit_every,
                   progress=progress)
        return len(gallery)


def remove_from_gallery(gallery_dir: str | Path, item_ids: list[str]) -> int:
    """Remove items by id (embeddings and crops leave the disk); returns the gallery's new size."""
    with Gallery.open(gallery_dir, writable=True) as gallery:
        gallery.remove(list(item_ids))
        return len(gallery)


def _add_files(runtime: Runtime, files: list[ImageFile], gallery_for, *, batch_size: int, commit_every: int,
               progress: bool) -> Gallery:
    """Embed `files` and add them, one commit per `commit_every` images; `gallery_for(dim)` gives the gallery
    (called once, after the first chunk, when the embedding size is known)."""
    gallery = None
    step = max(1, commit_every)
    with progress_bar(f"indexing {len(files)} images ({runtime.name})", len(files), enabled=progress) as advance:
        for start in range(0, len(files), step):
            chunk = files[start:start + step]
            pixels = decode_images([f.path for f in chunk], runtime.contract, progress=False)
            outputs: dict[str, list] = {}
            for b in range(0, len(chunk), batch_size):
                for key, value in embed_arrays(runtime, pixels[b:b + batch_size], batch_size=batch_size).items():
                    outputs.setdefault(key, []).append(value)
                advance(min(batch_size, len(chunk) - b))
            merged = {key: np.concatenate(parts) for key, parts in outputs.items()}
            gallery = gallery or gallery_for(merged["embedding"].shape[1])
            codes = attribute_codes(merged)
            gallery.add([NewItem(data=f.path.read_bytes(), suffix=f.path.suffix, source=f.path.name, pid=f.pid,
                                 camid=f.camid, attributes=c) for f, c in zip(chunk, codes)], merged["embedding"])
    return gallery
