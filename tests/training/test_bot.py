"""The BoT recipe (Luo et al., 2019): its settings, its learning-rate schedule, and the center loss."""

from __future__ import annotations

import pytest
import torch

from reid_export.training import CenterLoss, ReidLoss, TrainConfig, load_recipe
from reid_export.training.loop import _lr_factor_fn


def test_bot_recipe_is_the_papers_recipe():
    c = load_recipe("bot")
    assert (c.arch, c.height, c.width, c.last_stride, c.neck) == ("resnet50", 256, 128, 1, "bnneck")
    assert (c.label_smoothing, c.triplet_weight, c.margin) == (0.1, 1.0, 0.3)
    assert (c.ids_per_batch, c.k, c.batch_size) == (16, 4, 64)
    assert (c.optimizer, c.lr, c.weight_decay, c.epochs) == ("adam", 3.5e-4, 5e-4, 120)
    assert (c.scheduler, c.lr_steps, c.lr_gamma, c.warmup_epochs, c.warmup_start) == ("step", [40, 70], 0.1, 10.0, 0.1)
    assert c.flip and c.pad_crop and c.random_erasing
    assert c.center_loss_weight == 0.0 and c.attributes == "auto"


@pytest.mark.parametrize(
    "epoch, lr",
    [
        (0, 3.5e-5),  # warm-up starts at 0.1 x lr
        (5, 3.5e-4 * (0.1 + 0.9 * 0.5)),  # half-way: linear
        (10, 3.5e-4),  # warm-up over
        (39, 3.5e-4),
        (40, 3.5e-5),  # x0.1 at epoch 40
        (69, 3.5e-5),
        (70, 3.5e-6),  # x0.1 at epoch 70
        (119, 3.5e-6),
    ],
)
def test_bot_schedule_follows_the_paper(epoch, lr):
    config, steps_per_epoch = load_recipe("bot"), 200
    factor = _lr_factor_fn(config, steps_per_epoch)
    assert config.lr * factor(epoch * steps_per_epoch) == pytest.approx(lr, rel=1e-2)


def test_bot_warm_up_reaches_the_peak_at_its_last_iteration_and_is_linear():
    config, steps = load_recipe("bot"), 100
    factor = _lr_factor_fn(config, steps)
    assert factor(10 * steps - 1) == pytest.approx(1.0)
    values = [factor(s) for s in range(0, 10 * steps, 37)]
    gaps = [b - a for a, b in zip(values, values[1:])]
    assert min(gaps) == pytest.approx(max(gaps)) and min(gaps) > 0


def test_warm_up_from_zero_is_unchanged_by_warmup_start():
    config = TrainConfig(scheduler="constant", warmup_epochs=2.0)
    factor = _lr_factor_fn(config, 10)
    assert [factor(s) for s in (0, 9, 19, 20)] == pytest.approx([1 / 20, 10 / 20, 1.0, 1.0])


def test_center_loss_is_the_mean_squared_distance_to_the_class_center():
    g = torch.Generator().manual_seed(0)
    loss = CenterLoss(3, 4)
    loss.centers.copy_(torch.randn(3, 4, generator=g))
    features, labels = torch.randn(5, 4, generator=g), torch.tensor([0, 2, 2, 1, 0])
    expected = sum(((features[i] - loss.centers[labels[i]]) ** 2).sum() for i in range(5)) / 5
    assert loss(features, labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_center_update_is_one_sgd_step_on_the_unweighted_loss():
    g = torch.Generator().manual_seed(1)
    loss = CenterLoss(4, 3, lr=0.5)
    loss.centers.copy_(torch.randn(4, 3, generator=g))
    features, labels = torch.randn(6, 3, generator=g), torch.tensor([0, 0, 1, 3, 3, 3])
    centers = loss.centers.clone().requires_grad_(True)
    (((features - centers[labels]) ** 2).sum(dim=1).mean()).backward()
    expected = centers.detach() - 0.5 * centers.grad
    loss.update(features, labels)
    torch.testing.assert_close(loss.centers, expected)
    assert torch.equal(loss.centers[2], expected[2])  # a class not in the batch does not move


def test_centers_converge_to_class_means_and_take_no_optimizer_gradient():
    features, labels = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, -2.0]]), torch.tensor([0, 0, 1])
    criterion = ReidLoss(center_weight=0.1, num_classes=2, feature_dim=2, center_lr=0.5)
    assert list(criterion.parameters()) == []  # the centers are a buffer: no optimizer sees them
    out = {"logits": torch.zeros(3, 2), "features": features.clone().requires_grad_(True)}
    loss, parts = criterion(out, labels)
    assert loss.item() == pytest.approx(parts["id"].item() + 0.1 * parts["center"].item())
    loss.backward()
    assert out["features"].grad is not None and out["features"].grad.abs().sum() > 0
    for _ in range(200):
        criterion.update_centers({"features": features}, labels)
    torch.testing.assert_close(criterion.center.centers, torch.tensor([[2.0, 0.0], [0.0, -2.0]]))


def test_no_center_loss_by_default():
    _, parts = ReidLoss()({"logits": torch.zeros(2, 2), "features": torch.zeros(2, 4)}, torch.tensor([0, 1]))
    assert "center" not in parts and ReidLoss().center is None


def test_resume_restores_the_centers_and_ends_like_an_uninterrupted_run(synth_market, tmp_path, monkeypatch):
    from dataclasses import replace

    from reid_export.checkpoint import load_checkpoint
    from reid_export.training import loop, train

    config = TrainConfig(data=str(synth_market), arch="resnet18", height=64, width=32, neck="bnneck", epochs=2,
                         batch_size=8, p=4, k=2, lr=1e-3, triplet_weight=1.0, center_loss_weight=5e-4,
                         attributes="auto", num_workers=0, num_threads=1, device="cpu", seed=1)
    full = train(replace(config, out=str(tmp_path / "full.pt")), quiet=True)
    real_epoch, calls = loop.train_one_epoch, []

    def interrupted_after_one_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    part = replace(config, out=str(tmp_path / "part.pt"))
    monkeypatch.setattr(loop, "train_one_epoch", interrupted_after_one_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(part, quiet=True)
    monkeypatch.setattr(loop, "train_one_epoch", real_epoch)
    resumed = train(part, resume=True, quiet=True)
    a, b = load_checkpoint(full.checkpoint), load_checkpoint(resumed.checkpoint)
    torch.testing.assert_close(b.train_state.criterion["center.centers"],
                               a.train_state.criterion["center.centers"], rtol=0, atol=1e-5)
    for key, tensor in a.model.items():
        torch.testing.assert_close(b.model[key], tensor, rtol=0, atol=1e-5, msg=key)
    assert b.recipe["attributes"] is True and resumed.metrics["attr_mA"] == pytest.approx(full.metrics["attr_mA"])
