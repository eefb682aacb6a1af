"""Re-ID losses: label-smoothed cross-entropy on the ID logits, batch-hard triplet on the features.

    criterion = ReidLoss(label_smoothing=0.1, triplet_weight=1.0, margin=0.3)
    loss, parts = criterion(model(images), labels)   # parts: {"id": ..., "triplet": ...}

The triplet loss follows Hermans et al. (2017), "In Defense of the Triplet Loss": for every anchor
in the batch, the farthest positive and the nearest negative (Euclidean distance), with a hinge
margin or the soft margin log(1 + exp(d_ap - d_an)). As in BoT (Luo et al., 2019), it is applied to
the pooled features before the BNNeck and the cross-entropy to the logits after it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ReidLoss", "label_smoothing_cross_entropy", "batch_hard_triplet_loss", "pairwise_euclidean"]


class ReidLoss(nn.Module):
    """ID loss + `triplet_weight` x triplet loss, from the model's output dict."""

    def __init__(self, *, label_smoothing: float = 0.0, triplet_weight: float = 0.0, margin: float = 0.3):
        super().__init__()
        self.label_smoothing = label_smoothing
        self.triplet_weight = triplet_weight
        self.margin = margin

    def forward(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor):
        parts = {"id": label_smoothing_cross_entropy(outputs["logits"], labels, self.label_smoothing)}
        loss = parts["id"]
        if self.triplet_weight > 0:
            parts["triplet"] = batch_hard_triplet_loss(outputs["features"], labels, self.margin)
            loss = loss + self.triplet_weight * parts["triplet"]
        return loss, parts


def label_smoothing_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, epsilon: float = 0.1) -> torch.Tensor:
    """Cross-entropy against the target (1 - epsilon) * one_hot + epsilon / num_classes, batch mean.

    Szegedy et al. (2016); epsilon = 0 is the plain cross-entropy. Computed in float32."""
    log_probs = F.log_softmax(logits.float(), dim=1)
    nll = -log_probs.gather(1, labels.view(-1, 1)).squeeze(1)
    uniform = -log_probs.mean(dim=1)
    return ((1.0 - epsilon) * nll + epsilon * uniform).mean()


def batch_hard_triplet_loss(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Batch-hard triplet loss, mean over anchors that have a negative in the batch.

    margin > 0: max(0, d_ap - d_an + margin); margin = 0: soft margin softplus(d_ap - d_an).
    An anchor with no other image of its identity takes d_ap = 0 (itself). A batch without any
    negative pair gives a zero loss that still carries the graph."""
    dist = pairwise_euclidean(features.float())
    same = labels.view(-1, 1) == labels.view(1, -1)
    d_ap = dist.masked_fill(~same, float("-inf")).max(dim=1).values
    d_an = dist.masked_fill(same, float("inf")).min(dim=1).values
    valid = torch.isfinite(d_an)
    if not bool(valid.any()):
        return dist.sum() * 0.0
    gap = d_ap[valid] - d_an[valid]
    losses = F.softplus(gap) if margin == 0 else F.relu(gap + margin)
    return losses.mean()


def pairwise_euclidean(x: torch.Tensor) -> torch.Tensor:
    """(N, N) Euclidean distances between rows, with a finite gradient on the diagonal."""
    sq = (x * x).sum(dim=1)
    d2 = sq.view(-1, 1) + sq.view(1, -1) - 2.0 * (x @ x.t())
    return d2.clamp(min=1e-12).sqrt()
