"""The Re-ID service without HTTP: a runtime behind a dynamic batcher, a gallery folder and a vector store.

    service = ReidService(ServeSettings(model="engines/model.onnx", gallery="runs/gallery"))
    await service.start()
    hits = await service.search(pixels, k=10, exclude_camera=1)
    await service.stop()          # drains queued inference; gallery writes are committed before they answer

The app (`app.py`) turns HTTP requests into these calls. Whatever the bench ran is what serves: the
runtime comes from `runtimes.make_runtime` for the same `--model` spec, and the gallery must have been
built with the same artefact (sha256 and contract), or start-up is refused naming both.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.attributes import ATTRIBUTE_CODES, ATTRIBUTE_NAMES
from ..data.market1501 import parse_name
from ..errors import ReidExportError
from ..options import number, whole
from ..runtimes import capabilities, make_runtime, parse_model_spec, runtime_names
from .batching import BatchingSettings, DynamicBatcher
from .gallery import Gallery, GalleryItem, NewItem, model_identity
from .indexing import attribute_codes
from .security import check_hosts, check_origins, check_token, read_token_file
from .stores import STORES, EmbeddedStore, GalleryStore
from .uploads import CAMID_RANGE, PID_RANGE, UploadLimits, check_id

__all__ = ["ServeSettings", "ReidService", "MAX_K", "readable_attributes", "make_store", "lane_plan"]

MAX_K = 1000  # largest k a search may ask for


@dataclass(frozen=True)
class ServeSettings:
    model: str  # PATH or RUNTIME=PATH, as for `reid-export bench`
    gallery: str | Path  # a gallery folder written by `reid-export index build`
    host: str = "127.0.0.1"  # address to bind; a non-loopback one needs a token
    port: int = 8000  # 0: any free port
    # when set, every endpoint but /healthz (and the page shell) needs `Bearer TOKEN`; never shown (repr included)
    token: str | None = field(default=None, repr=False)
    token_file: str | Path | None = None  # the token from this file's first line instead (read here, once)
    batching: BatchingSettings = field(default_factory=BatchingSettings)
    limits: UploadLimits = field(default_factory=UploadLimits)
    store: str = "embedded"  # embedded | milvus
    milvus_uri: str | None = None  # milvus: http://HOST:19530, or a milvus-lite .db file (default GALLERY/milvus.db)
    faiss: bool = False  # embedded store: rank with a faiss flat index
    # Host names answered besides loopback and the bound address ("*": any); a tuple or comma-separated text
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()  # origins whose pages may call the API (CORS, and changes); "*": any; same
    header_timeout_s: float = 20.0  # a request head must arrive within this (slowloris)
    body_timeout_s: float = 30.0  # longest wait for the next piece of a request body
    max_connections: int = 200  # connections at once; more get 503

    def __post_init__(self) -> None:
        whole(self.port, "--port", low=0, high=65535)
        number(self.header_timeout_s, "--header-timeout-s", low=0, above=True, high=3600)
        number(self.body_timeout_s, "--body-timeout-s", low=0, above=True, high=3600)
        whole(self.max_connections, "--max-connections", low=1, high=1_000_000)
        if not isinstance(self.host, str) or not self.host.strip():
            raise ReidExportError(f"--host takes an address to bind (127.0.0.1, ::1, 0.0.0.0, a name); "
                                  f"got {self.host!r}")
        object.__setattr__(self, "allowed_hosts", check_hosts(self.allowed_hosts))
        object.__setattr__(self, "cors_origins", check_origins(self.cors_origins))
        if self.token_file is not None:
            if self.token:
                raise ReidExportError("--token and --token-file both given; keep --token-file (the command line "
                                      "is visible to other users of the machine)")
            object.__setattr__(self, "token", read_token_file(self.token_file))
        elif self.token:
            check_token(self.token, "--token")


class ReidService:
    def __init__(self, settings: ServeSettings, *, runtime=None, on_batch=None):
        self.settings = settings
        self.runtime = runtime  # tests may hand in a runtime; otherwise made from settings.model at start
        self.on_batch = on_batch
        self.gallery: Gallery | None = None
        self.store: GalleryStore | None = None
        self.batcher: DynamicBatcher | None = None
        self.lanes: list = []  # more instances of the model for load (BatchingSettings.instances)
        self._write_lock = threading.Lock()  # one gallery change at a time (commits run in threads)
        self._blas_limit = None
        self._views: dict[str, dict] = {}  # item id -> its JSON view (items never change; removal drops it)
        self.ready = False

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._blas_limit = _one_blas_thread()
        try:
            await asyncio.to_thread(self._open)
        except BaseException:  # a refused gallery or model: the process's BLAS as it was
            self._restore_blas()
            raise
        self.batcher = DynamicBatcher(self.runtime, self.settings.batching, on_batch=self.on_batch,
                                      postprocess=self._search_many, lanes=self.lanes)
        await self.batcher.start()
        self.ready = True

    def _open(self) -> None:
        if self.runtime is None:
            name, path = parse_model_spec(self.settings.model)
            lanes, threads = lane_plan(name, self.settings.batching.instances)
            # with lanes the all-core instance runs only alone, so its threads may spin between operators as in
            # the bench; alone under load, idle ONNX Runtime threads would spin on cores HTTP and decoding need
            options = {"spinning": bool(lanes)} if "spinning" in capabilities(name).options else {}
            self.runtime = make_runtime(name, path, **options)
            # a lane: `threads` intra-op threads that neither spin (ONNX Runtime) nor stay pinned to a core (OpenVINO)
            lane = {k: v for k, v in (("threads", threads), ("spinning", False), ("pinning", False))
                    if k in capabilities(name).options}
            self.lanes = [make_runtime(name, path, **lane) for _ in range(lanes)]
        self.runtime.activate()
        for lane in self.lanes:
            lane.activate()
        self.gallery = Gallery.open(self.settings.gallery, model=model_identity(self.runtime), writable=True)
        options = {"faiss": self.settings.faiss} if self.settings.store == "embedded" else \
            {"uri": self.settings.milvus_uri or str(Path(self.settings.gallery) / "milvus.db")}
        self.store = make_store(self.settings.store, **options)
        self.store.sync(self.gallery.ids, self.gallery.embeddings, self.gallery.camids())

    async def stop(self) -> None:
        """Finish queued inference and in-flight gallery writes, then release everything."""
        self.ready = False
        if self.batcher is not None:
            await self.batcher.stop()
        await asyncio.to_thread(self._close)
        self._restore_blas()

    def _restore_blas(self) -> None:
        if self._blas_limit is not None:
            self._blas_limit.restore_original_limits()
            self._blas_limit = None

    def _close(self) -> None:
        with self._write_lock:  # waits for a commit in progress
            if self.store is not None:
                self.store.close()
            if self.gallery is not None:
                self.gallery.close()
            if self.runtime is not None:
                self.runtime.deactivate()
            for lane in self.lanes:
                lane.deactivate()

    # -- what the endpoints do ---------------------------------------------------------------
    @property
    def contract(self):
        return self.runtime.contract

    def describe(self) -> dict:
        c = self.runtime.contract
        cameras = sorted({item.camid for item in self.gallery.items if item.camid is not None}) if self.gallery else []
        return {"runtime": self.runtime.name, "provider": self.runtime.provider, "precision": self.runtime.precision,
                "model": self.gallery.model.name if self.gallery else "", "model_sha256": self.gallery.model.sha256
                if self.gallery else "", "contract": c.to_dict(), "input": f"{c.height}x{c.width}",
                "gallery_items": len(self.gallery) if self.gallery else 0, "cameras": cameras,
                "store": self.settings.store, "max_k": MAX_K,
                "batching": {"enabled": self.settings.batching.enabled, "max_batch": self.settings.batching.max_batch,
                             "max_delay_ms": self.settings.batching.max_delay_ms,
                             "instances": len(self.lanes) or 1}}

    async def embed(self, pixels: list[np.ndarray], ticket=None) -> dict[str, np.ndarray]:
        return (await self.batcher.run(np.stack(pixels), ticket=ticket))[0]

    async def search(self, pixels: np.ndarray, k: int, exclude_camera: int | None = None,
                     ticket=None) -> tuple[dict, list[dict]]:
        """`ticket`: from `batcher.announce()` when the request was announced on arrival.
        Returns the query's attributes ({"attributes": ...} when the model has them) and the ranked items."""
        _, (query, hits) = await self.batcher.run(pixels[None], (k, exclude_camera), ticket=ticket)
        results = []
        for rank, (item_id, distance) in enumerate(hits, start=1):
            view = self._view(item_id)
            if view is not None:  # a concurrent delete may have removed it since the search
                results.append({"rank": rank, "distance": distance, **view})
        return query, results

    def _view(self, item_id: str) -> dict | None:
        view = self._views.get(item_id)
        if view is None and item_id in self.gallery:
            view = self._views[item_id] = self.item_view(self.gallery.item(item_id))
        if item_id not in self.gallery:  # removed meanwhile: nothing of it stays in memory either
            self._views.pop(item_id, None)
            return None
        return view

    def _search_many(self, outputs: list[dict], tasks: list) -> list:
        """On the inference thread: one store search per camera filter for every search request of a batch,
        and the queries' attributes decoded together. Per search request: ({"attributes": ...} when the model
        has them, [(item id, distance), ...])."""
        results: list = [None] * len(outputs)
        groups: dict = {}
        for i, task in enumerate(tasks):
            if task is not None:
                groups.setdefault(task[1], []).append(i)
        for exclude_camera, members in groups.items():
            k = max(tasks[i][0] for i in members)
            hits = self.store.search(np.concatenate([outputs[i]["embedding"] for i in members]), k,
                                     exclude_camera=exclude_camera)
            for i, row in zip(members, hits):
                results[i] = ({}, row[:tasks[i][0]])
        searches = [i for i, task in enumerate(tasks) if task is not None]
        if searches and "attributes" in outputs[searches[0]]:
            codes = attribute_codes({"attributes": np.concatenate([outputs[i]["attributes"] for i in searches])})
            for i, row in zip(searches, codes):
                results[i][0]["attributes"] = readable_attributes(row)
        return results

    async def add(self, uploads: list[tuple[np.ndarray, bytes, str, str]], camid: int | None = None,
                  pid: int | None = None, ticket=None) -> list[dict]:
        """uploads: (pixels, original bytes, suffix, file name). pid/camid default to what the name carries.
        Every id is checked (`UploadError` 422) before the model runs; a failed add commits nothing."""
        labels = [_labels(name, pid, camid) for _, _, _, name in uploads]
        outputs = (await self.batcher.run(np.stack([u[0] for u in uploads]), ticket=ticket))[0]
        codes = attribute_codes(outputs)
        new = [NewItem(data=data, suffix=suffix, source=name or "upload", pid=item_pid, camid=item_camid,
                       attributes=attributes)
               for (_, data, suffix, name), (item_pid, item_camid), attributes in zip(uploads, labels, codes)]
        items = await asyncio.to_thread(self._add, new, outputs["embedding"])
        return [self.item_view(item) for item in items]

    def _add(self, new: list[NewItem], embeddings: np.ndarray) -> list[GalleryItem]:
        with self._write_lock:
            items = self.gallery.add(new, embeddings)
            try:
                self.store.add([i.id for i in items], embeddings, [-1 if i.camid is None else i.camid for i in items])
            except BaseException:  # the store refused them (Milvus down, ...): the gallery's commit is undone
                self.gallery.remove([i.id for i in items])
                raise
            return items

    async def remove(self, item_id: str) -> dict:
        return self.item_view(await asyncio.to_thread(self._remove, item_id))

    def _remove(self, item_id: str) -> GalleryItem:
        with self._write_lock:
            item = self.gallery.item(item_id)
            self.store.remove([item_id])  # out of the search first, then off the disk
            self.gallery.remove([item_id])
            self._views.pop(item_id, None)
            return item

    def list_items(self, offset: int, limit: int) -> dict:
        items = self.gallery.items[offset:offset + limit]
        return {"total": len(self.gallery), "offset": offset, "items": [self.item_view(i) for i in items]}

    def item_view(self, item: GalleryItem) -> dict:
        return {"id": item.id, "pid": item.pid, "camid": item.camid, "source": item.source,
                "attributes": readable_attributes(item.attributes), "image_url": f"/v1/gallery/{item.id}/image"}


