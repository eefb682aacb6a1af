"""Re-ID evaluation metrics: CMC, mAP and mINP under the official Market-1501 protocol.

Plain numpy, no I/O. `evaluate_ranking` takes a query x gallery distance matrix and the
person / camera ids of both sides; `reid_export.ranking.pairwise_distance` builds that matrix.

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

`attribute_metrics` scores predicted Market-1501 attribute codes against the true ones:
per-attribute accuracy, label-based mA and F1, the mean accuracy over the 12 columns the
attribute papers report, and mA over all 27 fields.
"""

from __future__ import annotations

import numpy as np

from .data.attributes import ATTRIBUTE_CODES, ATTRIBUTE_NAMES, LOWER_COLOURS, UPPER_COLOURS

__all__ = ["evaluate_ranking", "attribute_metrics", "OFFICIAL_12_COLUMNS"]

_JUNK_PID = -1
_NEGATIVE, _POSITIVE, _IGNORED = 0, 1, 2
_CHUNK_ELEMENTS = 1 << 22  # distance-matrix entries ranked at once: bounds working memory (~70 MB)


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
    (a stable sort, `np.argsort(kind="stable")`), so results are deterministic and do not
    depend on the sorting algorithm numpy picks.

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

    first, last, ap, num_pos = [], [], [], []
    for start in range(0, num_query, chunk):
        stop = min(start + chunk, num_query)
        stats = _rank_chunk(
            distmat[start:stop], q_pids[start:stop], q_camids[start:stop], g_pids, g_camids
        )
        for acc, value in zip((first, last, ap, num_pos), stats):
            acc.append(value)
    first_rank = np.concatenate(first)
    last_rank = np.concatenate(last)
    ap_all = np.concatenate(ap)
    num_pos_all = np.concatenate(num_pos)

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


# -- private helpers -------------------------------------------------------------------


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


def _rank_chunk(distmat, q_pids, q_camids, g_pids, g_camids):
    """Per-query first/last positive rank, AP and positive count for a block of queries.

    Invalid gallery entries are masked, not removed, so every row keeps the same length and
    the work stays vectorised; ranks are counted over the valid entries only.
    """
    # status of each gallery entry for each query, in gallery order
    same_pid = g_pids[None, :] == q_pids[:, None]
    ignored = (g_pids[None, :] == _JUNK_PID) | (same_pid & (g_camids[None, :] == q_camids[:, None]))
    status = np.where(same_pid, np.int8(_POSITIVE), np.int8(_NEGATIVE))
    status[ignored] = _IGNORED

    order = np.argsort(distmat, axis=1, kind="stable")
    status = np.take_along_axis(status, order, axis=1)
    del order

    # 1-based position of each entry among the valid entries of its row
    valid_rank = np.cumsum(status != _IGNORED, axis=1, dtype=np.int32)
    rows, cols = np.nonzero(status == _POSITIVE)  # row-major: positives of a row in rank order
    pos_rank = valid_rank[rows, cols].astype(np.float64)

    num_rows = distmat.shape[0]
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
    return first, last, ap, num_pos


# -- attribute metrics -----------------------------------------------------------------

# the columns of the attribute papers' "mean accuracy": ten fields plus one colour per body half
OFFICIAL_12_COLUMNS: tuple[str, ...] = (
    "gender", "hair", "age", "up", "down", "clothes", "hat", "backpack", "bag", "handbag",
    "upper_colour", "lower_colour",
)
_UPPER_COLUMNS = [ATTRIBUTE_NAMES.index(name) for name in UPPER_COLOURS]
_LOWER_COLUMNS = [ATTRIBUTE_NAMES.index(name) for name in LOWER_COLOURS]


