"""Re-ID evaluation metrics: CMC, mAP and mINP under the official Market-1501 protocol.

Plain numpy, no I/O. `evaluate_ranking` takes a query x gallery distance matrix and the
person / camera ids of both sides; `evaluation.distances.pairwise_distance` builds that matrix.
`RankingAccumulator` scores the same rankings block by block, for callers that compute the
distances on the fly and never hold the whole matrix (`evaluation.embeddings.evaluate_embeddings`).

The protocol, per query:

* gallery images with pid -1 (junk) are ignored;
* gallery images with the query's pid *and* the query's camera are ignored (the same person
  seen by the same camera is too easy a match);
* everything else stays, distractors (pid 0, "0000" in file names) included, and counts as a
  negative unless its pid equals the query's pid;
* positions ("ranks") are counted in that filtered list, 1-based.

AP is the non-interpolated average precision of torchreid / fast-reid: the mean, over the
query's positives, of the precision at each positive's rank. (The original Market-1501
MATLAB kit interpolates precision between neighbouring recall points, so its mAP differs
from this one by a small fraction of a percent.)

Ranking order: by distance, ties broken by gallery index (lower first), i.e. the order of a
stable argsort. For float32 distances the order is carried by `order_keys`: one int64 per
entry, the distance's order-preserving bits above the gallery index, so that plain integer
comparisons, sorts and partitions give exactly that order.

`is_junk` / `match_status` are the per-pair form of the same rule, for anything that shows a
ranking to a person (`apps.visualize`): one rule, used by metrics and pictures alike.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["evaluate_ranking", "RankingAccumulator", "order_keys", "is_junk", "match_status", "MAX_KEY",
           "JUNK_PID", "DISTRACTOR_PID"]

JUNK_PID = -1  # Market-1501 file names "-1_...": junk, ignored for every query
DISTRACTOR_PID = 0  # "0000_...": distractors, negatives for every query
_CHUNK_ELEMENTS = 1 << 22  # distance-matrix entries scored per block: bounds the per-block bookkeeping
MAX_KEY = np.iinfo(np.int64).max  # above every real key: junk entries and padding
_COUNT_MAX_PAIRS = 64  # a query with more same-pid gallery images sorts instead of counting
_COUNT_ELEMENTS = 1 << 22  # comparisons per counting step: bounds its temporary (4 MB)


def is_junk(query_pid: int, query_camid: int, gallery_pid: int, gallery_camid: int) -> bool:
    """True when the official protocol ignores this gallery image for this query: pid -1, or the
    query's own pid seen by the query's own camera."""
    return gallery_pid == JUNK_PID or (gallery_pid == query_pid and gallery_camid == query_camid)


def match_status(query_pid: int, query_camid: int, gallery_pid: int, gallery_camid: int) -> str:
    """"junk" (ignored, see `is_junk`), "match" (a true positive), or a negative: "distractor" (pid 0)
    or "wrong" (another person)."""
    if is_junk(query_pid, query_camid, gallery_pid, gallery_camid):
        return "junk"
    if gallery_pid == query_pid:
        return "match"
    return "distractor" if gallery_pid == DISTRACTOR_PID else "wrong"


def evaluate_ranking(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
) -> dict:
    """Rank the gallery for every query and score the rankings (Market-1501 protocol).

    Args:
        distmat: distances of shape (num_query, num_gallery); smaller means closer. Any real
            dtype; NaN is rejected, +/-inf is allowed.
        q_pids, g_pids: person ids of the queries and the gallery images; -1 marks junk
            gallery images, 0 marks distractors.
        q_camids, g_camids: camera ids of the queries and the gallery images.
        max_rank: length of the returned CMC curve. When a query's filtered gallery is shorter,
            the curve is padded: a hit stays a hit up to `max_rank`.

    Ties: equal distances are ranked by gallery order, the lower gallery index first
    (the order of `np.argsort(kind="stable")`; -0.0 and 0.0 are equal), so results are
    deterministic and do not depend on the sorting algorithm numpy picks.

    Queries with no positive left after filtering are skipped and counted in
    `num_skipped_queries`; they do not enter any average.

    Returns:
        A dict with `rank1`, `rank5`, `rank10`, `mAP`, `mINP` (percent, 0-100 floats),
        `cmc` (float64 array of length `max_rank`, percent; `cmc[k - 1]` is rank-k accuracy),
        `num_valid_queries` and `num_skipped_queries`.

    Raises:
        ValueError: on mismatched shapes, NaN distances, a non-positive `max_rank`, or when
            no query has a valid positive in the gallery.
    """
    distmat, q_pids, g_pids, q_camids, g_camids = _check_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids, max_rank
    )
    num_query, num_gallery = distmat.shape
    chunk = max(1, _CHUNK_ELEMENTS // max(1, num_gallery))
    accumulator = RankingAccumulator(q_pids, g_pids, q_camids, g_camids)
    for start in range(0, num_query, chunk):
        accumulator.add(distmat[start : start + chunk], start)
    return accumulator.result(max_rank)


class RankingAccumulator:
    """Scores the rankings of a query set block by block; `result()` averages them.

    Feed it every query row exactly once, in blocks of consecutive rows and in any order:
    `add(distances, start)` for a block of the distance matrix, or, for a caller that ranks
    elsewhere (a GPU), `pairs(start, stop)` then `add_positions(...)`. Only the gallery entries
    that share a query's pid matter for the metrics, so each block is reduced to the
    positions of those entries in the ranking; nothing of size num_gallery is kept.

    Args:
        q_pids, g_pids, q_camids, g_camids: as for `evaluate_ranking`: 1-D integer arrays, pids
            and camids of a side of the same length.
    """

    def __init__(self, q_pids, g_pids, q_camids, g_camids):
        ids = {}
        for name, value in (("q_pids", q_pids), ("q_camids", q_camids), ("g_pids", g_pids), ("g_camids", g_camids)):
            arr = np.asarray(value)
            if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
                raise ValueError(f"{name} must be a 1-D array of integer ids, got dtype {arr.dtype}, shape {arr.shape}")
            ids[name] = arr
        for side in ("q", "g"):
            if ids[f"{side}_pids"].shape != ids[f"{side}_camids"].shape:
                raise ValueError(f"{side}_pids and {side}_camids must have the same length, got shapes "
                                 f"{ids[f'{side}_pids'].shape} and {ids[f'{side}_camids'].shape}")
        self.q_pids, self.q_camids, self.g_pids, self.g_camids = ids.values()
        self.junk = self.g_pids == JUNK_PID
        kept = np.flatnonzero(~self.junk)
        # non-junk gallery indices grouped by pid, ascending index within a pid
        self._by_pid = kept[np.argsort(self.g_pids[kept], kind="stable")]
        self._sorted_pids = self.g_pids[self._by_pid]
        self._stats: dict[int, tuple] = {}  # first query row of a block -> per-query statistics

    def pairs(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The non-junk gallery entries sharing the pid of queries `start:stop`.

        Returns `(rows, cols, positive)`: block-local query row (ascending), gallery index
        (ascending within a row), and whether the entry counts (a different camera) or is
        ignored (the query's camera).
        """
        q_pids = self.q_pids[start:stop]
        lo = np.searchsorted(self._sorted_pids, q_pids, side="left")
        counts = np.searchsorted(self._sorted_pids, q_pids, side="right") - lo
        rows = np.repeat(np.arange(q_pids.size), counts)
        offsets = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
        cols = self._by_pid[np.repeat(lo, counts) + offsets]
        positive = self.g_camids[cols] != self.q_camids[start:stop][rows]
        return rows, cols, positive

    def add(self, distances: np.ndarray, start: int) -> None:
        """Score queries `start:start + len(distances)` from their distances to the whole gallery.

        Any real dtype; float32 (and float16) distances are compared as `order_keys`.
        """
        distances = np.asarray(distances)
        stop = start + distances.shape[0]
        rows, cols, positive = self.pairs(start, stop)
        positions = _pair_positions(distances, rows, cols, ~self.junk)
        self.add_positions(start, stop, rows, positions, positive)

    def add_positions(self, start, stop, rows, positions, positive) -> None:
        """Score queries `start:stop` from where `pairs(start, stop)` landed in their rankings.

        Args:
            rows, positive: from `pairs(start, stop)`.
            positions: 0-based place of each pair in its query's ranking of the non-junk
                gallery (the number of non-junk entries ranked ahead of it).
        """
        num_rows = stop - start
        # within a row, pairs in ranking order; ignored ones shift the ranks of those below them
        order = np.lexsort((positions, rows))
        rows, positions, ignored = rows[order], positions[order], ~positive[order]
        ignored_before = np.cumsum(ignored) - ignored  # ignored pairs ahead, counted from block start
        row_first = np.searchsorted(rows, np.arange(num_rows))
        row_first_before = np.append(ignored_before, 0)[row_first]  # same count at each row's start
        ignored_before -= row_first_before[rows]
        keep = ~ignored
        rows = rows[keep]
        # 1-based rank among the query's valid entries; ascending within a row
        pos_rank = (positions[keep] + 1 - ignored_before[keep]).astype(np.float64)

        num_pos = np.bincount(rows, minlength=num_rows)
        row_start = np.concatenate(([0], np.cumsum(num_pos)[:-1]))
        # the j-th positive of a row (1-based) has j positives at or above it: precision = j / rank
        nth = np.arange(rows.size) - row_start[rows] + 1
        ap = np.bincount(rows, weights=nth / pos_rank, minlength=num_rows).astype(np.float64)
        has_pos = num_pos > 0
        ap[has_pos] /= num_pos[has_pos]
        first = np.zeros(num_rows)
        last = np.ones(num_rows)
        first[has_pos] = pos_rank[row_start[has_pos]]
        last[has_pos] = pos_rank[row_start[has_pos] + num_pos[has_pos] - 1]
        self._stats[start] = (first, last, ap, num_pos)

    def result(self, max_rank: int = 50) -> dict:
        """The averages over every query added so far: the dict of `evaluate_ranking`."""
        blocks = [self._stats[start] for start in sorted(self._stats)]
        num_query = sum(len(block[0]) for block in blocks)
        first_rank, last_rank, ap_all, num_pos_all = (
            np.concatenate([block[i] for block in blocks]) if blocks else np.zeros(0) for i in range(4)
        )
        valid = num_pos_all > 0
        num_valid = int(valid.sum())
        if num_valid == 0:
            raise ValueError(
                f"no query has a valid match: all {num_query} queries lack a gallery image with the same "
                "pid from a different camera (after dropping junk pid -1); check that q_pids/g_pids and "
                "q_camids/g_camids come from the same data set split and are not swapped"
            )
        first_rank = first_rank[valid]
        inp = num_pos_all[valid] / last_rank[valid]

        def rank_k(k: int) -> float:
            return float(np.mean(first_rank <= k) * 100.0)

        ks = np.arange(1, max_rank + 1)
        cmc = (first_rank[None, :] <= ks[:, None]).mean(axis=1) * 100.0
        return {
            "rank1": rank_k(1),
            "rank5": rank_k(5),
            "rank10": rank_k(10),
            "mAP": float(ap_all[valid].mean() * 100.0),
            "mINP": float(inp.mean() * 100.0),
            "cmc": cmc,
            "num_valid_queries": num_valid,
            "num_skipped_queries": num_query - num_valid,
        }