def lane_plan(runtime_name: str, instances: int) -> tuple[int, int]:
    """(lanes, intra-op threads per lane) for `BatchingSettings.instances` on this machine.

    Lanes are more sessions (compiled models) of the model, one thread each by default (0: one per core); 1 means
    none (one all-core instance). Only runtimes whose registry entry declares `lanes` have them (ONNX Runtime and
    OpenVINO on CPU); the others run one instance: their threads are process-wide (torch) or on a device."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    has_lanes = capabilities(runtime_name).lanes
    if instances == 1 or (instances == 0 and (not has_lanes or cores < 2)):
        return 0, 0
    if not has_lanes:
        raise ReidExportError(f"--instances {instances}: more model instances (lanes) are for the CPU runtimes "
                              f"{', '.join(runtime_names(lanes=True))}; {runtime_name} runs one instance "
                              "(use --instances 1)")
    lanes = instances or cores
    return lanes, max(1, cores // lanes)


def _one_blas_thread():
    """numpy's BLAS down to one thread while the service runs (undone on stop); None without threadpoolctl.

    The gallery search is one small matrix product per batch, and OpenBLAS's second thread spins after
    each one: on 2 cores that took 4.4 ms of CPU per request at concurrency 32 (benchmarks/serve_load.py),
    CPU the model and the HTTP work need. One thread ranks a batch of 32 queries in about a millisecond."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=1, user_api="blas")


