"""The gallery folder: the people a query is searched against, with the model that embedded them.

    GALLERY/gallery.json        manifest: format, the model (sha256, contract, runtime, arch), items, shard
                                files, and for a migrated gallery its lineage (the gallery and model it came from)
    GALLERY/shards/NNNNNN-T.npy embeddings (float32, one row per item), one shard per commit
    GALLERY/crops/ID.jpg        the stored image of each item

Every change is a commit: new crops and shards are written first (atomically, each), then the manifest
is replaced atomically, then files no manifest names any more are deleted. A process killed at any
point leaves the old manifest or the new one, both pointing at complete files; the next writer deletes
the leftovers, so a removed person's embedding and crop do not stay on disk. One writer at a time holds
the folder's lock (`files.output_lock`).

Item ids are random and opaque (16 hex digits); they name files inside the gallery only, never a path
given by a user. A gallery opened with another model (sha256 or contract) is refused naming both: one
gallery never mixes the embeddings of two models (`reid-export index migrate` moves it to a new one,
keeping ids, labels and the time each item was added, and recording its `lineage`).

The folder is a jail: a manifest is refused when opened unless every crop it names is `ID<image suffix>`
and every shard `NNNNNN-XXXXXXXX.npy`, and `crops/`, `shards/` and the files they name are real folders and
regular files, not symbolic links. Reads and deletes go through a handle on the folder opened without
following links (`O_NOFOLLOW`, `dir_fd`), so a link planted after opening is refused too, never followed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..contract import Preprocess
from ..errors import ReidExportError
from ..files import atomic_path, output_lock, write_bytes, write_text

__all__ = ["Gallery", "GalleryItem", "GalleryError", "ModelIdentity", "model_identity", "MANIFEST", "ITEM_ID",
           "IMAGE_TYPES"]

MANIFEST = "gallery.json"
FORMAT = "reid-export-gallery"
VERSION = 1
ITEM_ID = re.compile(r"^[0-9a-f]{16}$")  # what every item id looks like; anything else is not an item
SHARD_NAME = re.compile(r"[0-9]{6,}-[0-9a-f]{8}\.npy")  # what `_write_shard` names a shard (fullmatch)
IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".bmp": "image/bmp",
               ".webp": "image/webp", ".tif": "image/tiff", ".tiff": "image/tiff", ".gif": "image/gif"}


class GalleryError(ReidExportError):
    """A gallery folder that cannot be used as asked (missing, foreign, another model, unknown item)."""


@dataclass(frozen=True)
class ModelIdentity:
    sha256: str  # of the artefact file
    contract: dict  # Preprocess.to_dict() of the runtime
    name: str = ""  # the artefact's file name, for messages
    runtime: str = ""  # the runtime that embedded the gallery (informative; any runtime of the same file fits)
    precision: str = ""
    arch: str = ""  # resnet50, osnet_x1_0, ... as the artefact says; "" when it does not (or a gallery before it)

    def describe(self) -> str:
        c = self.contract
        return (f"{self.name or 'model'} (sha256 {self.sha256[:12]}, input {c.get('height')}x{c.get('width')}, "
                f"mean {c.get('mean')}, std {c.get('std')})")


@dataclass(frozen=True)
class GalleryItem:
    id: str  # opaque: 16 hex digits
    image: str  # file name under crops/
    source: str  # the file name it came from (no folders)
    pid: int | None = None  # person id, when the file name carries one (Market-1501 naming)
    camid: int | None = None  # camera, when the file name carries one
    attributes: list[int] | None = None  # the 27 Market codes in ATTRIBUTE_NAMES order, when the model has them
    sha256: str | None = None  # of the image bytes (finds duplicates); None in galleries written before it
    added_at: float | None = None  # when it entered the gallery (Unix seconds; kept by a migration); None before it


@dataclass(frozen=True)
class NewItem:
    """One image to add: its bytes (stored as the crop), suffix, source name and labels."""
    data: bytes
    suffix: str
    source: str
    pid: int | None = None
    camid: int | None = None
    attributes: list[int] | None = None
    id: str | None = None  # keep this item id (a migration); None: a new random one
    added_at: float | None = None  # keep this time (a migration); None: now


def model_identity(runtime) -> ModelIdentity:
    """The identity of an active runtime's artefact, as the runtime describes it (`runtime.info.artefact`): its
    sha256 (of the file; for a Triton model, of the config the server reports) and the runtime's contract."""
    artefact = runtime.info.artefact if runtime.info is not None else None
    if artefact is None:
        raise GalleryError(f"{runtime.name}: a gallery is tied to an artefact (a model file or a served model) and "
                           "this runtime runs a model held in memory; export it (reid-export onnx) and give its path")
    return ModelIdentity(sha256=artefact.sha256, contract=runtime.contract.to_dict(), name=artefact.path.name,
                         runtime=runtime.name, precision=runtime.precision, arch=runtime.info.arch or "")


