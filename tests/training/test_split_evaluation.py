"""Training ranks a `Split` with the same `evaluate` as bench: one loader in split order, checked against it."""

from __future__ import annotations

import pytest
from tiny_models import make_tiny_model
from torch.utils.data import DataLoader

from reid_export.data.market1501 import load_market1501
from reid_export.evaluation.split import Split
from reid_export.evaluation.split import evaluate as evaluate_split
from reid_export.training.dataset import ReidDataset
from reid_export.training.evaluation import evaluate, extract_outputs
from reid_export.training.transforms import eval_transform


def _loader(samples, model):
    dataset = ReidDataset(samples, [s.pid for s in samples], eval_transform(model.config.preprocess))
    return DataLoader(dataset, batch_size=16)


def test_training_evaluation_is_the_split_evaluation_of_the_model_embeddings(tiny_market):
    data = load_market1501(tiny_market, splits=("query", "gallery"), progress=False)
    model, split = make_tiny_model(), Split.from_market(data)
    loader = _loader([*data.query, *data.gallery], model)
    metrics = evaluate(model, split, loader, "cpu")
    expected = evaluate_split(extract_outputs(model, loader, "cpu")["embedding"], split).ranking()
    assert metrics == expected and 0 <= metrics["mAP"] <= 100


def test_a_loader_out_of_split_order_is_refused(tiny_market):
    data = load_market1501(tiny_market, splits=("query", "gallery"), progress=False)
    model = make_tiny_model()
    gallery_first = _loader([*data.gallery, *data.query], model)
    with pytest.raises(ValueError, match=r"person/camera ids differ from the split's .*queries first"):
        evaluate(model, Split.from_market(data), gallery_first, "cpu")
