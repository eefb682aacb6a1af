"""`Split` and `evaluate(source, split)`: one place knows which rows are queries, every caller gets the same numbers."""

from __future__ import annotations

import numpy as np
import pytest

from reid_export.data import attributes as market_attributes
from reid_export.data.market1501 import Sample, load_market1501
from reid_export.errors import ReidExportError
from reid_export.evaluation.attributes import attribute_scores
from reid_export.evaluation.embeddings import evaluate_embeddings
from reid_export.evaluation.split import Split, evaluate


@pytest.fixture(scope="module")
def market_split(tiny_market):
    return Split.from_market(load_market1501(tiny_market, splits=("query", "gallery"), progress=False))


def _embeddings(split: Split, dim: int = 16, seed: int = 0) -> np.ndarray:
    """Embeddings that cluster by person (noise on a per-pid centre), so the metrics are neither 0 nor 100."""
    rng = np.random.default_rng(seed)
    centres = {pid: rng.standard_normal(dim) for pid in np.unique(split.pids)}
    return np.stack([centres[pid] + 1.5 * rng.standard_normal(dim) for pid in split.pids]).astype(np.float32)


def test_a_market_split_holds_the_queries_first_then_the_gallery(tiny_market, market_split):
    data = load_market1501(tiny_market, splits=("query", "gallery"), progress=False)
    assert market_split.num_query == len(data.query) and market_split.num_gallery == len(data.gallery)
    assert market_split.query.paths == tuple(s.path for s in data.query)
    assert list(market_split.gallery.pids) == [s.pid for s in data.gallery]
    assert list(market_split.gallery.camids) == [s.camid for s in data.gallery]
    assert -1 in market_split.gallery.pids and 0 in market_split.gallery.pids  # junk and distractors stay
    rows = np.arange(len(market_split.paths))
    query_rows, gallery_rows = market_split.divide(rows)
    assert list(query_rows) == list(range(market_split.num_query)) and gallery_rows[0] == market_split.num_query


def test_evaluate_equals_the_protocol_on_the_split_rows(market_split):
    emb = _embeddings(market_split)
    nq = market_split.num_query
    direct = evaluate_embeddings(emb[:nq], emb[nq:], market_split.pids[:nq], market_split.pids[nq:],
                                 market_split.camids[:nq], market_split.camids[nq:])
    result = evaluate(emb, market_split)
    assert result.ranking() == {key: direct[key] for key in ("rank1", "rank5", "rank10", "mAP", "mINP")}
    assert result.num_valid_queries == direct["num_valid_queries"] and 0 < result.mAP < 100
    np.testing.assert_array_equal(result.cmc, direct["cmc"])
    assert result.attributes is None


def test_embeddings_outputs_and_an_embedding_function_give_the_same_result(market_split):
    emb = _embeddings(market_split)
    asked = []

    def embed(paths):
        asked.append(paths)
        return {"embedding": emb}

    results = [evaluate(emb, market_split), evaluate({"embedding": emb}, market_split), evaluate(embed, market_split)]
    assert asked == [list(market_split.paths)]  # the function is given the split's images, in split order
    assert results[0].ranking() == results[1].ranking() == results[2].ranking()


def test_attributes_are_scored_with_truth_and_probabilities(tiny_market, market_split):
    truth = market_attributes.test_split_labels(tiny_market)
    assert truth, "the synthetic set writes market_attribute.mat with test-split labels"
    probabilities = np.random.default_rng(1).uniform(size=(len(market_split.paths), 30)).astype(np.float32)
    result = evaluate({"embedding": _embeddings(market_split), "attributes": probabilities}, market_split,
                      attribute_truth=truth)
    expected = attribute_scores(probabilities, market_split.pids, truth)
    assert result.attributes.mA == pytest.approx(expected["mA"])
    assert result.attributes.mean_accuracy == pytest.approx(expected["mean_accuracy_12"])
    assert result.attributes.num_images == expected["num_samples"] < len(market_split.paths)  # junk has no labels
    without_truth = evaluate({"embedding": _embeddings(market_split), "attributes": probabilities}, market_split)
    assert without_truth.attributes is None


def test_non_finite_embeddings_are_refused_naming_the_first_image(market_split):
    emb = _embeddings(market_split)
    emb[[3, 7]] = np.nan
    with pytest.raises(ReidExportError, match=rf"2 of {len(emb)} embeddings are not finite \(first: "
                                              rf"{market_split.paths[3].name}\)"):
        evaluate(emb, market_split)


def test_embeddings_of_another_length_are_refused(market_split):
    with pytest.raises(ValueError, match=rf"expected embeddings of shape \({len(market_split.paths)}, dim\)"):
        evaluate(_embeddings(market_split)[:-1], market_split)


def test_a_split_whose_ids_do_not_match_its_paths_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"Split.pids: expected 2 integer ids .* found dtype int64, shape \(3,\)"):
        Split(paths=(tmp_path / "a.jpg", tmp_path / "b.jpg"), pids=np.array([1, 2, 3]), camids=np.array([1, 2]),
              num_query=1)
    with pytest.raises(ValueError, match=r"Split.num_query: expected 0..2 .* found 3"):
        Split(paths=(tmp_path / "a.jpg", tmp_path / "b.jpg"), pids=np.array([1, 2]), camids=np.array([1, 2]),
              num_query=3)


def test_a_split_is_read_only(tmp_path):
    split = Split.from_samples([Sample(tmp_path / "q.jpg", 1, 1)], [Sample(tmp_path / "g.jpg", 1, 2)])
    with pytest.raises(ValueError, match="read-only"):
        split.pids[0] = 5
    with pytest.raises(AttributeError):
        split.num_query = 2
