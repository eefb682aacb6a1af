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

An `Engine` decodes and embeds (`LocalEngine`: this process; `ray_index.RayEngine`: a Ray Data actor pool);
`add_results` writes what it hands back, always in this process, so every engine commits the same way.
`migrate.py` uses the same pieces to move a gallery to a new model.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

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
from .gallery import MANIFEST, Gallery, GalleryItem, NewItem, model_identity

__all__ = ["ImageFile", "collect_images", "build_gallery", "add_to_gallery", "remove_from_gallery",
           "embed_arrays", "COMMIT_EVERY", "Engine", "LocalEngine", "Embedded", "read_file", "add_results",
           "new_gallery_folder", "named_bytes", "Tally"]

COMMIT_EVERY = 256  # images per commit while adding: what a killed `index add` can lose at most
BUILD_CHUNK = 2048  # images decoded and embedded at a time by a build (bounds its memory; one shard each)


@dataclass(frozen=True)
class ImageFile:
    path: Path
    pid: int | None = None
    camid: int | None = None
    origin: GalleryItem | None = None  # the gallery item this file is the stored crop of (a migration keeps its id)


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
                  allow_duplicates: bool = False, engine: "Engine | None" = None, progress: bool = True,
                  log=None) -> Path:
    """Embed every image of `data` and write a new gallery at `out` (atomically: a temporary folder renamed
    into place); returns `out`. Unreadable images and duplicates (same bytes) are skipped and counted in
    the summary line given to `log`. `--overwrite` replaces a gallery only, never a folder of anything else
    nor one holding the data or the model. `engine`: what decodes and embeds (default `LocalEngine`; a
    `ray_index.RayEngine` spreads it over a Ray cluster); the writes stay here either way."""
    name, path = parse_model_spec(model_spec)
    sources = [data] if isinstance(data, (str, Path)) else list(data)
    with new_gallery_folder(out, inputs=[*sources, *([path] if Path(path).exists() else [])],
                            overwrite=overwrite) as tmp:
        files = collect_images(data)
        with make_runtime(name, path) as runtime:
            identity = model_identity(runtime)
            tally = Tally(len(files), known=None if allow_duplicates else set())
            results = (engine or LocalEngine()).results(runtime, files, tally.known, batch_size=batch_size,
                                                        chunk=BUILD_CHUNK)
            gallery = add_results(results, lambda dim: Gallery.create(tmp, identity, dim), tally,
                                  commit_every=BUILD_CHUNK, progress=progress, label=runtime.name)
            if gallery is None:
                raise DataError(f"{data}: no image could be indexed: {tally.summary()}")
            gallery.close()
    if log is not None:
        log(f"gallery {out}: {tally.summary()}")
    return Path(out)


def add_to_gallery(gallery_dir: str | Path, model_spec: str, sources, *, batch_size: int = 64,
                   commit_every: int = COMMIT_EVERY, allow_duplicates: bool = False, engine: "Engine | None" = None,
                   progress: bool = True, log=None) -> int:
    """Embed the images of `sources` into an existing gallery (same model only); returns its new size.
    Images whose bytes are already in the gallery are skipped unless `allow_duplicates`, so running an add
    again adds only what is missing; unreadable images are skipped; both are counted in the summary line
    given to `log`. An add that stops part-way raises (or, interrupted, logs) how many images it committed.
    `engine`: as for `build_gallery`."""
    files = collect_images(sources)
    name, path = parse_model_spec(model_spec)
    with make_runtime(name, path) as runtime, \
            Gallery.open(gallery_dir, model=model_identity(runtime), writable=True) as gallery:
        tally = Tally(len(files), known=None if allow_duplicates else _content_hashes(gallery), base=len(gallery))
        try:
            results = (engine or LocalEngine()).results(runtime, files, tally.known, batch_size=batch_size,
                                                        chunk=commit_every)
            add_results(results, lambda dim: gallery, tally, commit_every=commit_every, progress=progress,
                        label=runtime.name)
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


@contextlib.contextmanager
def new_gallery_folder(out: str | Path, *, inputs: list, overwrite: bool, option: str = "-o"):
    """A temporary folder next to `out` to write a new gallery into, renamed to `out` when the block ends without
    an error (and deleted either way): a gallery exists complete or not at all. An existing `out` is refused
    unless `overwrite`, which replaces a gallery only (never a folder of anything else, nor one holding one of
    `inputs`), and only while no one (a running server) holds it."""
    out = Path(out)
    refuse_own_input(out, inputs, option=option)
    if out.exists() and not overwrite:
        raise ReidExportError(f"{out} already exists; pass --overwrite to replace it, or add to it with "
                              "`reid-export index add`")
    refuse_replacing(out, own=_replaceable, kind="a gallery folder", option=option,
                     why=f"no {MANIFEST} of `reid-export index build` in it")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
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


@dataclass
class Embedded:
    """One image file as an engine hands it back, in the order given: its bytes and the model's outputs for it,
    or why it was not embedded."""
    file: ImageFile
    data: bytes = b""
    sha256: str = ""  # of `data`
    outputs: dict[str, np.ndarray] | None = None  # one row per output ("embedding"[, "attributes"])
    reason: str = ""  # unreadable or undecodable: why (then nothing else is set but `file`)
    known: bool = False  # skipped before decoding: its bytes were in the `known` set the engine was given