def make_store(kind: str = "embedded", **options) -> GalleryStore:
    """`embedded` (options: faiss) or `milvus` (options: uri, collection, token)."""
    if kind == "embedded":
        return EmbeddedStore(**options)
    if kind == "milvus":
        from .store_milvus import MilvusStore  # lazy: pymilvus

        return MilvusStore(**options)
    raise ReidExportError(f"unknown gallery store {kind!r}; choose one of {', '.join(STORES)}")


def readable_attributes(codes: list[int] | None) -> dict[str, str] | None:
    """27 codes -> {name: meaning}, e.g. {"gender": "female", "age": "adult", "upblack": "yes", ...}."""
    if codes is None:
        return None
    return {name: ATTRIBUTE_CODES[name].get(int(code), str(code)) for name, code in zip(ATTRIBUTE_NAMES, codes)}


def _labels(name: str, pid: int | None, camid: int | None) -> tuple[int | None, int | None]:
    """(pid, camid) of one upload: the request's, else what a Market-1501 file name carries; checked."""
    parsed = parse_name(name or "") or (None, None)
    where = f" (read from the file name {name[:80]!r}; rename it or send the field)"
    return (check_id(pid, "pid", PID_RANGE) if pid is not None else check_id(parsed[0], "pid", PID_RANGE, where),
            check_id(camid, "camid", CAMID_RANGE) if camid is not None else
            check_id(parsed[1], "camid", CAMID_RANGE, where))
