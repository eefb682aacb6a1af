"""Evaluation: the official Market-1501 protocol, attribute metrics, distances, re-ranking, agreement.

* `split`: `Split` (a query/gallery split's paths, pids, camids) and `evaluate(embeddings, split)`, what
  bench, drift, INT8 search and training's validation rank with.
* `protocol`: `evaluate_ranking` (CMC, mAP, mINP from a distance matrix), the junk/match rule.
* `embeddings`: `evaluate_embeddings`, the same metrics straight from query and gallery embeddings.
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
from .split import Evaluation, Split, evaluate

__all__ = ["Split", "Evaluation", "evaluate", "evaluate_ranking", "evaluate_embeddings", "pairwise_distance", "topk",
           "stable_argsort", "is_junk", "match_status", "attribute_metrics", "attribute_scores", "embedding_agreement"]
