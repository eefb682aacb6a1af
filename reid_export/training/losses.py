"""Re-ID losses: label-smoothed cross-entropy on the ID logits, batch-hard triplet and center loss on the
features, and the attribute loss on the attribute logits.

    criterion = ReidLoss(label_smoothing=0.1, triplet_weight=1.0, margin=0.3, attribute_weight=1.0)
    loss, parts = criterion(model(images), labels, targets, mask)  # parts: {"id", "triplet", "attributes"}
    criterion.update_centers(outputs, labels)  # after the optimizer step; a no-op without center loss

The triplet loss follows Hermans et al. (2017), "In Defense of the Triplet Loss": for every anchor
in the batch, the farthest positive and the nearest negative (Euclidean distance), with a hinge
margin or the soft margin log(1 + exp(d_ap - d_an)). As in BoT (Luo et al., 2019), it is applied to
the pooled features before the BNNeck and the cross-entropy to the logits after it.

The center loss (Wen et al., 2016; optional in BoT) pulls each pooled feature towards a center of
its identity: (1 / N) sum_i ||f_i - c_{y_i}||^2. Its gradient flows into the network only; the
centers are a buffer, not a parameter, moved by their own SGD step after every optimizer step
(`CenterLoss.update`), so the network optimizer (Adam, weight decay) never touches them. This is
BoT's separate SGD (lr 0.5) on the unweighted center loss.

The attribute loss (`attribute_loss`) is over the 30 attribute logits of `reid_export.models`
against the 27 targets of `reid_export.data.attributes.encode_targets`: cross-entropy over the
4 age classes, and binary cross-entropy with logits over the 9 yes/no attributes, the 8 upper
and the 9 lower colours (independent sigmoids: real labels mark none or several colours). Each
group is averaged over its entries and over the labelled images of the batch; the loss is
sum_g ATTRIBUTE_GROUP_WEIGHTS[g] * group mean, all weights 1: each group counts as one task, so
age weighs as much as the 9 yes/no attributes together. Images without labels (mask False)
take no part in it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.attributes import AGE_INDEX, BINARY_SLICE, LOWER_SLICE, UPPER_SLICE
from ..models import split_attributes

__all__ = ["ReidLoss", "CenterLoss", "label_smoothing_cross_entropy", "batch_hard_triplet_loss", "attribute_loss",
           "pairwise_euclidean", "ATTRIBUTE_GROUP_WEIGHTS"]

# weight of each attribute group's mean loss in `attribute_loss`
ATTRIBUTE_GROUP_WEIGHTS: dict[str, float] = {"age": 1.0, "binary": 1.0, "upper": 1.0, "lower": 1.0}


class ReidLoss(nn.Module):
    """ID loss + `triplet_weight` x triplet + `center_weight` x center + `attribute_weight` x attribute loss,
    from the model's output dict. The center loss needs `num_classes` and `feature_dim`; the attribute
    loss is added when attribute targets are passed and the outputs hold `attributes`."""

    def __init__(self, *, label_smoothing: float = 0.0, triplet_weight: float = 0.0, margin: float = 0.3,
                 center_weight: float = 0.0, num_classes: int = 0, feature_dim: int = 0, center_lr: float = 0.5,
                 attribute_weight: float = 1.0):
        super().__init__()
        self.label_smoothing = label_smoothing
        self.triplet_weight = triplet_weight
        self.margin = margin
        self.center_weight = center_weight
        self.attribute_weight = attribute_weight
        self.center = CenterLoss(num_classes, feature_dim, lr=center_lr) if center_weight > 0 else None

    def forward(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor,
                attribute_targets: torch.Tensor | None = None, attribute_mask: torch.Tensor | None = None):
        parts = {"id": label_smoothing_cross_entropy(outputs["logits"], labels, self.label_smoothing)}
        loss = parts["id"]
        if self.triplet_weight > 0:
            parts["triplet"] = batch_hard_triplet_loss(outputs["features"], labels, self.margin)
            loss = loss + self.triplet_weight * parts["triplet"]
        if self.center is not None:
            parts["center"] = self.center(outputs["features"], labels)
            loss = loss + self.center_weight * parts["center"]
        if attribute_targets is not None and "attributes" in outputs:
            parts["attributes"] = attribute_loss(outputs["attributes"], attribute_targets, attribute_mask)
            loss = loss + self.attribute_weight * parts["attributes"]
        return loss, parts

    @torch.no_grad()
    def update_centers(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> None:
        """Move the identity centers towards this batch's features (after the optimizer step)."""
        if self.center is not None:
            self.center.update(outputs["features"], labels)


class CenterLoss(nn.Module):
    """(1 / N) sum_i ||f_i - c_{y_i}||^2, with the centers `centers` (num_classes, dim) held as a buffer.

    The centers start at zero and move by `update` after each optimizer step: one plain SGD step
    (no momentum, no weight decay) of size `lr` on this unweighted loss, c_j <- c_j - lr * (2 / N)
    sum_{i: y_i = j} (c_j - f_i). That is BoT's separate `SGD(centers, lr=0.5)` on the unweighted
    loss, so the centers' pace does not depend on the loss weight or on the network's optimizer."""

    def __init__(self, num_classes: int, dim: int, *, lr: float = 0.5):
        super().__init__()
        if num_classes < 1 or dim < 1:
            raise ValueError(f"CenterLoss needs num_classes >= 1 and dim >= 1, found {num_classes} and {dim}")
        self.lr = lr
        self.register_buffer("centers", torch.zeros(num_classes, dim))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        diff = features.float() - self.centers[labels]
        return (diff * diff).sum(dim=1).mean()

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        diff = self.centers[labels] - features.detach().float()  # (N, dim): c_{y_i} - f_i
        grad = torch.zeros_like(self.centers).index_add_(0, labels, diff) * (2.0 / features.shape[0])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # under DDP every rank sees its own slice of the batch: average so all ranks keep the same centers,
            # exactly the single-process step since every rank's slice has the same size
            torch.distributed.all_reduce(grad)
            grad /= torch.distributed.get_world_size()
        self.centers -= self.lr * grad


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


def attribute_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None,
                   weights: dict[str, float] | None = None) -> torch.Tensor:
    """The attribute loss of the module docstring; float32.

    logits: (N, 30) age | binary | upper | lower; targets: (N, 27) int, `encode_targets` layout;
    mask: (N,) bool, False for images without labels (None = all labelled). A batch without any
    labelled image gives a zero loss that still carries the graph."""
    weights = ATTRIBUTE_GROUP_WEIGHTS if weights is None else weights
    logits = logits.float()
    if mask is not None:
        mask = mask.to(torch.bool)
        logits, targets = logits[mask], targets[mask]
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    heads = split_attributes(logits)
    parts = {"age": F.cross_entropy(heads["age"], targets[:, AGE_INDEX].long())}
    for group, columns in (("binary", BINARY_SLICE), ("upper", UPPER_SLICE), ("lower", LOWER_SLICE)):
        parts[group] = F.binary_cross_entropy_with_logits(heads[group], targets[:, columns].float())
    return sum(weights[group] * value for group, value in parts.items())


def pairwise_euclidean(x: torch.Tensor) -> torch.Tensor:
    """(N, N) Euclidean distances between rows, with a finite gradient on the diagonal."""
    sq = (x * x).sum(dim=1)
    d2 = sq.view(-1, 1) + sq.view(1, -1) - 2.0 * (x @ x.t())
    return d2.clamp(min=1e-12).sqrt()