def order_keys(distances: np.ndarray, index: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """One int64 per entry whose integer order is the (distance, gallery index) order.

    The high 32 bits hold the float32 distance mapped to a signed integer of the same order
    (sign and magnitude to two's complement: -0.0 and 0.0 both become 0, so they tie as
    floats do); the low 32 bits hold the gallery index. Sorting the keys of a row therefore
    gives exactly `np.argsort(row, kind="stable")` (the index is `key & 0xFFFFFFFF`), and
    `np.partition` picks exactly the k first entries of that order, ties included.
    (This is the classic uint64 trick - flip the sign bit of positives, every bit of
    negatives - moved by 2**63 into int64, which torch can sort on a GPU, and with -0.0
    folded onto 0.0.) NaN has no place in the order: callers reject it.

    Args:
        distances: float32 array of shape (rows, cols).
        index: gallery index of each column, below 2**32; default `arange(cols)`.
        out: int64 array of the same shape to write into (may be a view with contiguous rows).

    Returns:
        `out`, or a new int64 array.
    """
    distances = np.asarray(distances)
    if distances.dtype != np.float32 or distances.ndim != 2:
        raise ValueError(
            f"order_keys needs a 2-D float32 array, got {distances.dtype} of shape {distances.shape}"
        )
    rows, cols = distances.shape
    index = np.arange(cols) if index is None else np.asarray(index)
    if index.shape != (cols,) or (cols and not 0 <= index.min() <= index.max() < 1 << 32):
        raise ValueError(f"index must hold {cols} gallery indices in [0, 2**32), got shape {index.shape}")
    keys = np.empty((rows, cols), np.int64) if out is None else out
    words = keys.view(np.int32)  # two words per key, low word first on little-endian machines
    low, high = (words[:, 0::2], words[:, 1::2]) if sys.byteorder == "little" else (words[:, 1::2], words[:, 0::2])
    low[...] = index.astype(np.uint32).view(np.int32)
    bits = distances.view(np.int32)
    np.bitwise_and(bits, 0x7FFFFFFF, out=high)  # magnitude: ordered like |distance|
    if bits.size and bits.min() < 0:  # sign bits set (distances are usually all >= 0)
        np.negative(high, out=high, where=bits < 0)
    return keys


def _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    distmat = np.asarray(distmat)
    if distmat.ndim != 2:
        raise ValueError(
            f"distmat must be 2-D (num_query, num_gallery), got shape {distmat.shape}"
        )
    if not (np.issubdtype(distmat.dtype, np.floating) or np.issubdtype(distmat.dtype, np.integer)):
        raise ValueError(f"distmat must hold real numbers, got dtype {distmat.dtype}")
    num_query, num_gallery = distmat.shape
    ids = {}
    for name, value, n, side in (
        ("q_pids", q_pids, num_query, "rows (queries)"),
        ("q_camids", q_camids, num_query, "rows (queries)"),
        ("g_pids", g_pids, num_gallery, "columns (gallery)"),
        ("g_camids", g_camids, num_gallery, "columns (gallery)"),
    ):
        arr = np.asarray(value)
        if arr.shape != (n,):
            raise ValueError(
                f"{name} must have shape ({n},) to match the {side} of distmat with shape "
                f"{distmat.shape}, got shape {arr.shape}"
            )
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must hold integer ids, got dtype {arr.dtype}")
        ids[name] = arr
    if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
    if np.issubdtype(distmat.dtype, np.floating) and np.isnan(distmat).any():
        bad = int(np.isnan(distmat).sum())
        raise ValueError(
            f"distmat contains {bad} NaN value(s) out of {distmat.size}; NaN cannot be ranked - "
            "check the embeddings for NaN (e.g. a diverged model or a zero-norm division)"
        )
    return distmat, ids["q_pids"], ids["g_pids"], ids["q_camids"], ids["g_camids"]


def _pair_positions(distances, rows, cols, kept):
    """0-based place of each (row, col) pair in its row's ranking of the kept (non-junk) entries.

    Per query: only the entries ranked at or above its last pair can be ahead of a pair, so
    those are picked out first (one pass over the row); the pairs are then placed among them
    by comparing order keys (float32), or by a (distance, index) lexsort for other dtypes.
    """
    float32 = distances.dtype in (np.float32, np.float16)
    positions = np.empty(rows.size, np.int64)
    bounds = np.searchsorted(rows, np.arange(distances.shape[0] + 1))
    for row in np.flatnonzero(np.diff(bounds)):
        lo, hi = bounds[row], bounds[row + 1]
        values, wanted = distances[row], cols[lo:hi]
        ahead = np.flatnonzero((values <= values[wanted].max()) & kept)  # ascending, holds `wanted`
        if float32:
            positions[lo:hi] = _count_below(_keys(values[ahead], ahead), _keys(values[wanted], wanted))
        else:
            order = np.lexsort((ahead, values[ahead]))
            place = np.empty_like(order)
            place[order] = np.arange(order.size)
            positions[lo:hi] = place[np.searchsorted(ahead, wanted)]
    return positions


def _keys(values, index):
    return order_keys(values.astype(np.float32, copy=False)[None, :], index)[0]


def _count_below(keys, wanted):
    """For each wanted key, how many of `keys` are smaller: counted, or by a sort for many wanted keys."""
    if wanted.size > _COUNT_MAX_PAIRS:
        return np.searchsorted(np.sort(keys), wanted)
    step = max(1, _COUNT_ELEMENTS // max(1, keys.size))  # bounds the comparison temporary
    return np.concatenate([
        np.count_nonzero(keys < wanted[a : a + step, None], axis=1) for a in range(0, wanted.size, step)
    ])


