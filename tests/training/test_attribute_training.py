"""Attribute training: the loss against a direct formula, targets and masks, end to end on synthetic data."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reid_export.checkpoint import load_checkpoint, load_model
from reid_export.data.attributes import ATTRIBUTE_FILE, ATTRIBUTE_NAMES, encode_targets, load_market_attributes
from reid_export.data.market1501 import Sample
from reid_export.errors import DataError, ReidExportError
from reid_export.training import ReidDataset, ReidLoss, TrainConfig, TrainingData, attribute_loss, train
from reid_export.training.transforms import eval_transform


def _direct_attribute_loss(logits: torch.Tensor, targets: torch.Tensor, mask: list[bool]) -> float:
    """Per image and per entry, then averaged: CE over age + the mean BCE of each of the three groups."""
    rows = [i for i, keep in enumerate(mask) if keep]
    age = binary = upper = lower = 0.0
    for i in rows:
        z, t = logits[i].tolist(), targets[i].tolist()
        age += -(z[t[0]] - math.log(sum(math.exp(v) for v in z[:4])))
        bce = [-(y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x))))
               for x, y in zip(z[4:], t[1:])]
        binary += sum(bce[:9]) / 9
        upper += sum(bce[9:17]) / 8
        lower += sum(bce[17:26]) / 9
    n = len(rows)
    return (age + binary + upper + lower) / n


def _random_targets(g: torch.Generator, n: int) -> torch.Tensor:
    age = torch.randint(0, 4, (n, 1), generator=g)
    flags = torch.randint(0, 2, (n, 26), generator=g)  # colours: none, one or several marked, as in real labels
    return torch.cat([age, flags], dim=1)


@pytest.mark.parametrize("mask", [[True] * 6, [True, False, True, False, False, True]])
def test_attribute_loss_matches_the_direct_formula_and_ignores_masked_images(mask):
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(6, 30, generator=g), _random_targets(g, 6)
    got = attribute_loss(logits, targets, torch.tensor(mask))
    assert got.item() == pytest.approx(_direct_attribute_loss(logits, targets, mask), rel=1e-5)
    changed, masked = targets.clone(), [i for i, keep in enumerate(mask) if not keep]
    changed[masked] = 1 - changed[masked]  # other labels on masked images change nothing
    assert attribute_loss(logits, changed, torch.tensor(mask)).item() == pytest.approx(got.item(), rel=1e-6)


def test_attribute_loss_without_labelled_images_is_zero_with_a_graph():
    logits = torch.randn(3, 30, requires_grad=True)
    loss = attribute_loss(logits, torch.zeros(3, 27, dtype=torch.int64), torch.zeros(3, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros(3, 30))


def test_reid_loss_adds_the_weighted_attribute_term():
    g = torch.Generator().manual_seed(2)
    out = {"logits": torch.randn(4, 3, generator=g), "features": torch.randn(4, 8, generator=g),
           "attributes": torch.randn(4, 30, generator=g)}
    labels, targets, mask = torch.tensor([0, 0, 1, 1]), _random_targets(g, 4), torch.tensor([1, 0, 1, 1]).bool()
    loss, parts = ReidLoss(attribute_weight=0.5)(out, labels, targets, mask)
    assert set(parts) == {"id", "attributes"}
    assert parts["attributes"].item() == pytest.approx(attribute_loss(out["attributes"], targets, mask).item())
    assert loss.item() == pytest.approx(parts["id"].item() + 0.5 * parts["attributes"].item())


def test_dataset_returns_targets_and_mask_with_attributes(tmp_path):
    path = tmp_path / "0005_c3s1_000001_01.jpg"
    Image.new("RGB", (32, 64), (10, 20, 30)).save(path)
    samples = [Sample(path, 5, 3), Sample(path, 6, 1)]
    targets = np.arange(54, dtype=np.int64).reshape(2, 27) % 2
    dataset = ReidDataset(samples, [0, 1], eval_transform(TrainConfig(height=64, width=32).preprocess), targets,
                          np.array([True, False]))
    x, label, camid, target, labelled = dataset[1]
    assert x.shape == (3, 64, 32) and (label, camid, bool(labelled)) == (1, 1, False)
    assert target.tolist() == targets[1].tolist() and target.dtype == torch.int64
    assert len(ReidDataset(samples, [0, 1], eval_transform(TrainConfig().preprocess))[0]) == 3


def test_images_of_ids_without_labels_are_masked(synth_market):
    labels = load_market_attributes(synth_market)["train"]
    samples = [Sample(Path(f"{pid}.jpg"), pid, 1) for pid in (1, 2, 2, 3)]
    data = TrainingData(layout="market", root=synth_market, train=samples, train_pids=[1, 2, 3], query=None,
                        gallery=None, attribute_file=synth_market / ATTRIBUTE_FILE,
                        attributes={1: labels[1], 3: labels[3]}, eval_attributes=None)
    targets, mask = data.attribute_arrays()
    assert mask.tolist() == [True, False, False, True] and data.labelled_images == 2
    assert targets[0].tolist() == encode_targets(labels[1]).tolist() and not targets[1].any()


def test_attribute_training_writes_heads_metrics_and_the_summary(synth_market, tmp_path, capsys):
    config = TrainConfig(
        recipe="test", data=str(synth_market), out=str(tmp_path / "attr.pt"), arch="resnet18", height=64, width=32,
        neck="bnneck", epochs=1, batch_size=8, p=4, k=2, lr=1e-3, label_smoothing=0.1, triplet_weight=1.0,
        attributes=True, attribute_weight=1.0, center_loss_weight=5e-4, num_workers=0, num_threads=1,
        device="cpu",
    )
    result = train(config, quiet=False)
    ckpt = load_checkpoint(result.checkpoint)
    assert {"rank1", "mAP", "mINP", "attr_mean_accuracy", "attr_mA"} <= set(ckpt.metrics)
    assert 0 <= ckpt.metrics["attr_mA"] <= 100 and 0 <= ckpt.metrics["attr_mean_accuracy"] <= 100
    assert set(ckpt.metrics["attr_per_attribute"]) == set(ATTRIBUTE_NAMES)
    assert ckpt.recipe["attributes"] is True and ckpt.config["attributes"] is True
    centers = ckpt.train_state.criterion["center.centers"]
    assert centers.shape == (6, 512) and centers.abs().sum() > 0  # the center loss ran and moved its centers
    model = load_model(result.checkpoint)
    assert model.attribute_head is not None
    assert model(torch.zeros(2, 3, 64, 32))["attributes"].shape == (2, 30)
    printed = capsys.readouterr().out
    assert "Rank-1" in printed and "mINP" in printed and "upblack" in printed and "downbrown" in printed


def test_attributes_true_without_labels_says_which_file_is_missing(jpeg_market, tiny_config):
    with pytest.raises(DataError, match=rf"attributes = true.*expected .*{ATTRIBUTE_FILE}.*Fix: copy"):
        train(replace(tiny_config, attributes=True, epochs=1), quiet=True)


def test_auto_attributes_without_labels_trains_without_heads_and_records_false(jpeg_market, tiny_config):
    result = train(replace(tiny_config, attributes="auto", epochs=1), quiet=True)
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt.recipe["attributes"] is False and ckpt.config["attributes"] is False
    assert "attr_mA" not in result.metrics


def test_auto_attributes_with_labels_resolves_to_true(synth_market, tmp_path):
    from reid_export.training import load_training_data, resolve_attributes

    assert resolve_attributes("auto", load_training_data(synth_market, attributes="auto", progress=False)) is True
    bare = tmp_path / "bare"
    shutil.copytree(synth_market, bare)
    (bare / ATTRIBUTE_FILE).unlink()
    assert resolve_attributes("auto", load_training_data(bare, attributes="auto", progress=False)) is False


@pytest.mark.parametrize("value, expected", [(True, True), ("auto", "auto"), ("TRUE", True), ("false", False)])
def test_attributes_setting_takes_true_false_or_auto(value, expected):
    assert TrainConfig(attributes=value).attributes == expected


def test_attributes_setting_rejects_other_values_and_auto_must_be_resolved_before_building():
    with pytest.raises(ReidExportError, match=r'attributes must be true, false or "auto", found \'maybe\''):
        TrainConfig(attributes="maybe")
    with pytest.raises(ReidExportError, match="resolved against the data"):
        TrainConfig(attributes="auto").model_config(5)
