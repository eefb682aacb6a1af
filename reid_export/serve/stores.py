"""Vector search over a gallery, behind one small interface with two implementations.

    store = EmbeddedStore()                      # or store_milvus.MilvusStore(uri="http://milvus:19530")
    store.sync(gallery.ids, gallery.embeddings, gallery.camids())
    hits = store.search(query_embeddings, k=10, exclude_camera=3)   # per query: [(id, cosine distance), ...]

* `EmbeddedStore`: in memory, exact cosine top-k with the project's chunked ranking
  (`evaluation.distances.topk`); `faiss=True` ranks with a flat inner-product faiss index instead
  (same ids up to distance ties; distances recomputed exactly).
* `MilvusStore` (`store_milvus`; `service.make_store` picks one by name): the same calls on a Milvus
  collection through pymilvus, for galleries that outgrow one machine;
  `milvus-lite` (a local `.db` file) runs it without a cluster.

The gallery folder stays the source of truth (items, crops, the model); a store holds the vectors and
each item's camera so that `exclude_camera` filters inside the search.
Distances are cosine distances (1 - cosine similarity), smaller is closer; ties go to the item added first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..errors import ReidExportError
from ..evaluation.distances import normalise_rows, pairwise_distance, topk

__all__ = ["GalleryStore", "EmbeddedStore", "STORES", "Hit"]

STORES = ("embedded", "milvus")
Hit = tuple[str, float]  # (item id, cosine distance)


class GalleryStore(ABC):
    """What the service needs from a vector store."""

    name = "store"

    @abstractmethod
    def sync(self, ids: list[str], embeddings: np.ndarray, camids: np.ndarray) -> None:
        """Make the store hold exactly these items (called once at start-up)."""

    @abstractmethod
    def add(self, ids: list[str], embeddings: np.ndarray, camids: np.ndarray) -> None:
        """Append items."""

    @abstractmethod
    def remove(self, ids: list[str]) -> None:
        """Drop items; unknown ids are ignored."""

    @abstractmethod
    def search(self, query: np.ndarray, k: int, *, exclude_camera: int | None = None) -> list[list[Hit]]:
        """The k closest items of each query row (fewer when the store holds fewer), closest first."""

    @abstractmethod
    def __len__(self) -> int:
        ...

    def close(self) -> None:
        """Release connections; the default holds none."""


class EmbeddedStore(GalleryStore):
    """Thread-safe for one writer and many searches: every change swaps in a new snapshot
    (ids, embeddings, cameras) at once, and a search reads one snapshot."""

    name = "embedded"

    def __init__(self, *, faiss: bool = False):
        self.use_faiss = faiss
        # ids, embeddings, cameras, and the embeddings normalised once for the cosine search
        self._state: tuple[list[str], np.ndarray, np.ndarray, np.ndarray] = (
            [], np.zeros((0, 0), np.float32), np.zeros(0, np.int64), np.zeros((0, 0), np.float32))
        self._faiss_indexes: dict = {}  # exclude_camera -> (snapshot, faiss index, rows)

    def sync(self, ids, embeddings, camids) -> None:
        ids = list(ids)
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        dim = embeddings.shape[-1] if embeddings.ndim == 2 else (embeddings.size // max(len(ids), 1))
        embeddings = embeddings.reshape(len(ids), dim)
        self._state = (ids, embeddings, np.asarray(camids, dtype=np.int64).reshape(len(ids)),
                       normalise_rows(embeddings))
        self._faiss_indexes = {}

    def add(self, ids, embeddings, camids) -> None:
        old_ids, old_embeddings, old_camids, _ = self._state
        if not old_ids:
            self.sync(ids, embeddings, camids)
            return
        self.sync(old_ids + list(ids), np.concatenate([old_embeddings, np.asarray(embeddings, np.float32)]),
                  np.concatenate([old_camids, np.asarray(camids, dtype=np.int64)]))

    def remove(self, ids) -> None:
        gone = set(ids)
        old_ids, old_embeddings, old_camids, _ = self._state
        keep = np.array([i not in gone for i in old_ids], dtype=bool)
        self.sync([i for i in old_ids if i not in gone], old_embeddings[keep], old_camids[keep])

    def __len__(self) -> int:
        return len(self._state[0])

    def search(self, query, k, *, exclude_camera=None) -> list[list[Hit]]:
        state = self._state
        ids, embeddings, camids, normalised = state
        query = np.atleast_2d(np.asarray(query, dtype=np.float32))
        rows = np.arange(len(ids)) if exclude_camera is None else np.flatnonzero(camids != int(exclude_camera))
        k = min(int(k), len(rows))
        if k == 0:
            return [[] for _ in query]
        if self.use_faiss:
            order, distances = self._faiss_topk(state, query, rows, k, exclude_camera)
        else:
            subset = normalised if len(rows) == len(ids) else normalised[rows]
            order, distances = topk(query, subset, k=k, metric="cosine", gallery_normalised=True)
        return [[(ids[rows[j]], float(d)) for j, d in zip(o, dist)] for o, dist in zip(order, distances)]

    def _faiss_topk(self, state, query: np.ndarray, rows: np.ndarray, k: int, key) -> tuple[np.ndarray, np.ndarray]:
        try:
            import faiss
        except ImportError as e:
            raise ReidExportError('the faiss gallery search needs faiss: pip install "reid-export[faiss]"') from e
        embeddings, normalised = state[1], state[3]
        cached = self._faiss_indexes.get(key)
        if cached is None or cached[0] is not state:
            index = faiss.IndexFlatIP(embeddings.shape[1])
            index.add(np.ascontiguousarray(normalised[rows]))
            cached = self._faiss_indexes[key] = (state, index)
        # a few extra candidates, then exact distances and the project's tie order decide the final k
        _, candidates = cached[1].search(normalise_rows(query), min(len(rows), k + 8))
        order, out = [], []
        for q, cand in zip(query, candidates):
            cand = np.sort(cand[cand >= 0])
            d = pairwise_distance(q[None], embeddings[rows[cand]], "cosine")[0]
            best = np.lexsort((cand, d))[:k]
            order.append(cand[best])
            out.append(d[best])
        return np.array(order), np.array(out, dtype=np.float32)