class Gallery:
    """An open gallery folder. Writable galleries hold the folder's lock until `close()`."""

    def __init__(self, root: Path, manifest: dict, embeddings: np.ndarray, lock=None):
        self.root = Path(root)
        self.model = ModelIdentity(**manifest["model"])
        self.dim = int(manifest["dim"])
        self.generation = int(manifest["generation"])
        self.items: list[GalleryItem] = [GalleryItem(**item) for item in manifest["items"]]
        self._shards: list[dict] = manifest["shards"]  # [{"file", "ids"}], rows in item order
        self.embeddings = embeddings  # (len(items), dim) float32, in item order
        self._index = {item.id: i for i, item in enumerate(self.items)}
        self._lock = lock
        # where a migrated gallery came from: {"gallery", "model", "migrated_at"}; None for a gallery built anew
        self.lineage: dict | None = manifest.get("lineage")

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, model: ModelIdentity, dim: int, *, lineage: dict | None = None) -> "Gallery":
        """A new, empty, writable gallery in `root` (which must not hold a gallery already); `lineage`: what a
        migrated gallery came from, kept in its manifest."""
        root = Path(root)
        if (root / MANIFEST).exists():
            raise GalleryError(f"{root} already holds a gallery; add to it with `reid-export index add` or choose "
                               "another folder")
        for sub in ("shards", "crops"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        manifest = {"format": FORMAT, "version": VERSION, "model": asdict(model), "dim": int(dim), "generation": 0,
                    "shards": [], "items": [], **({"lineage": lineage} if lineage else {})}
        write_text(root / MANIFEST, json.dumps(manifest))
        return cls.open(root, writable=True)

    @classmethod
    def open(cls, root: str | Path, *, model: ModelIdentity | None = None, writable: bool = False) -> "Gallery":
        """Open `root`; with `model`, refuse a gallery built with another one. A writable gallery takes the
        folder's lock and deletes files a killed writer left behind."""
        root = Path(root)
        manifest = _read_manifest(root)
        lock = None
        if writable:
            lock = contextlib.ExitStack()
            try:
                lock.enter_context(output_lock(root / MANIFEST))
            except ReidExportError as e:
                raise GalleryError(f"{e}. A running `reid-export serve` holds its gallery: change it through the "
                                   "server's /v1/gallery endpoints, or stop the server first") from None
            manifest = _read_manifest(root)  # re-read under the lock
        try:
            if model is not None:
                check_model(root, ModelIdentity(**manifest["model"]), model)
            _check_files(root, manifest)
            embeddings = _load_embeddings(root, manifest)
            gallery = cls(root, manifest, embeddings, lock)
            if writable:
                gallery._delete_unreferenced()
        except BaseException:
            if lock is not None:
                lock.close()
            raise
        return gallery

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._index

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]

    def item(self, item_id: str) -> GalleryItem:
        if not isinstance(item_id, str) or item_id not in self._index:
            raise GalleryError(f"no gallery item {item_id!r} in {self.root}")
        return self.items[self._index[item_id]]

    def image_path(self, item_id: str) -> Path:
        """The stored crop of an item: always a file inside GALLERY/crops/, whatever `item_id` holds; a crop or
        crops/ turned into a symbolic link since the gallery was opened is refused. To read it, `read_image`."""
        name = self.item(item_id).image
        with _folder(self.root, "crops", missing_ok=True) as crops:
            if crops.is_link(name):
                raise GalleryError(_link_refusal(self.root / "crops" / name, f"the crop of item {item_id}"))
        return self.root / "crops" / name

    def read_image(self, item_id: str) -> bytes:
        """The bytes of an item's stored crop, read without following a symbolic link (planted at any time)."""
        item = self.item(item_id)
        with _folder(self.root, "crops") as crops, crops.open(item.image, f"the crop of item {item_id}") as f:
            return f.read()

    def camids(self) -> np.ndarray:
        """Camera per item (-1 where unknown)."""
        return np.array([-1 if item.camid is None else item.camid for item in self.items], dtype=np.int64)

    # -- writing -------------------------------------------------------------------------
    def add(self, new: list[NewItem], embeddings: np.ndarray) -> list[GalleryItem]:
        """Store `new` with their embeddings in one commit; returns the items made. An item keeps the id and time
        its `NewItem` carries (a migration), else gets a new random id and the current time."""
        self._require_writable()
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.shape != (len(new), self.dim):
            raise GalleryError(f"{self.root}: {len(new)} items need embeddings of shape ({len(new)}, {self.dim}), "
                               f"got {embeddings.shape}")
        if not new:
            return []
        _check_kept_ids(self, new)
        items, now = [], time.time()
        for entry in new:
            suffix = entry.suffix.lower() if entry.suffix.lower() in IMAGE_TYPES else ".jpg"
            item_id = entry.id or secrets.token_hex(8)
            items.append(GalleryItem(id=item_id, image=item_id + suffix, source=Path(entry.source).name,
                                     pid=entry.pid, camid=entry.camid, attributes=entry.attributes,
                                     sha256=hashlib.sha256(entry.data).hexdigest(),
                                     added_at=now if entry.added_at is None else entry.added_at))
            write_bytes(self.root / "crops" / (item_id + suffix), entry.data)
        generation = self.generation + 1
        shard = self._write_shard(generation, embeddings)
        self._commit(generation, self.items + items, self._shards + [{"file": shard, "ids": [i.id for i in items]}],
                     np.concatenate([self.embeddings, embeddings]))
        return items

    def remove(self, item_ids: list[str]) -> list[GalleryItem]:
        """Remove items (embedding rows and crops) in one commit; unknown ids are refused before anything changes."""
        self._require_writable()
        for item_id in item_ids:
            self.item(item_id)
        gone = set(item_ids)
        removed = [item for item in self.items if item.id in gone]
        keep = np.array([item.id not in gone for item in self.items], dtype=bool)
        generation = self.generation + 1
        row_of = self._index
        shards = []
        for shard in self._shards:
            if not gone.intersection(shard["ids"]):
                shards.append(shard)
                continue
            ids = [i for i in shard["ids"] if i not in gone]
            if ids:  # the shard is rewritten without the removed rows, so they leave the disk
                rows = self.embeddings[[row_of[i] for i in ids]]
                shards.append({"file": self._write_shard(generation, rows), "ids": ids})
        self._commit(generation, [item for item in self.items if item.id not in gone], shards, self.embeddings[keep])
        return removed

    # -- the rest --------------------------------------------------------------------------
    def _require_writable(self) -> None:
        if self._lock is None:
            raise GalleryError(f"{self.root} was opened read-only; open it with writable=True to change it")

    def _write_shard(self, generation: int, rows: np.ndarray) -> str:
        name = f"{generation:06d}-{secrets.token_hex(4)}.npy"
        with _open_atomic(self.root / "shards" / name) as f:
            np.save(f, np.ascontiguousarray(rows, dtype=np.float32))
        return name

    def _commit(self, generation: int, items: list[GalleryItem], shards: list[dict], embeddings: np.ndarray) -> None:
        # shard rows follow item order: items are appended per shard, and removal keeps relative order
        manifest = {"format": FORMAT, "version": VERSION, "model": asdict(self.model), "dim": self.dim,
                    "generation": generation, "shards": shards, "items": [asdict(item) for item in items],
                    **({"lineage": self.lineage} if self.lineage else {})}
        write_text(self.root / MANIFEST, json.dumps(manifest))
        self.generation, self.items, self._shards, self.embeddings = generation, items, shards, embeddings
        self._index = {item.id: i for i, item in enumerate(items)}
        self._delete_unreferenced()

    def _delete_unreferenced(self) -> None:
        """Delete crops and shards no manifest names (removed items, or a killed writer's leftovers). Only
        files and links directly in crops/ and shards/ go (a link itself, never what it points to); a
        subfolder there is not reid-export's and stays."""
        wanted = {"crops": {item.image for item in self.items}, "shards": {s["file"] for s in self._shards}}
        for sub, names in wanted.items():
            with contextlib.suppress(FileExistsError):  # a link or a file there: refused just below
                (self.root / sub).mkdir(exist_ok=True)
            with _folder(self.root, sub) as folder:
                for name in folder.names():
                    if name not in names:
                        folder.unlink_file(name)


