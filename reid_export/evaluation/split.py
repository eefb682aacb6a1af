"""Embed a split, then rank it: the one place that knows which rows are queries and which are gallery.

    split = Split.from_market(load_market1501(root, splits=("query", "gallery")))   # or a validation split
    result = evaluate(embeddings, split)                  # (N, D) in split order: queries, then gallery
    result = evaluate(infer_images(runtime, images), split, attribute_truth=test_split_labels(root))
    result = evaluate(lambda paths: embed(paths), split)  # any function from the split's paths to outputs
    result.rank1, result.mAP, result.attributes.mA        # percent

A `Split` holds the paths, person ids and camera ids of its queries followed by its gallery, and the query
count; `evaluate` ranks the gallery for every query (Market-1501 protocol, `embeddings.evaluate_embeddings`)
and, given the truth and attribute probabilities, scores the attributes (`attributes.attribute_scores`).
Evaluation sits below the runtimes: `evaluate` takes their outputs, or a function that produces them, never a
runtime itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ReidExportError
from .attributes import attribute_scores
from .embeddings import evaluate_embeddings

__all__ = ["Split", "SplitSide", "Evaluation", "AttributeResult", "evaluate", "RANK_KEYS"]

RANK_KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP")


@dataclass(frozen=True, eq=False)
class SplitSide:
    """The queries or the gallery of a `Split`."""

    paths: tuple[Path, ...]
    pids: np.ndarray  # int64 person ids: -1 junk, 0 distractor
    camids: np.ndarray  # int64 camera ids


@dataclass(frozen=True, eq=False)
class Split:
    """Images to rank: queries first, then the gallery, in the order their embeddings come."""

    paths: tuple[Path, ...]  # every image, queries first
    pids: np.ndarray  # int64, one per path: -1 junk, 0 distractor, > 0 a person
    camids: np.ndarray  # int64, one per path
    num_query: int  # the first num_query paths are the queries

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", tuple(Path(p) for p in self.paths))
        for name in ("pids", "camids"):
            value = np.asarray(getattr(self, name))
            if value.shape != (len(self.paths),) or (value.size and not np.issubdtype(value.dtype, np.integer)):
                raise ValueError(f"Split.{name}: expected {len(self.paths)} integer ids (one per path), found "
                                 f"dtype {value.dtype}, shape {value.shape}; build the split with Split.from_samples")
            value = value.astype(np.int64)
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        if not 0 <= self.num_query <= len(self.paths):
            raise ValueError(f"Split.num_query: expected 0..{len(self.paths)} (the number of paths), found "
                             f"{self.num_query}")

    @classmethod
    def from_samples(cls, query: Sequence, gallery: Sequence) -> Split:
        """From two lists of samples with `path`, `pid` and `camid` (`data.market1501.Sample`)."""
        samples = [*query, *gallery]
        return cls(paths=tuple(s.path for s in samples), pids=np.array([s.pid for s in samples], dtype=np.int64),
                   camids=np.array([s.camid for s in samples], dtype=np.int64), num_query=len(query))

    @classmethod
    def from_market(cls, data) -> Split:
        """From anything with `query` and `gallery` sample lists: a loaded Market-1501 folder, the training data
        of either layout (its evaluation split), or a validation split of held-out training ids."""
        if data.query is None or data.gallery is None:
            raise ReidExportError(f"{getattr(data, 'root', 'the data')}: no query/gallery split to rank; a "
                                  "Market-1501 folder needs query/ and bounding_box_test/")
        return cls.from_samples(data.query, data.gallery)

    @property
    def num_gallery(self) -> int:
        return len(self.paths) - self.num_query

    @property
    def query(self) -> SplitSide:
        return self._side(slice(0, self.num_query))

    @property
    def gallery(self) -> SplitSide:
        return self._side(slice(self.num_query, None))

    def divide(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`rows` (one per path, in split order) as (query rows, gallery rows)."""
        if len(rows) != len(self.paths):
            raise ValueError(f"expected {len(self.paths)} rows (one per image of the split), found {len(rows)}")
        return rows[: self.num_query], rows[self.num_query :]

    def _side(self, rows: slice) -> SplitSide:
        return SplitSide(self.paths[rows], self.pids[rows], self.camids[rows])


