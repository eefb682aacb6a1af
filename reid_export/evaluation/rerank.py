"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal Encoding", CVPR 2017),
with the conventions of the authors' released code, so re-ranked numbers compare with papers.

Over all P = num_query + num_gallery images, with d the chosen metric (`distances.pairwise_distance`):

* Distance the method works on: D(p, x) = d(p, x)^2 / s_p with s_p = max_y d(y, p)^2, the largest
  squared distance in p's column (the reference squares the distance matrix, divides each column by
  its maximum and transposes; d is symmetric, so s_p is also the largest in p's row). Every step
  below and the final blend use D, not d; a monotone change per query, so rankings by D and d agree.
* N(p, k): p's first k + 1 places over all images (p itself comes first).
* R(p, k) = {x in N(p, k) : p in N(x, k)}: the k-reciprocal neighbours.
* R*(p, k) = R(p, k) together with R(q, k/2) for every q in R(p, k) (p included) whose set lies
  more than two thirds inside it: |R(p, k) & R(q, k/2)| > 2/3 |R(q, k/2)| (strictly greater, as the
  reference; the paper's text does not say). k/2 is round(k1 / 2), half to even.
* V_p[x] = exp(-D(p, x)) / sum_{y in R*} exp(-D(p, y)) for x in R*(p, k), 0 elsewhere: the weights of
  each row sum to 1 (the reference's normalisation; the paper writes the bare kernel).
* Local query expansion: V_p becomes the mean of V_x over p's first k2 places (p included;
  k2 = 1 turns it off). Rows still sum to 1.
* Jaccard distance: d_J(p, g) = 1 - m / (2 - m) with m = sum_x min(V_p[x], V_g[x]): the reference's
  denominator, which is sum max = sum V_p + sum V_g - m once both rows sum to 1.
* Final distance: (1 - lambda) d_J(p, g) + lambda D(p, g) (lambda = 1 returns D alone).

Where the reference's ties or float32 sums round differently, metrics move by far less than 0.01
points (`tests/evaluation/test_rerank.py` checks this against a dense formulation). The metric
sets d: "cosine" (1 - cos, the usual choice on L2-normalised embeddings, what torchreid's cosine
re-ranking squares) or "euclidean" (L2; D is then the squared-L2 of the reid-strong-baseline and
fast-reid variants, normalised the same way).

Cost and memory: the neighbour lists need every image against every other, (Q + G)^2 * dim
multiply-adds twice (`distances.topk` in blocks, and one blockwise pass for the column maxima), so
memory stays O((Q + G) k1^2) plus the (Q, G) result, where the reference holds several (P, P)
matrices; at Market-1501 size (19,281 images, 2048-D) that is several times a plain evaluation.
Above `max_images` images it refuses rather than run for hours.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .blocks import DEFAULT_CHUNK_BYTES, MIN_BLOCK, check_features, check_metric, distance_block, prepare
from .distances import pairwise_distance, topk

__all__ = ["k_reciprocal_rerank", "MAX_IMAGES"]

MAX_IMAGES = 30_000  # default cap on num_query + num_gallery


def k_reciprocal_rerank(
    q_emb: np.ndarray,
    g_emb: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    *,
    metric: str = "cosine",
    max_images: int = MAX_IMAGES,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> np.ndarray:
    """Re-ranked query-to-gallery distances, shape (num_query, num_gallery), float32, >= 0, with the
    reference code's conventions (module docstring): rank by them, compare them with each other.

    Args:
        q_emb, g_emb: embeddings, (num_query, dim) and (num_gallery, dim).
        k1: size of the k-reciprocal neighbourhoods (the paper's k; 20 on Market-1501).
        k2: neighbours averaged by local query expansion, the image included (1: none).
        lambda_value: weight of the (normalised squared) original distance D, in [0, 1]; 1 returns D.
        metric: distance d, "cosine" or "euclidean", as `distances.pairwise_distance`.
        max_images: refuse more than this many images in total (time grows as its square).
        chunk_bytes: memory cap of a distance block in the neighbour search (`distances.topk`).

    Raises:
        ValueError: bad parameters, or more than `max_images` images.
    """
    check_metric(metric)
    query, gallery = check_features(q_emb, g_emb)
    num_query, num_gallery = query.shape[0], gallery.shape[0]
    total = num_query + num_gallery
    if total > max_images:
        raise ValueError(
            f"k-reciprocal re-ranking compares all {num_query} + {num_gallery} = {total} images with each other "
            f"(time grows as their square), above max_images={max_images}; pass a larger max_images if that "
            "is intended, or re-rank a smaller gallery"
        )
    for name, value, low in (("k1", k1, 1), ("k2", k2, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value < total:
            raise ValueError(f"{name} must be an integer from {low} to num_query + num_gallery - 1 = {total - 1}, got {value!r}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value!r}")

    images = np.concatenate([query, gallery])
    scale = _column_max_squared(images, metric, chunk_bytes)
    original = _normalised(pairwise_distance(query, gallery, metric), scale[:num_query])
    if lambda_value == 1.0:  # nothing left of the Jaccard term
        return original

    neighbours, _ = topk(images, images, k=max(k1, k2) + 1, metric=metric, chunk_bytes=chunk_bytes)
    reciprocal = _reciprocal(neighbours[:, : k1 + 1])
    half = _reciprocal(neighbours[:, : int(np.around(k1 / 2)) + 1])
    expanded = _expand(reciprocal, half)
    weights = _kernel_weights(expanded, images, metric, scale, chunk_bytes)
    averaging = _rows_matrix(neighbours[:, :k2], total, value=1.0 / k2)
    encoded = (averaging @ weights).tocsr()  # local query expansion

    return _blend(original, encoded, num_query, lambda_value)


# -- private helpers -------------------------------------------------------------------


def _rows_matrix(columns: np.ndarray, size: int, value=1.0) -> sp.csr_matrix:
    """Sparse (rows, size) matrix with `value` at each row's listed columns."""
    rows = np.repeat(np.arange(columns.shape[0]), columns.shape[1])
    data = np.full(rows.size, value, np.float32)
    return sp.csr_matrix((data, (rows, columns.ravel())), shape=(columns.shape[0], size))


def _reciprocal(neighbours: np.ndarray) -> sp.csr_matrix:
    """R(p, k) as a 0/1 sparse matrix: x in p's list and p in x's list."""
    lists = neighbours.astype(np.int32)
    mutual = (lists[lists] == np.arange(lists.shape[0], dtype=np.int32)[:, None, None]).any(axis=2)
    rows = np.repeat(np.arange(lists.shape[0]), lists.shape[1])[mutual.ravel()]
    data = np.ones(rows.size, np.float32)
    return sp.csr_matrix((data, (rows, lists.ravel()[mutual.ravel()])), shape=(lists.shape[0],) * 2)


def _expand(reciprocal: sp.csr_matrix, half: sp.csr_matrix) -> sp.csr_matrix:
    """R*(p, k): add R(q, k/2) for each q in R(p, k) that shares more than 2/3 of it with R(p, k)."""
    overlap = (reciprocal @ half.T).multiply(reciprocal).tocsr()  # |R(p,k) & R(q,k/2)| for q in R(p,k)
    half_sizes = np.asarray(half.sum(axis=1)).ravel()
    overlap = overlap.tocoo()
    keep = overlap.data > (2.0 / 3.0) * half_sizes[overlap.col]  # strictly, as the reference
    chosen = sp.csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (overlap.row[keep], overlap.col[keep])), shape=reciprocal.shape
    )
    expanded = (reciprocal + chosen @ half).tocsr()
    expanded.data[:] = 1.0
    return expanded


def _kernel_weights(members: sp.csr_matrix, images: np.ndarray, metric: str, scale: np.ndarray,
                    chunk_bytes: int) -> sp.csr_matrix:
    """V: exp(-D(p, x)) at the members x of R*(p, k), each row divided by its sum; one dot product per member."""
    members = members.tocoo()
    rows, cols = members.row, members.col
    if metric == "cosine":
        norm = np.linalg.norm(images, axis=1, keepdims=True)
        images = images / np.maximum(norm, np.finfo(images.dtype).tiny)
    squares = np.einsum("ij,ij->i", images, images)
    squared = np.empty(rows.size, np.float64)
    step = max(1, chunk_bytes // (2 * images.shape[1] * images.itemsize))
    for a in range(0, rows.size, step):
        r, c = rows[a : a + step], cols[a : a + step]
        dot = np.einsum("ij,ij->i", images[r], images[c])
        if metric == "cosine":
            squared[a : a + step] = np.clip(1.0 - dot, 0.0, 2.0) ** 2
        else:
            squared[a : a + step] = np.maximum(squares[r] + squares[c] - 2 * dot, 0)
    kernel = np.exp(-squared / scale[rows])
    sums = np.bincount(rows, weights=kernel, minlength=members.shape[0])
    return sp.csr_matrix(((kernel / sums[rows]).astype(np.float32), (rows, cols)), shape=members.shape)


def _column_max_squared(images: np.ndarray, metric: str, chunk_bytes: int) -> np.ndarray:
    """s_x = max_y d(y, x)^2 over all images, in row blocks of at most `chunk_bytes`; 1 where it is 0
    (every image identical), so D stays finite."""
    prepared = prepare(images, metric)
    total = images.shape[0]
    step = max(MIN_BLOCK, chunk_bytes // (4 * total))
    largest = np.zeros(total, np.float64)
    for a in range(0, total, step):
        b = min(total, a + step)
        if total - b < MIN_BLOCK:  # no one-row block at the end (GEMV rounds differently)
            b = total
        block = distance_block((prepared[0][a:b], None if prepared[1] is None else prepared[1][a:b]), prepared, metric)
        np.maximum(largest, block.max(axis=0), out=largest)
        if b == total:
            break
    squared = largest**2
    return np.where(squared > 0, squared, 1.0)


def _normalised(distances: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """D = d^2 / s, row by row (float32, in place)."""
    distances **= 2
    distances /= scale[:, None].astype(np.float32)
    return distances


def _blend(original: np.ndarray, encoded: sp.csr_matrix, num_query: int, lambda_value: float) -> np.ndarray:
    """(1 - lambda) Jaccard + lambda D, one query at a time; Jaccard = 1 - m / (2 - m), m = sum of minima."""
    gallery = encoded[num_query:].tocsc()  # columns: image x -> the gallery rows that weigh it
    num_gallery = gallery.shape[0]
    for p in range(num_query):
        start, stop = encoded.indptr[p], encoded.indptr[p + 1]
        columns, weights = encoded.indices[start:stop], encoded.data[start:stop]
        begins, ends = gallery.indptr[columns], gallery.indptr[columns + 1]
        lengths = ends - begins
        picks = np.repeat(begins - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        shared = np.bincount(
            gallery.indices[picks],
            weights=np.minimum(gallery.data[picks], np.repeat(weights, lengths)),
            minlength=num_gallery,
        )
        jaccard = np.maximum(1.0 - shared / (2.0 - shared), 0.0)  # >= 0 despite rounding
        original[p] = lambda_value * original[p] + (1.0 - lambda_value) * jaccard
    return original