def check_model(root: Path, built_with: ModelIdentity, given: ModelIdentity) -> None:
    """Refuse a model other than the one the gallery was built with, naming both."""
    if built_with.sha256 == given.sha256 and built_with.contract == given.contract:
        return
    what = "sha256" if built_with.sha256 != given.sha256 else "preprocessing contract"
    raise GalleryError(f"gallery {root} was built with {built_with.describe()}, but the model given is "
                       f"{given.describe()} (the {what} differs): embeddings of different models cannot be compared, "
                       "so one gallery never holds both. Use the model the gallery was built with, or move the "
                       f"gallery to the new model with `reid-export index migrate {root} --model NEW -o NEW_GALLERY` "
                       "(re-embeds every stored crop, keeps ids and labels)")


def _check_kept_ids(gallery: Gallery, new: list[NewItem]) -> None:
    """Ids a migration keeps must look like item ids and be new to the gallery (and to each other)."""
    kept = [entry.id for entry in new if entry.id is not None]
    for item_id in kept:
        if not isinstance(item_id, str) or not ITEM_ID.fullmatch(item_id) or item_id in gallery:
            raise GalleryError(f"{gallery.root}: item id {str(item_id)[:40]!r} to keep is not 16 hex digits or is in "
                               "the gallery already; a migration copies each item of its source once")
    if len(set(kept)) != len(kept):
        raise GalleryError(f"{gallery.root}: the same item id is given twice; each item is copied once")


