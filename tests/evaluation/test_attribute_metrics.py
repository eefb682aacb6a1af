"""Attribute metrics: hand-computed examples and a loop-by-loop recomputation from the definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reid_export.data.attributes import ATTRIBUTE_CODES, ATTRIBUTE_NAMES, LOWER_COLOURS, UPPER_COLOURS
from reid_export.evaluation.attributes import OFFICIAL_12_COLUMNS, attribute_metrics

COL = {name: j for j, name in enumerate(ATTRIBUTE_NAMES)}


def _base(n: int) -> np.ndarray:
    """n samples, every field 1 except age 3 and one colour marked per body half."""
    codes = np.ones((n, 27), dtype=np.int64)
    codes[:, COL["age"]] = 3
    codes[:, COL["upblack"]] = codes[:, COL["downblue"]] = 2
    return codes


def _random(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.stack([rng.choice(list(ATTRIBUTE_CODES[name]), n) for name in ATTRIBUTE_NAMES], axis=1)


def test_binary_attribute_by_hand():
    true, pred = _base(5), _base(5)
    true[:, COL["gender"]] = [2, 2, 1, 1, 1]
    pred[:, COL["gender"]] = [2, 1, 1, 1, 2]
    # TP = 1 (sample 0), FN = 1 (1), TN = 2 (2, 3), FP = 1 (4)
    # accuracy = 3/5 = 60; mA = (1/2 + 2/3) / 2 = 58.33; F1 = 2*1 / (2*1 + 1 + 1) = 50
    gender = attribute_metrics(pred, true)["per_attribute"]["gender"]
    assert gender == pytest.approx({"accuracy": 60.0, "mA": 175 / 3, "f1": 50.0})


def test_age_by_hand():
    true, pred = _base(5), _base(5)
    true[:, COL["age"]] = [1, 3, 3, 3, 4]
    pred[:, COL["age"]] = [1, 3, 3, 4, 3]
    # accuracy = 3/5 = 60
    # recall: young 1/1, adult 2/3, old 0/1; teenager absent from the truth -> mA = (1 + 2/3 + 0) / 3 = 55.56
    # F1: young 2/2 = 1, adult 2*2/(4+1+1) = 2/3, old 0/(0+1+1) = 0; teenager in neither -> macro 55.56
    age = attribute_metrics(pred, true)["per_attribute"]["age"]
    assert age == pytest.approx({"accuracy": 60.0, "mA": 500 / 9, "f1": 500 / 9})


def test_colour_columns_by_hand():
    true, pred = _base(4), _base(4)
    up = [COL[c] for c in UPPER_COLOURS]
    true[:, up] = pred[:, up] = 1
    true[0, COL["upblack"]] = pred[0, COL["upblack"]] = 2  # right
    pred[1, COL["upred"]] = 2  # truth marks no colour: left out
    true[2, [COL["upblack"], COL["upwhite"]]] = 2  # truth marks two
    pred[2, COL["upwhite"]] = 2  # ... the prediction is one of them: right
    true[3, COL["upred"]] = 2
    pred[3, [COL["upblack"], COL["upred"]]] = 2  # prediction marks two: wrong
    result = attribute_metrics(pred, true)
    assert result["accuracy_12"]["upper_colour"] == pytest.approx(200 / 3)  # 2 of 3
    assert result["colour_excluded"] == {"upper_colour": 1, "lower_colour": 0}
    assert result["accuracy_12"]["lower_colour"] == 100.0
    assert list(result["accuracy_12"]) == list(OFFICIAL_12_COLUMNS)
    # the other ten columns are all right: mean = (11 * 100 + 66.67) / 12
    assert result["mean_accuracy_12"] == pytest.approx((1100 + 200 / 3) / 12)


def test_colour_column_with_nothing_marked_is_left_out_of_the_mean():
    true, pred = _base(3), _base(3)
    true[:, [COL[c] for c in LOWER_COLOURS]] = 1
    result = attribute_metrics(pred, true)
    assert math.isnan(result["accuracy_12"]["lower_colour"])
    assert result["colour_excluded"]["lower_colour"] == 3
    assert result["mean_accuracy_12"] == 100.0


def test_attributes_without_positives_or_negatives_are_skipped_in_mA():
    rng = np.random.default_rng(0)
    true, pred = _random(rng, 40), _random(rng, 40)
    true[:, COL["hat"]] = 1  # no positive
    true[:, COL["bag"]] = 2  # no negative
    true[:, COL["age"]] = 3  # a single class
    result = attribute_metrics(pred, true)
    assert result["skipped_attributes"] == ["hat", "bag", "age"]
    assert all(math.isnan(result["per_attribute"][n]["mA"]) for n in ("hat", "bag", "age"))
    kept = [s["mA"] for n, s in result["per_attribute"].items() if n not in ("hat", "bag", "age")]
    assert len(kept) == 24 and result["mA"] == pytest.approx(np.mean(kept))
    # F1 stays defined while something is positive somewhere
    assert not math.isnan(result["per_attribute"]["hat"]["f1"])


def test_f1_is_nan_when_nothing_is_positive_anywhere():
    true, pred = _base(3), _base(3)
    result = attribute_metrics(pred, true)["per_attribute"]["hat"]
    assert result["accuracy"] == 100.0 and math.isnan(result["f1"]) and math.isnan(result["mA"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scores_match_a_plain_python_recomputation(seed):
    rng = np.random.default_rng(seed)
    n = 60
    true, pred = _random(rng, n), _random(rng, n)
    pred[: n // 2] = true[: n // 2]  # half right, so the scores are not all near chance
    result = attribute_metrics(pred, true)

    for name in ("gender", "backpack", "clothes", "upred", "downbrown"):
        j = COL[name]
        tp = fp = tn = fn = 0
        for i in range(n):
            p, t = pred[i][j] == 2, true[i][j] == 2
            if p and t:
                tp += 1
            elif p and not t:
                fp += 1
            elif t:
                fn += 1
            else:
                tn += 1
        expected = {
            "accuracy": 100 * (tp + tn) / n,
            "mA": 100 * (tp / (tp + fn) + tn / (tn + fp)) / 2,
            "f1": 100 * 2 * tp / (2 * tp + fp + fn),
        }
        assert result["per_attribute"][name] == pytest.approx(expected), name

    j = COL["age"]
    recalls, f1s, right = [], [], 0
    for c in (1, 2, 3, 4):
        hit = sum(1 for i in range(n) if pred[i][j] == c and true[i][j] == c)
        in_true = sum(1 for i in range(n) if true[i][j] == c)
        in_pred = sum(1 for i in range(n) if pred[i][j] == c)
        if in_true:
            recalls.append(hit / in_true)
        if in_true or in_pred:
            f1s.append(2 * hit / (in_true + in_pred))
    right = sum(1 for i in range(n) if pred[i][j] == true[i][j])
    expected = {"accuracy": 100 * right / n, "mA": 100 * sum(recalls) / len(recalls), "f1": 100 * sum(f1s) / len(f1s)}
    assert result["per_attribute"]["age"] == pytest.approx(expected)

    for column, colours in (("upper_colour", UPPER_COLOURS), ("lower_colour", LOWER_COLOURS)):
        counted = correct = 0
        for i in range(n):
            marked = [c for c in colours if true[i][COL[c]] == 2]
            predicted = [c for c in colours if pred[i][COL[c]] == 2]
            if not marked:
                continue
            counted += 1
            correct += len(predicted) == 1 and predicted[0] in marked
        assert result["accuracy_12"][column] == pytest.approx(100 * correct / counted)
        assert result["colour_excluded"][column] == n - counted
    assert result["mean_accuracy_12"] == pytest.approx(np.mean(list(result["accuracy_12"].values())))
    assert result["mA"] == pytest.approx(np.mean([s["mA"] for s in result["per_attribute"].values()]))
    assert result["skipped_attributes"] == [] and result["num_samples"] == n


def test_perfect_predictions_score_100():
    true = _random(np.random.default_rng(4), 30)
    result = attribute_metrics(true.copy(), true)
    assert result["mA"] == 100.0
    assert all(s["accuracy"] == 100.0 and s["f1"] == 100.0 for s in result["per_attribute"].values())


@pytest.mark.parametrize(
    "pred, true, message",
    [
        (np.ones((3, 26)), np.ones((3, 26)), r"pred_codes must have shape \(N, 27\).*\(3, 26\)"),
        (np.ones((0, 27)), np.ones((0, 27)), r"N >= 1"),
        (_base(3), _base(4), r"same shape, got \(3, 27\) and \(4, 27\)"),
        (_base(2), np.where(np.arange(27) == COL["age"], 5, _base(2)), r"true_codes: column 'age' holds 5 at row 0 \(2 bad"),
        (np.where(np.arange(27) == COL["hat"], 0, _base(2)), _base(2), r"pred_codes: column 'hat' holds 0 .*allowed codes are 1, 2"),
        (_base(2) + 0.5, _base(2), r"integer codes; row 0, column 'gender' holds 1.5"),
        (np.full((2, 27), "1"), _base(2), r"integer codes, got dtype <U1"),
    ],
)
def test_bad_inputs_are_refused_with_details(pred, true, message):
    with pytest.raises(ValueError, match=message):
        attribute_metrics(pred, true)
