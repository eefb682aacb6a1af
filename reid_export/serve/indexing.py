"""Filling a gallery from image files through a runtime: `reid-export index build | add | remove`.

    build_gallery("Market/bounding_box_test", "engines/model.onnx", "runs/gallery")
    add_to_gallery("runs/gallery", "engines/model.onnx", ["new_crops/"])
    remove_from_gallery("runs/gallery", ["3f2a9c0d1e4b5a67"])

`--data` may be a Market-1501 folder (its gallery `bounding_box_test/` is used), a course folder (its
`test/`), or any folder of crops (searched recursively). pid and camera come from Market-1501 or course
file names (`0002_c1s1_000451_03.jpg`, `0474_c5_013563167.jpg`) and stay empty otherwise.

A build is written into a temporary folder and renamed into place at the end, so a gallery either
exists complete or not at all; `--overwrite` replaces a gallery only (never another folder, nor one
holding the data or the model). `add` commits every `commit_every` images, so a killed `add` loses
at most the images of the commit in flight, and one that stops says how many it committed.

Both skip, and count in their summary, unreadable images (the first few named) and duplicates: images
whose bytes (sha256) are already in the gallery or earlier in the same run, so running an `add` again
adds only what is missing (`allow_duplicates` adds them anyway).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.attributes import ATTRIBUTE_NAMES, decode_probabilities
from ..data.course import parse_course_name
from ..data.market1501 import IMAGE_SUFFIXES, parse_name
from ..errors import DataError, ReidExportError
from ..files import output_lock, refuse_own_input, refuse_replacing
from ..images import SHOWN_UNREADABLE, decode_readable, first_examples
from ..progress import progress_bar
from ..runtimes import Runtime, infer_images, make_runtime, parse_model_spec
from .gallery import FORMAT as GALLERY_FORMAT
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
                  allow_duplicates: bool = False, progress: bool = True, log=None) -> Path:
    """Embed every image of `data` and write a new gallery at `out` (atomically: a temporary folder renamed
    into place); returns `out`. Unreadable images and duplicates (same bytes) are skipped and counted in
    the summary line given to `log`. `--overwrite` replaces a gallery only, never a folder of anything else
    nor one holding the data or the model."""
    out = Path(out)
    name, path = parse_model_spec(model_spec)
    sources = [data] if isinstance(data, (str, Path)) else list(data)
    refuse_own_input(out, [*sources, *([path] if Path(path).exists() else [])], option="-o")
    if out.exists() and not overwrite:
        raise ReidExportError(f"{out} already exists; pass --overwrite to replace it, or add to it with "
                              "`reid-export index add`")
    refuse_replacing(out, own=_replaceable, kind="a gallery folder", option="-o",
                     why=f"no {MANIFEST} of `reid-export index build` in it")
    files = collect_images(data)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with make_runtime(name, path) as runtime:
            identity = model_identity(runtime)
            tally = _Tally(len(files), known=None if allow_duplicates else set())
            gallery = _add_files(runtime, files, lambda dim: Gallery.create(tmp, identity, dim), tally,
                                 batch_size=batch_size, commit_every=BUILD_CHUNK, progress=progress)
            if gallery is None:
                raise DataError(f"{data}: no image could be indexed: {tally.summary()}")
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
    if log is not None:
        log(f"gallery {out}: {tally.summary()}")
    return out


def add_to_gallery(gallery_dir: str | Path, model_spec: str, sources, *, batch_size: int = 64,
                   commit_every: int = COMMIT_EVERY, allow_duplicates: bool = False, progress: bool = True,
                   log=None) -> int:
    """Embed the images of `sources` into an existing gallery (same model only); returns its new size.
    Images whose bytes are already in the gallery are skipped unless `allow_duplicates`, so running an add
    again adds only what is missing; unreadable images are skipped; both are counted in the summary line
    given to `log`. An add that stops part-way raises (or, interrupted, logs) how many images it committed."""
    files = collect_images(sources)
    name, path = parse_model_spec(model_spec)
    with make_runtime(name, path) as runtime, \
            Gallery.open(gallery_dir, model=model_identity(runtime), writable=True) as gallery:
        tally = _Tally(len(files), known=None if allow_duplicates else _content_hashes(gallery), base=len(gallery))
        try:
            _add_files(runtime, files, lambda dim: gallery, tally, batch_size=batch_size,
                       commit_every=commit_every, progress=progress)
        except KeyboardInterrupt:
            if log is not None:
                log(f"interrupted: {_stopped(gallery, tally)}")
            raise
        except (ReidExportError, OSError) as e:
            if not tally.added:
                raise
            raise ReidExportError(f"{_stopped(gallery, tally)}. What stopped it: {e}") from e
        if log is not None:
            log(f"gallery {gallery_dir}: {tally.summary()}; {len(gallery)} items now")
        return len(gallery)


def remove_from_gallery(gallery_dir: str | Path, item_ids: list[str]) -> int:
    """Remove items by id (embeddings and crops leave the disk); returns the gallery's new size."""
    with Gallery.open(gallery_dir, writable=True) as gallery:
        gallery.remove(list(item_ids))
        return len(gallery)


