"""pairwise_distance: cosine and euclidean against direct formulas, zero rows, errors."""

from __future__ import annotations

import numpy as np
import pytest

from reid_export.ranking import METRICS, pairwise_distance


@pytest.fixture
def features():
    rng = np.random.default_rng(0)
    return rng.standard_normal((7, 16)).astype(np.float32), rng.standard_normal((11, 16)).astype(np.float32)


def test_cosine_matches_direct_formula(features):
    q, g = features
    expected = np.array(
        [[1.0 - np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)) for b in g.astype(np.float64)]
         for a in q.astype(np.float64)]
    )
    got = pairwise_distance(q, g, metric="cosine")
    assert got.dtype == np.float32 and got.shape == (7, 11)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_cosine_is_the_default_and_ignores_scale(features):
    q, g = features
    np.testing.assert_allclose(pairwise_distance(q, g), pairwise_distance(3.0 * q, 0.5 * g), atol=1e-6)


def test_euclidean_matches_direct_formula(features):
    q, g = features
    expected = np.linalg.norm(q.astype(np.float64)[:, None, :] - g.astype(np.float64)[None, :, :], axis=2)
    got = pairwise_distance(q, g, metric="euclidean")
    assert got.dtype == np.float32 and got.shape == (7, 11)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_euclidean_of_identical_rows_is_zero_not_nan():
    # the GEMM trick can round |x|^2 + |x|^2 - 2 x.x slightly below 0; it must be clipped, not
    # turned into NaN by the sqrt. (Its float32 cancellation error is ~sqrt(eps) * |x|, hence atol.)
    x = np.random.default_rng(1).standard_normal((50, 64)).astype(np.float32)
    d = pairwise_distance(x, x, metric="euclidean")
    assert not np.isnan(d).any() and (d >= 0).all()
    np.testing.assert_allclose(np.diag(d), 0.0, atol=1e-2)


def test_float64_inputs_still_return_float32(features):
    q, g = features
    got = pairwise_distance(q.astype(np.float64), g.astype(np.float64), metric="euclidean")
    assert got.dtype == np.float32


@pytest.mark.filterwarnings("error")
def test_zero_rows_are_safe_for_cosine():
    q = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    g = np.array([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [-1.0, 0.0, 0.0]], dtype=np.float32)
    d = pairwise_distance(q, g, metric="cosine")
    # a zero vector has similarity 0 to everything: distance 1
    np.testing.assert_allclose(d, [[1.0, 1.0, 1.0], [1.0, 1.0, 2.0]], atol=1e-6)


def test_dimension_mismatch_raises():
    with pytest.raises(ValueError, match=r"dimensions differ.*\(2, 3\).*\(4, 5\)"):
        pairwise_distance(np.zeros((2, 3)), np.zeros((4, 5)))


def test_unknown_metric_lists_the_allowed_values():
    with pytest.raises(ValueError, match="manhattan.*cosine, euclidean"):
        pairwise_distance(np.zeros((2, 3)), np.zeros((4, 3)), metric="manhattan")
    assert METRICS == ("cosine", "euclidean")


def test_non_2d_input_raises():
    with pytest.raises(ValueError, match=r"query must be 2-D.*\(3,\)"):
        pairwise_distance(np.zeros(3), np.zeros((4, 3)))