def _read_manifest(root: Path) -> dict:
    path = root / MANIFEST
    if not path.is_file():
        raise GalleryError(f"{root} is not a gallery (no {MANIFEST}); build one with "
                           "`reid-export index build --data DIR --model MODEL -o GALLERY`")
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, expected {FORMAT!r}")
        if manifest.get("version") != VERSION:
            raise ValueError(f"version {manifest.get('version')!r}; this reid-export reads version {VERSION}")
        Preprocess.from_dict(manifest["model"]["contract"], source=str(path))
        manifest["dim"]  # noqa: B018 - presence check
        _check_names(path, manifest)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise GalleryError(f"{path}: not a gallery manifest written by reid-export ({e}); rebuild the gallery "
                           "with `reid-export index build`") from None
    return manifest


def _check_names(path: Path, manifest: dict) -> None:
    """Every item and shard names a plain file the writer makes (`ID<suffix>`, `NNNNNN-XXXXXXXX.npy`): never an
    absolute path, `..`, a folder, NUL or anything else that could lead out of the gallery. Structure errors
    are ValueError/TypeError (the caller's "not a manifest"); a name that points elsewhere is refused here."""
    items, shards = manifest["items"], manifest["shards"]
    if not isinstance(items, list) or not isinstance(shards, list):
        raise ValueError("its items and shards must be lists")
    seen = set()
    for item in items:
        GalleryItem(**item)  # TypeError: not an item (a field missing or unknown)
        item_id, image = item["id"], item["image"]
        if not isinstance(item_id, str) or not ITEM_ID.fullmatch(item_id) or item_id in seen:
            raise GalleryError(_name_refusal(path, f"item id {str(item_id)[:40]!r} is not 16 hex digits, or "
                                                   "is repeated"))
        seen.add(item_id)
        if not isinstance(image, str) or image not in {item_id + suffix for suffix in IMAGE_TYPES}:
            raise GalleryError(_name_refusal(path, f"item {item_id} names the image {str(image)[:200]!r}, where "
                                                   f"reid-export writes {item_id}.jpg (or another image suffix) "
                                                   "inside crops/"))
    for shard in shards:
        file, ids = shard["file"], shard["ids"]
        if not isinstance(file, str) or not SHARD_NAME.fullmatch(file):
            raise GalleryError(_name_refusal(path, f"embedding shard {str(file)[:200]!r} is not a shard name "
                                                   "reid-export writes (NNNNNN-XXXXXXXX.npy inside shards/)"))
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError(f"shard {file}: its ids must be a list of item ids")