@dataclass
class _Tally:
    """What an add has done so far: for its summary, and for an honest message when it stops part-way."""
    total: int  # image files given
    known: set[str] | None  # sha256 of the images in the gallery (and added so far); None: duplicates allowed
    added: int = 0  # committed
    duplicates: list[str] = field(default_factory=list)  # file names skipped: their bytes are in the gallery
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason) skipped
    at: str = ""  # the files of the commit in flight
    base: int = 0  # items in the gallery before the add

    def summary(self) -> str:
        parts = [f"added {self.added} of {self.total} images"]
        if self.unreadable:
            parts.append(f"skipped {len(self.unreadable)} unreadable (first: {first_examples(self.unreadable)}; "
                         "fix or replace them, then add them with `reid-export index add`)")
        if self.duplicates:
            shown = ", ".join(self.duplicates[:SHOWN_UNREADABLE]) + (" ..." if len(self.duplicates) > SHOWN_UNREADABLE
                                                                     else "")
            parts.append(f"{len(self.duplicates)} duplicates skipped (same bytes as an image already in the gallery: "
                         f"{shown}; --allow-duplicates adds them anyway)")
        return "; ".join(parts)


def _add_files(runtime: Runtime, files: list[ImageFile], gallery_for, tally: _Tally, *, batch_size: int,
               commit_every: int, progress: bool) -> Gallery | None:
    """Embed `files` and add them, one commit per `commit_every` files; `gallery_for(dim)` gives the gallery
    (called once, at the first commit, when the embedding size is known; None if nothing was added).
    Unreadable files and duplicates (per `tally.known`) are skipped and recorded in `tally`."""
    gallery = None
    step = max(1, commit_every)
    with progress_bar(f"indexing {len(files)} images ({runtime.name})", len(files), enabled=progress) as advance:
        for start in range(0, len(files), step):
            chunk = files[start:start + step]
            tally.at = chunk[0].path.name + (f" .. {chunk[-1].path.name}" if len(chunk) > 1 else "")
            fresh = _readable(chunk, tally)
            pixels, failed = decode_readable([_named_bytes(f, data) for f, data, _ in fresh], runtime.contract,
                                             progress=False)
            pixels, kept = _new_content(fresh, pixels, dict(failed), tally)
            advance(len(chunk) - len(kept))
            if not kept:
                continue
            outputs: dict[str, list] = {}
            for b in range(0, len(kept), batch_size):
                for key, value in embed_arrays(runtime, pixels[b:b + batch_size], batch_size=batch_size).items():
                    outputs.setdefault(key, []).append(value)
                advance(min(batch_size, len(kept) - b))
            merged = {key: np.concatenate(parts) for key, parts in outputs.items()}
            gallery = gallery or gallery_for(merged["embedding"].shape[1])
            codes = attribute_codes(merged)
            gallery.add([NewItem(data=data, suffix=f.path.suffix, source=f.path.name, pid=f.pid, camid=f.camid,
                                 attributes=c) for (f, data, _), c in zip(kept, codes)], merged["embedding"])
            tally.added += len(kept)
    return gallery


def _readable(chunk: list[ImageFile], tally: _Tally) -> list[tuple[ImageFile, bytes, str]]:
    """The files of `chunk` with their bytes and sha256, less the ones that cannot be read (recorded)."""
    fresh = []
    for f in chunk:
        try:
            data = f.path.read_bytes()
        except OSError as e:
            tally.unreadable.append((f.path, e.strerror or str(e)))
            continue
        fresh.append((f, data, hashlib.sha256(data).hexdigest()))
    return fresh


def _new_content(fresh: list, pixels: np.ndarray, failed: dict[int, str], tally: _Tally) -> tuple[np.ndarray, list]:
    """The decoded files to add: not undecodable, and (unless duplicates are allowed) with bytes that are neither
    in the gallery nor earlier in this run; the others are recorded in `tally`. `pixels` holds the decoded ones."""
    kept, rows, row = [], [], 0
    for i, (f, data, digest) in enumerate(fresh):
        if i in failed:
            tally.unreadable.append((f.path, failed[i]))
            continue
        if tally.known is not None and digest in tally.known:
            tally.duplicates.append(f.path.name)
        else:
            if tally.known is not None:
                tally.known.add(digest)
            kept.append((f, data, digest))
            rows.append(row)
        row += 1
    return pixels[rows], kept


def _named_bytes(f: ImageFile, data: bytes) -> io.BytesIO:
    buffer = io.BytesIO(data)
    buffer.name = str(f.path)  # messages name the file
    return buffer


def _content_hashes(gallery: Gallery) -> set[str]:
    """sha256 of every item's image: recorded since galleries store it, else read from its stored crop
    (the crop is the added file's bytes); an item whose crop is missing is left out."""
    hashes = set()
    for item in gallery.items:
        if item.sha256:
            hashes.add(item.sha256)
            continue
        with contextlib.suppress(OSError):
            hashes.add(hashlib.sha256(gallery.image_path(item.id).read_bytes()).hexdigest())
    return hashes


def _stopped(gallery: Gallery, tally: _Tally) -> str:
    try:  # the manifest on disk: a stop can land after a commit's rename, before the in-memory view follows it
        size = len(json.loads((gallery.root / MANIFEST).read_text())["items"])
    except (OSError, ValueError, KeyError, TypeError):
        size = len(gallery)
    committed = size - tally.base
    return (f"index add stopped part-way: {committed} of {tally.total} images were committed to {gallery.root} "
            f"(it now holds {size} items), at the commit of {tally.at}. Run the same command again to add "
            "the rest: images already in the gallery are recognised by their bytes (sha256) and skipped")


def _replaceable(out: Path) -> bool:
    """What `index build --overwrite` may replace: a gallery folder, or an empty folder."""
    if not out.is_dir():
        return False
    if not any(out.iterdir()):
        return True
    try:
        return json.loads((out / MANIFEST).read_text()).get("format") == GALLERY_FORMAT
    except (OSError, ValueError, AttributeError):
        return False
