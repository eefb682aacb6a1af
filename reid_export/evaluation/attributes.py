"""Attribute metrics: predicted Market-1501 attribute codes scored against the true ones.

`attribute_metrics` gives per-attribute accuracy, label-based mA and F1, the mean accuracy over the
12 columns the attribute papers report, and mA over all 27 fields. `attribute_scores` decodes a
model's attribute probabilities (N, 30) first, with `data.attributes.decode_probabilities`, the one
decoder used everywhere (bench, training, predict, pictures).
"""

from __future__ import annotations

import numpy as np

from ..data.attributes import ATTRIBUTE_CODES, ATTRIBUTE_NAMES, LOWER_COLOURS, UPPER_COLOURS, codes_to_array, decode_probabilities

__all__ = ["attribute_metrics", "attribute_scores", "OFFICIAL_12_COLUMNS"]

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


def attribute_scores(probs: np.ndarray, pids: np.ndarray, attribute_codes: dict) -> dict | None:
    """`attribute_metrics` of a model's attribute probabilities (N, 30) on the images whose pid has labels
    in `attribute_codes` ({pid: 27 codes}); None when no image has. Predictions are decoded with
    `data.attributes.decode_probabilities` (age argmax, binary at 0.5, one colour per body half)."""
    pids = np.asarray(pids)
    keep = [i for i, pid in enumerate(pids.tolist()) if pid > 0 and pid in attribute_codes]
    if not keep:
        return None
    predicted = decode_probabilities(np.asarray(probs)[keep])
    truth = [attribute_codes[int(pids[i])] for i in keep]
    return attribute_metrics(codes_to_array(predicted), codes_to_array(truth))