def _check_files(root: Path, manifest: dict) -> None:
    """crops/ and shards/ are real folders, and each crop and shard the manifest names is a regular file in
    them (or missing: a missing shard is refused when loaded), not a symbolic link."""
    named = {"crops": [(item["image"], f"the crop of item {item['id']}") for item in manifest["items"]],
             "shards": [(shard["file"], f"embedding shard {shard['file']}") for shard in manifest["shards"]]}
    for sub, files in named.items():
        with _folder(root, sub, missing_ok=True) as folder:
            for name, what in files:
                folder.require_file(name, what, missing_ok=True)


def _load_embeddings(root: Path, manifest: dict) -> np.ndarray:
    dim = int(manifest["dim"])
    parts = []
    with _folder(root, "shards", missing_ok=not manifest["shards"]) as folder:
        for shard in manifest["shards"]:
            name = shard["file"]
            try:
                with folder.open(name, f"embedding shard {name}") as f:
                    rows = np.load(f, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise GalleryError(f"{root}: embedding shard {name} is unreadable ({e}); the gallery was changed "
                                   "by hand: rebuild it with `reid-export index build`") from None
            if rows.shape != (len(shard["ids"]), dim):
                raise GalleryError(f"{root}: shard {name} holds {rows.shape}, the manifest expects "
                                   f"({len(shard['ids'])}, {dim}); rebuild the gallery")
            parts.append(rows.astype(np.float32, copy=False))
    embeddings = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
    order = [i for shard in manifest["shards"] for i in shard["ids"]]
    if order != [item["id"] for item in manifest["items"]]:
        raise GalleryError(f"{root}: the manifest's items and shards disagree; rebuild the gallery")
    return embeddings


@contextlib.contextmanager
def _open_atomic(path: Path):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows: there the lstat checks stand alone
_READ_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)  # a FIFO never blocks
_DIR_FD = {os.open, os.stat, os.unlink} <= os.supports_dir_fd and os.listdir in os.supports_fd


