"""Evaluation: the official Market-1501 protocol, attribute metrics, distances, re-ranking, agreement.

* `protocol`: `evaluate_ranking` (CMC, mAP, mINP from a distance matrix), the junk/match rule.
* `embeddings`: `evaluate_embeddings`, the same metrics straight from embeddings (what callers use).
* `distances` (+ `distances_torch` on a GPU): `pairwise_distance`, `topk`.
* `rerank`: k-reciprocal re-ranking.
* `attributes`: attribute accuracy / mA / F1.
* `agreement`: how closely two runtimes' embeddings agree.
"""

from .agreement import embedding_agreement
from .attributes import attribute_metrics, attribute_scores
from .distances import pairwise_distance, stable_argsort, topk
from .embeddings import evaluate_embeddings
from .protocol import evaluate_ranking, is_junk, match_status

__all__ = ["evaluate_ranking", "evaluate_embeddings", "pairwise_distance", "topk", "stable_argsort", "is_junk",
           "match_status", "attribute_metrics", "attribute_scores", "embedding_agreement"]