def attribute_metrics(pred_codes: np.ndarray, true_codes: np.ndarray) -> dict:
    """Score predicted attribute codes against the truth; every score is a percentage.

    Args:
        pred_codes, true_codes: integer arrays of shape (N, 27), columns in `ATTRIBUTE_NAMES`
            order, values in the Market codes (1/2, age 1-4), e.g. from `codes_to_array`.

    Definitions. For every field except age, "positive" is code 2 (female, long hair, short
    sleeves, ..., pants, colour marked) and "negative" code 1:

    * `accuracy`: share of samples whose code is right.
    * `mA` (label-based mean accuracy, Li et al. / PETA): (recall of positives + recall of
      negatives) / 2. For age, the mean recall over the age classes present in the truth
      (balanced accuracy). Undefined (NaN) when the truth has no positive or no negative (for age:
      fewer than two classes).
    * `f1`: F1 of the positive class, 2TP / (2TP + FP + FN), NaN when no sample is positive in
      either array. For age, the macro F1 over the classes present in either array.

    Returns a dict with:

    * `per_attribute`: {name: {"accuracy", "mA", "f1"}} for the 27 fields.
    * `accuracy_12`: {column: accuracy} for `OFFICIAL_12_COLUMNS`; `mean_accuracy_12` their mean.
      A colour column is right for a sample when the prediction marks exactly one colour of that
      body half and the truth marks it too (the truth may mark several: any of them counts).
      Samples whose truth marks no colour are left out of that column, counted in
      `colour_excluded`; a column with no sample left is NaN and left out of the mean.
    * `mA`: mean of the 27 per-attribute mA values that are defined; the others are listed in
      `skipped_attributes`.
    * `num_samples`.

    Raises:
        ValueError: on other shapes, non-integer values or codes outside a field's range.
    """
    pred, true = _check_attribute_inputs(pred_codes, true_codes)
    per_attribute = {}
    for j, name in enumerate(ATTRIBUTE_NAMES):
        if name == "age":
            per_attribute[name] = _multiclass_scores(pred[:, j], true[:, j], tuple(ATTRIBUTE_CODES[name]))
        else:
            per_attribute[name] = _binary_scores(pred[:, j] == 2, true[:, j] == 2)
    skipped = [name for name, scores in per_attribute.items() if np.isnan(scores["mA"])]
    defined = [scores["mA"] for name, scores in per_attribute.items() if name not in skipped]

    accuracy_12 = {name: per_attribute[name]["accuracy"] for name in OFFICIAL_12_COLUMNS[:10]}
    excluded = {}
    for column, indices in (("upper_colour", _UPPER_COLUMNS), ("lower_colour", _LOWER_COLUMNS)):
        accuracy_12[column], excluded[column] = _colour_accuracy(pred[:, indices] == 2, true[:, indices] == 2)
    finite = [value for value in accuracy_12.values() if not np.isnan(value)]
    return {
        "per_attribute": per_attribute,
        "accuracy_12": accuracy_12,
        "mean_accuracy_12": float(np.mean(finite)) if finite else float("nan"),
        "mA": float(np.mean(defined)) if defined else float("nan"),
        "skipped_attributes": skipped,
        "colour_excluded": excluded,
        "num_samples": int(true.shape[0]),
    }


def _check_attribute_inputs(pred_codes, true_codes) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for label, value in (("pred_codes", pred_codes), ("true_codes", true_codes)):
        array = np.asarray(value)
        if array.ndim != 2 or array.shape[1] != len(ATTRIBUTE_NAMES) or array.shape[0] == 0:
            raise ValueError(
                f"{label} must have shape (N, {len(ATTRIBUTE_NAMES)}) with N >= 1 (columns in ATTRIBUTE_NAMES "
                f"order), got shape {array.shape}"
            )
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise ValueError(f"{label} must hold integer codes, got dtype {array.dtype}")
        if np.issubdtype(array.dtype, np.floating) and not (np.isfinite(array) & (array == np.round(array))).all():
            row, col = np.argwhere(~(np.isfinite(array) & (array == np.round(array))))[0]
            raise ValueError(
                f"{label} must hold integer codes; row {row}, column {ATTRIBUTE_NAMES[col]!r} "
                f"holds {array[row, col].item()!r}"
            )
        array = array.astype(np.int64)
        for j, name in enumerate(ATTRIBUTE_NAMES):
            allowed = np.array(list(ATTRIBUTE_CODES[name]))
            bad = np.flatnonzero(~np.isin(array[:, j], allowed))
            if bad.size:
                raise ValueError(
                    f"{label}: column {name!r} holds {array[bad[0], j]} at row {bad[0]} ({bad.size} bad value(s)); "
                    f"allowed codes are {', '.join(map(str, allowed))}"
                )
        arrays.append(array)
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(
            f"pred_codes and true_codes must have the same shape, got {arrays[0].shape} and {arrays[1].shape}"
        )
    return arrays[0], arrays[1]


def _binary_scores(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    tp = int(np.sum(pred & true))
    tn = int(np.sum(~pred & ~true))
    fp = int(np.sum(pred & ~true))
    fn = int(np.sum(~pred & true))
    positives, negatives = tp + fn, tn + fp
    mean_recall = (tp / positives + tn / negatives) / 2 if positives and negatives else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {
        "accuracy": (tp + tn) / pred.size * 100.0,
        "mA": mean_recall * 100.0,
        "f1": f1 * 100.0,
    }


def _multiclass_scores(pred: np.ndarray, true: np.ndarray, classes: tuple[int, ...]) -> dict[str, float]:
    recalls, f1s = [], []
    for c in classes:
        tp = int(np.sum((pred == c) & (true == c)))
        fp = int(np.sum((pred == c) & (true != c)))
        fn = int(np.sum((pred != c) & (true == c)))
        if tp + fn:
            recalls.append(tp / (tp + fn))
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return {
        "accuracy": float(np.mean(pred == true)) * 100.0,
        "mA": float(np.mean(recalls)) * 100.0 if len(recalls) >= 2 else float("nan"),
        "f1": float(np.mean(f1s)) * 100.0 if f1s else float("nan"),
    }


def _colour_accuracy(pred: np.ndarray, true: np.ndarray) -> tuple[float, int]:
    """Accuracy over samples whose truth marks a colour, and the number left out."""
    marked = true.any(axis=1)
    right = (pred.sum(axis=1) == 1) & (pred & true).any(axis=1)
    if not marked.any():
        return float("nan"), int(true.shape[0])
    return float(np.mean(right[marked])) * 100.0, int(np.sum(~marked))