@dataclass(frozen=True)
class AttributeResult:
    """Attribute scores over the split's images whose person has labels (percent)."""

    mean_accuracy: float  # mean accuracy over the official 12 columns
    mA: float  # label-based mean accuracy, mean of the 27 attributes
    per_attribute: dict  # {name: {"accuracy", "mA", "f1"}}
    num_images: int  # images scored (those with labels)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """What `evaluate` measured; percentages 0-100."""

    rank1: float
    rank5: float
    rank10: float
    mAP: float
    mINP: float
    num_valid_queries: int  # queries with a positive in the gallery (the others enter no average)
    num_skipped_queries: int
    cmc: np.ndarray = field(repr=False)  # cmc[k - 1] is Rank-k accuracy
    seconds: float = 0.0  # wall time of the ranking
    attributes: AttributeResult | None = None  # with attribute_truth and attribute outputs

    def ranking(self, digits: int | None = None) -> dict[str, float]:
        """{rank1, rank5, rank10, mAP, mINP}, rounded to `digits` when given."""
        return {key: float(getattr(self, key)) if digits is None else round(float(getattr(self, key)), digits)
                for key in RANK_KEYS}


def evaluate(source: np.ndarray | Mapping | Callable, split: Split, *, attribute_truth: dict | None = None,
             metric: str = "cosine", device: str = "cpu", rerank: bool = False) -> Evaluation:
    """Rank the gallery of `split` for each of its queries; with `attribute_truth` ({pid: 27 codes}) and
    attribute probabilities among the outputs, also score the attributes.

    `source` is what embedded the split's images, in split order (queries, then gallery): an (N, D) array of
    embeddings, a mapping with "embedding" and optionally "attributes" (N, 30 probabilities), as a runtime's
    `infer_images` returns, or a function from the split's paths to either. Embeddings that are NaN or
    infinite are refused, naming the first image. `metric`, `device`, `rerank`: as `evaluate_embeddings`."""
    outputs = source(list(split.paths)) if callable(source) else source
    embeddings, probabilities = _outputs(outputs)
    _check_embeddings(embeddings, split)
    q_emb, g_emb = split.divide(embeddings)
    query, gallery = split.query, split.gallery
    result = evaluate_embeddings(q_emb, g_emb, query.pids, gallery.pids, query.camids, gallery.camids,
                                 metric=metric, device=device, rerank=rerank)
    attributes = None
    if attribute_truth and probabilities is not None:
        scores = attribute_scores(probabilities, split.pids, attribute_truth)
        if scores is not None:
            attributes = AttributeResult(mean_accuracy=float(scores["mean_accuracy_12"]), mA=float(scores["mA"]),
                                         per_attribute=scores["per_attribute"], num_images=int(scores["num_samples"]))
    return Evaluation(**{key: float(result[key]) for key in RANK_KEYS}, cmc=result["cmc"],
                      num_valid_queries=int(result["num_valid_queries"]),
                      num_skipped_queries=int(result["num_skipped_queries"]), seconds=float(result["seconds"]),
                      attributes=attributes)


def _outputs(outputs) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(outputs, Mapping):
        if "embedding" not in outputs:
            raise ValueError(f"evaluate: expected outputs with an 'embedding' entry, found keys {sorted(outputs)}")
        attributes = outputs.get("attributes")
        return np.asarray(outputs["embedding"]), None if attributes is None else np.asarray(attributes)
    return np.asarray(outputs), None


def _check_embeddings(embeddings: np.ndarray, split: Split) -> None:
    if embeddings.ndim != 2 or len(embeddings) != len(split.paths):
        raise ValueError(f"evaluate: expected embeddings of shape ({len(split.paths)}, dim), one per image of the "
                         f"split, found shape {embeddings.shape}")
    bad = np.flatnonzero(~np.isfinite(embeddings).all(axis=1))
    if len(bad):
        raise ReidExportError(f"{len(bad)} of {len(embeddings)} embeddings are not finite (first: "
                              f"{split.paths[bad[0]].name}); the model outputs NaN/Inf: check its weights (a "
                              "diverged training run?) or precision")