class _Folder:
    """crops/ or shards/, held open without following a link (`fd`; None where the platform has no `dir_fd`):
    every name is looked up in that very folder, so a link planted at crops/ later changes nothing."""

    def __init__(self, path: Path, fd: int | None):
        self.path, self.fd = path, fd

    def names(self) -> list[str]:
        return os.listdir(self.path if self.fd is None else self.fd)

    def lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(self._at(name), dir_fd=self.fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def is_link(self, name: str) -> bool:
        st = self.lstat(name)
        return st is not None and stat.S_ISLNK(st.st_mode)

    def require_file(self, name: str, what: str, *, missing_ok: bool = False) -> None:
        """Refuse `name` unless it is a regular file here (or, with `missing_ok`, absent)."""
        st = self.lstat(name)
        if st is None and missing_ok:
            return
        if st is None:
            raise GalleryError(f"{what}, {self.path / name}, is missing; the gallery was changed by hand: rebuild it "
                               "with `reid-export index build`")
        if stat.S_ISLNK(st.st_mode):
            raise GalleryError(_link_refusal(self.path / name, what))
        if not stat.S_ISREG(st.st_mode):
            raise GalleryError(f"{what}, {self.path / name}, is not a regular file (a folder, device or pipe); a "
                               "gallery holds only its own files: rebuild it with `reid-export index build`")

    @contextlib.contextmanager
    def open(self, name: str, what: str):
        """`name` opened for reading: a regular file in this folder, never through a link."""
        if self.fd is None:
            self.require_file(name, what)  # no O_NOFOLLOW here: check first
        try:
            fd = os.open(self._at(name), _READ_FLAGS, dir_fd=self.fd)
        except OSError as e:
            self.require_file(name, what)  # a link, missing, or not a file: say which
            raise GalleryError(f"{what}, {self.path / name}, cannot be read ({e.strerror}); check its "
                               "permissions, or rebuild the gallery with `reid-export index build`") from None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise GalleryError(f"{what}, {self.path / name}, is not a regular file; rebuild the gallery with "
                                   "`reid-export index build`")
            yield f

    def unlink_file(self, name: str) -> None:
        """Remove `name` if it is a file or a link (the link itself, never what it points to); folders stay."""
        st = self.lstat(name)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._at(name), dir_fd=self.fd)

    def _at(self, name: str):
        return self.path / name if self.fd is None else name


@contextlib.contextmanager
def _folder(root: Path, sub: str, *, missing_ok: bool = False):
    """`root/sub` as a `_Folder`; refused when it is a symbolic link or not a folder (or missing, unless
    `missing_ok`: then every name in it is missing)."""
    path = root / sub
    what = f"the gallery's {sub}/ folder"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not missing_ok:
            raise GalleryError(f"{what}, {path}, is missing; the gallery was changed by hand: rebuild it with "
                               "`reid-export index build`") from None
        yield _Folder(path, None)
        return
    if stat.S_ISLNK(st.st_mode):
        raise GalleryError(_link_refusal(path, what))
    if not stat.S_ISDIR(st.st_mode):
        raise GalleryError(f"{what}, {path}, is not a folder; rebuild the gallery with `reid-export index build`")
    if not _DIR_FD:
        yield _Folder(path, None)
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
    except OSError as e:  # ELOOP: turned into a link since the check
        raise GalleryError(f"{what}, {path}, cannot be opened as a folder of the gallery ({e.strerror}); rebuild "
                           "the gallery with `reid-export index build`") from None
    try:
        yield _Folder(path, fd)
    finally:
        os.close(fd)


def _link_refusal(path: Path, what: str) -> str:
    return (f"{what}, {path}, is a symbolic link; a gallery reads and deletes only its own files, never through a "
            "link that may lead out of its folder, so it was refused: replace the link by the file itself (copy "
            "the gallery with `cp -rL`), or rebuild it with `reid-export index build`")


def _name_refusal(manifest: Path, what: str) -> str:
    return (f"{manifest}: {what}; a manifest may name only files inside its gallery, so it was refused: rebuild "
            "the gallery with `reid-export index build`")
