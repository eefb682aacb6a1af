"""The gallery's vectors in Milvus, through pymilvus's `MilvusClient`.

    store = MilvusStore(uri="http://milvus:19530")      # a Milvus server or cluster
    store = MilvusStore(uri="runs/gallery.milvus.db")   # milvus-lite: the embedded Milvus, one local file

One collection holds per item its id (primary key), camera, insertion order and vector, with a FLAT
(exact) COSINE index, so results equal `EmbeddedStore`'s up to distance ties. Milvus returns cosine
similarity; it is turned into the distance 1 - similarity. Strong consistency: a search sees every
insert and delete made before it. pymilvus is imported here only (`pip install "reid-export[milvus]"`).
"""

from __future__ import annotations

import numpy as np

from ..errors import ReidExportError
from ..files import redact_url
from .stores import GalleryStore, Hit

__all__ = ["MilvusStore", "MAX_K"]

MAX_K = 16384  # Milvus's largest limit (+ offset) per search
_INSERT_ROWS = 1000  # rows per insert call


class MilvusStore(GalleryStore):
    name = "milvus"

    def __init__(self, uri: str = "reid_gallery.db", *, collection: str = "reid_gallery", token: str = ""):
        try:
            from pymilvus import MilvusClient
        except ImportError as e:
            raise ReidExportError('the Milvus gallery store needs pymilvus (and milvus-lite for a local file): '
                                  'pip install "reid-export[milvus]"') from e
        self.uri, self.collection = str(uri), collection
        try:
            self._client = MilvusClient(uri=self.uri, token=token)
        except Exception as e:  # pymilvus raises its own MilvusException types
            raise ReidExportError(redact_url(f"cannot connect to Milvus at {self.uri} ({e}); check --milvus-uri "
                                             "(http://HOST:19530 for a server, a .db file path for milvus-lite)")) from e
        self._count = 0
        self._next_seq = 0

    def sync(self, ids, embeddings, camids) -> None:
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if self._client.has_collection(self.collection):
            self._client.drop_collection(self.collection)
        self._count, self._next_seq = 0, 0
        self.add(ids, embeddings, camids)  # creates the collection with the first rows (an empty gallery has none)

    def add(self, ids, embeddings, camids) -> None:
        ids = list(ids)
        if not ids:
            return
        if not self._client.has_collection(self.collection):
            self._create(int(np.asarray(embeddings).shape[1]))
        embeddings = np.asarray(embeddings, dtype=np.float32)
        camids = np.asarray(camids, dtype=np.int64)
        for start in range(0, len(ids), _INSERT_ROWS):
            rows = [{"id": ids[i], "camid": int(camids[i]), "seq": self._next_seq + i, "vector": embeddings[i].tolist()}
                    for i in range(start, min(start + _INSERT_ROWS, len(ids)))]
            self._client.insert(self.collection, rows)
        self._next_seq += len(ids)
        self._count += len(ids)

    def remove(self, ids) -> None:
        ids = list(ids)
        if ids and self._client.has_collection(self.collection):
            self._client.delete(self.collection, ids=ids)
            self._count = max(0, self._count - len(ids))

    def __len__(self) -> int:
        return self._count

    def search(self, query, k, *, exclude_camera=None) -> list[list[Hit]]:
        query = np.atleast_2d(np.asarray(query, dtype=np.float32))
        k = min(int(k), self._count, MAX_K)
        if k <= 0 or not self._client.has_collection(self.collection):
            return [[] for _ in query]
        flt = f"camid != {int(exclude_camera)}" if exclude_camera is not None else ""
        results = self._client.search(self.collection, data=query.tolist(), limit=k, filter=flt, anns_field="vector",
                                      output_fields=["seq"], search_params={"metric_type": "COSINE"})
        out = []
        for hits in results:
            ranked = sorted(((1.0 - float(h["distance"]), int(h["entity"]["seq"]), str(h["id"])) for h in hits))
            out.append([(item_id, max(0.0, distance)) for distance, _, item_id in ranked])
        return out

    def close(self) -> None:
        self._client.close()

    def _create(self, dim: int) -> None:
        from pymilvus import DataType

        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("camid", DataType.INT64)
        schema.add_field("seq", DataType.INT64)  # insertion order: breaks distance ties as the embedded store does
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(dim))
        index = self._client.prepare_index_params()
        index.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
        self._client.create_collection(self.collection, schema=schema, index_params=index, consistency_level="Strong")
