"""The gallery folder: the people a query is searched against, with the model that embedded them.

    GALLERY/gallery.json        manifest: format, the model (sha256, contract, runtime), items, shard files
    GALLERY/shards/NNNNNN-T.npy embeddings (float32, one row per item), one shard per commit
    GALLERY/crops/ID.jpg        the stored image of each item

Every change is a commit: new crops and shards are written first (atomically, each), then the manifest
is replaced atomically, then files no manifest names any more are deleted. A process killed at any
point leaves the old manifest or the new one, both pointing at complete files; the next writer deletes
the leftovers, so a removed person's embedding and crop do not stay on disk. One writer at a time holds
the folder's lock (`files.output_lock`).

Item ids are random and opaque (16 hex digits); they name files inside the gallery only, never a path
given by a user. A gallery opened with another model (sha256 or contract) is refused naming both.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..artefacts.tensorrt_sidecar import file_sha256
from ..contract import Preprocess
from ..errors import ReidExportError
from ..files import atomic_path, output_lock, write_bytes, write_text

__all__ = ["Gallery", "GalleryItem", "GalleryError", "ModelIdentity", "model_identity", "MANIFEST", "ITEM_ID",
           "IMAGE_TYPES"]

MANIFEST = "gallery.json"
FORMAT = "reid-export-gallery"
VERSION = 1
ITEM_ID = re.compile(r"^[0-9a-f]{16}$")  # what every item id looks like; anything else is not an item
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


@dataclass(frozen=True)
class NewItem:
    """One image to add: its bytes (stored as the crop), suffix, source name and labels."""
    data: bytes
    suffix: str
    source: str
    pid: int | None = None
    camid: int | None = None
    attributes: list[int] | None = None


def model_identity(runtime) -> ModelIdentity:
    """The identity of an active runtime's artefact: its file's sha256 and the runtime's contract."""
    path = Path(runtime.artefact)
    return ModelIdentity(sha256=file_sha256(path), contract=runtime.contract.to_dict(), name=path.name,
                         runtime=runtime.name, precision=runtime.precision)


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

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, model: ModelIdentity, dim: int) -> "Gallery":
        """A new, empty, writable gallery in `root` (which must not hold a gallery already)."""
        root = Path(root)
        if (root / MANIFEST).exists():
            raise GalleryError(f"{root} already holds a gallery; add to it with `reid-export index add` or choose "
                               "another folder")
        for sub in ("shards", "crops"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        manifest = {"format": FORMAT, "version": VERSION, "model": asdict(model), "dim": int(dim), "generation": 0,
                    "shards": [], "items": []}
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
        """The stored crop of an item: always a file inside GALLERY/crops/, whatever `item_id` holds."""
        return self.root / "crops" / self.item(item_id).image

    def camids(self) -> np.ndarray:
        """Camera per item (-1 where unknown)."""
        return np.array([-1 if item.camid is None else item.camid for item in self.items], dtype=np.int64)

    # -- writing -------------------------------------------------------------------------
    def add(self, new: list[NewItem], embeddings: np.ndarray) -> list[GalleryItem]:
        """Store `new` with their embeddings in one commit; returns the items made."""
        self._require_writable()
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.shape != (len(new), self.dim):
            raise GalleryError(f"{self.root}: {len(new)} items need embeddings of shape ({len(new)}, {self.dim}), "
                               f"got {embeddings.shape}")
        if not new:
            return []
        items = []
        for entry in new:
            suffix = entry.suffix.lower() if entry.suffix.lower() in IMAGE_TYPES else ".jpg"
            item_id = secrets.token_hex(8)
            items.append(GalleryItem(id=item_id, image=item_id + suffix, source=Path(entry.source).name,
                                     pid=entry.pid, camid=entry.camid, attributes=entry.attributes))
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
                    "generation": generation, "shards": shards, "items": [asdict(item) for item in items]}
        write_text(self.root / MANIFEST, json.dumps(manifest))
        self.generation, self.items, self._shards, self.embeddings = generation, items, shards, embeddings
        self._index = {item.id: i for i, item in enumerate(items)}
        self._delete_unreferenced()

    def _delete_unreferenced(self) -> None:
        """Delete crops and shards no manifest names (removed items, or a killed writer's leftovers)."""
        wanted = {"crops": {item.image for item in self.items}, "shards": {s["file"] for s in self._shards}}
        for sub, names in wanted.items():
            folder = self.root / sub
            folder.mkdir(exist_ok=True)
            for path in folder.iterdir():
                if path.name not in names:
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)


def check_model(root: Path, built_with: ModelIdentity, given: ModelIdentity) -> None:
    """Refuse a model other than the one the gallery was built with, naming both."""
    if built_with.sha256 == given.sha256 and built_with.contract == given.contract:
        return
    what = "sha256" if built_with.sha256 != given.sha256 else "preprocessing contract"
    raise GalleryError(f"gallery {root} was built with {built_with.describe()}, but the model given is "
                       f"{given.describe()} (the {what} differs): embeddings of different models cannot be compared. "
                       "Serve the model the gallery was built with, or rebuild it with `reid-export index build`")


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
        manifest["items"], manifest["shards"], manifest["dim"]  # noqa: B018 - presence check
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise GalleryError(f"{path}: not a gallery manifest written by reid-export ({e}); rebuild the gallery "
                           "with `reid-export index build`") from None
    return manifest


def _load_embeddings(root: Path, manifest: dict) -> np.ndarray:
    dim = int(manifest["dim"])
    parts = []
    for shard in manifest["shards"]:
        path = root / "shards" / shard["file"]
        try:
            rows = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise GalleryError(f"{root}: embedding shard {path.name} is missing or unreadable ({e}); the gallery "
                               "was changed by hand: rebuild it with `reid-export index build`") from None
        if rows.shape != (len(shard["ids"]), dim):
            raise GalleryError(f"{root}: shard {path.name} holds {rows.shape}, the manifest expects "
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