class Engine(Protocol):
    """What decodes and embeds image files for an index command (`LocalEngine`, `ray_index.RayEngine`)."""
    name: str

    def results(self, runtime: Runtime, files: list[ImageFile], known: set[str] | None, *, batch_size: int,
                chunk: int) -> Iterator[Embedded]:
        """One `Embedded` per file, in the order of `files`, embedded by `runtime`'s model (an active runtime: an
        engine may run it, or make more of the same artefact elsewhere). A file whose sha256 is in `known` (which
        may grow while the results are read) may be handed back `known` without being decoded. `chunk`: files
        held in memory at a time, where the engine reads them itself."""


class LocalEngine:
    """Decoding and embedding in this process on the caller's runtime: `chunk` files are read and decoded (on
    threads), then embedded `batch_size` at a time. Files already `known` are not decoded."""
    name = "local"

    def results(self, runtime: Runtime, files: list[ImageFile], known: set[str] | None, *, batch_size: int,
                chunk: int) -> Iterator[Embedded]:
        for start in range(0, len(files), max(1, chunk)):
            read = [read_file(f) for f in files[start:start + max(1, chunk)]]
            for r in read:
                r.known = not r.reason and known is not None and r.sha256 in known
            todo = [r for r in read if not r.reason and not r.known]
            pixels, failed = decode_readable([named_bytes(r.file, r.data) for r in todo], runtime.contract,
                                             progress=False)
            reasons = dict(failed)
            decoded = [r for i, r in enumerate(todo) if i not in reasons]
            for i, r in enumerate(todo):
                r.reason = reasons.get(i, "")
            row_of = {id(r): row for row, r in enumerate(decoded)}
            for r in read:  # embedded a batch at a time, as the results are read
                row = row_of.get(id(r))
                if row is not None and row % batch_size == 0:
                    outputs = embed_arrays(runtime, pixels[row:row + batch_size], batch_size=batch_size)
                    for j, d in enumerate(decoded[row:row + batch_size]):
                        d.outputs = {key: value[j] for key, value in outputs.items()}
                yield r


def read_file(f: ImageFile) -> Embedded:
    """The bytes and sha256 of an image file, or why it cannot be read."""
    try:
        data = f.path.read_bytes()
    except OSError as e:
        return Embedded(f, reason=e.strerror or str(e))
    return Embedded(f, data=data, sha256=hashlib.sha256(data).hexdigest())


def add_results(results: Iterator[Embedded], gallery_for, tally: "Tally", *, commit_every: int, progress: bool,
                label: str) -> Gallery | None:
    """Add an engine's results to a gallery, one commit per `commit_every` files; `gallery_for(dim)` gives the
    gallery (called once, at the first commit, when the embedding size is known; None if nothing was added).
    Unreadable files and duplicates (per `tally.known`, which grows with every file kept) are skipped and
    recorded in `tally`. The writes happen here, in the calling process, whatever engine computed the results."""
    gallery, pending, seen, step = None, [], 0, max(1, commit_every)
    first = ""
    with progress_bar(f"indexing {tally.total} images ({label})", tally.total, enabled=progress) as advance:
        for r in results:
            if seen % step == 0:
                first = r.file.path.name
            seen += 1
            tally.at = first + (f" .. {r.file.path.name}" if r.file.path.name != first else "")
            if r.reason:
                tally.unreadable.append((r.file.path, r.reason))
            elif r.known or (tally.known is not None and r.sha256 in tally.known):
                tally.duplicates.append(r.file.path.name)
            else:
                if tally.known is not None:
                    tally.known.add(r.sha256)
                pending.append(r)
            advance()
            if pending and (seen % step == 0 or seen == tally.total):
                gallery = _commit(pending, gallery or gallery_for(len(pending[0].outputs["embedding"])))
                tally.added += len(pending)
                pending = []
    return gallery


def remove_from_gallery(gallery_dir: str | Path, item_ids: list[str]) -> int:
    """Remove items by id (embeddings and crops leave the disk); returns the gallery's new size."""
    with Gallery.open(gallery_dir, writable=True) as gallery:
        gallery.remove(list(item_ids))
        return len(gallery)


@dataclass
class Tally:
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


def _commit(pending: list[Embedded], gallery: Gallery) -> Gallery:
    """One gallery commit of embedded files; a file that is a migrated item's crop keeps its id, source and time."""
    outputs = {key: np.stack([r.outputs[key] for r in pending]) for key in pending[0].outputs}
    new = []
    for r, codes in zip(pending, attribute_codes(outputs)):
        origin = r.file.origin
        new.append(NewItem(data=r.data, suffix=r.file.path.suffix, source=origin.source if origin else r.file.path.name,
                           pid=r.file.pid, camid=r.file.camid, attributes=codes, id=origin.id if origin else None,
                           added_at=origin.added_at if origin else None))
    gallery.add(new, outputs["embedding"])
    return gallery


def named_bytes(f: ImageFile, data: bytes) -> io.BytesIO:
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


def _stopped(gallery: Gallery, tally: Tally) -> str:
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
