"""Losses against direct, loop-by-loop formulations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reid_export.training import ReidLoss, batch_hard_triplet_loss, label_smoothing_cross_entropy


def _brute_force_batch_hard(x: torch.Tensor, labels: list[int], margin: float) -> float:
    n = len(labels)
    dist = [[math.dist(x[i].tolist(), x[j].tolist()) for j in range(n)] for i in range(n)]
    losses = []
    for a in range(n):
        positives = [dist[a][j] for j in range(n) if labels[j] == labels[a]]
        negatives = [dist[a][j] for j in range(n) if labels[j] != labels[a]]
        if not negatives:
            continue
        gap = max(positives) - min(negatives)
        losses.append(math.log1p(math.exp(gap)) if margin == 0 else max(0.0, gap + margin))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("margin", [0.3, 1.0, 0.0])
@pytest.mark.parametrize("seed", range(3))
def test_batch_hard_triplet_matches_brute_force(margin, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 5, generator=g, dtype=torch.float64)
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    got = batch_hard_triplet_loss(x, torch.tensor(labels), margin).item()
    assert got == pytest.approx(_brute_force_batch_hard(x.float(), labels, margin), rel=1e-5, abs=1e-6)


def test_batch_hard_triplet_without_negatives_is_zero_with_a_graph():
    x = torch.randn(4, 3, requires_grad=True)
    loss = batch_hard_triplet_loss(x, torch.zeros(4, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and x.grad is not None


def test_batch_hard_triplet_gradient_is_finite_for_identical_features():
    x = torch.ones(4, 3, requires_grad=True)
    batch_hard_triplet_loss(x, torch.tensor([0, 0, 1, 1])).backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.5])
def test_label_smoothing_matches_the_direct_formula(epsilon):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 7, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 3, 6, 2, 2, 5])
    expected = 0.0
    for row, y in zip(logits, labels):
        log_p = row - torch.logsumexp(row, 0)
        target = torch.full((7,), epsilon / 7, dtype=torch.float64)
        target[y] += 1 - epsilon
        expected += -(target * log_p).sum().item()
    got = label_smoothing_cross_entropy(logits, labels, epsilon).item()
    assert got == pytest.approx(expected / 6, rel=1e-6)
    assert got == pytest.approx(F.cross_entropy(logits, labels, label_smoothing=epsilon).item(), rel=1e-6)


def test_reid_loss_adds_the_weighted_triplet_term():
    g = torch.Generator().manual_seed(1)
    out = {"logits": torch.randn(4, 3, generator=g), "features": torch.randn(4, 8, generator=g)}
    labels = torch.tensor([0, 0, 1, 1])
    loss, parts = ReidLoss(label_smoothing=0.1, triplet_weight=0.5, margin=0.3)(out, labels)
    assert set(parts) == {"id", "triplet"}
    assert loss.item() == pytest.approx(parts["id"].item() + 0.5 * parts["triplet"].item())
    loss, parts = ReidLoss()(out, labels)
    assert set(parts) == {"id"}
    assert loss.item() == pytest.approx(F.cross_entropy(out["logits"], labels).item())
