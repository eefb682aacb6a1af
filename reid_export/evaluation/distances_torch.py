"""The GPU path of `evaluation.distances` and `evaluation.embeddings`: the same blocks, order keys and merges, in torch.

Imported by them only for device "cuda"; everything here takes a `torch.device`, so the
tests also run it on the CPU, where small-integer embeddings make both GEMMs exact and any
difference from the numpy path a bug. Order keys are int64 as in `protocol.order_keys` (torch
sorts and selects int64 on a GPU, not uint64): CPU and GPU break ties the same way.
"""

from __future__ import annotations

import numpy as np
import torch

from .blocks import reject_nan, spans, take
from .protocol import MAX_KEY

__all__ = ["topk_keys", "evaluate_blocks"]


def topk_keys(query, gallery, k, metric, rows, cols, device, half) -> np.ndarray:
    """`distances.topk` on `device`: the sorted (num_query, k) order keys, as a host array."""
    num_query, num_gallery = query.shape[0], gallery.shape[0]
    best = torch.full((num_query, k), MAX_KEY, dtype=torch.int64, device=device)
    with torch.no_grad():
        q = _torch_prepare(query, metric, device, half)
        for g0, g1 in spans(num_gallery, cols):
            g = _torch_prepare(gallery[g0:g1], metric, device, half)
            for q0, q1 in spans(num_query, rows):
                dist = _torch_block(take(q, q0, q1), g, metric)
                _torch_check_nan(dist)
                candidates = torch.cat([best[q0:q1], _torch_keys(dist, g0)], dim=1)
                del dist
                best[q0:q1] = torch.topk(candidates, k, dim=1, largest=False, sorted=True).values
    return best.cpu().numpy()


def evaluate_blocks(query, gallery, accumulator, metric, rows, device, half) -> None:
    """Feed `accumulator` (a `protocol.RankingAccumulator`) every query block, ranked on `device`.

    Each block is fully sorted on the device; each query's same-pid entries are then found in
    it by binary search (`torch.searchsorted`), which gives their places in the ranking.
    """
    junk = torch.from_numpy(np.flatnonzero(accumulator.junk)).to(device)
    with torch.no_grad():
        q = _torch_prepare(query, metric, device, half)
        g = _torch_prepare(gallery, metric, device, half)
        for q0, q1 in spans(query.shape[0], rows):
            dist = _torch_block(take(q, q0, q1), g, metric)
            _torch_check_nan(dist)
            keys = _torch_keys(dist, 0)
            del dist
            keys[:, junk] = MAX_KEY
            pair_rows, cols, positive = accumulator.pairs(q0, q1)
            positions = np.zeros(0, np.int64)
            if pair_rows.size:
                slot = np.arange(pair_rows.size) - np.searchsorted(pair_rows, pair_rows)  # place within its row
                r, c, s = (torch.from_numpy(a).to(device) for a in (pair_rows, cols, slot))
                wanted = torch.full((q1 - q0, int(slot.max()) + 1), MAX_KEY, dtype=torch.int64, device=device)
                wanted[r, s] = keys[r, c]
                ranked = torch.sort(keys, dim=1).values
                positions = torch.searchsorted(ranked, wanted)[r, s].cpu().numpy()
            accumulator.add_positions(q0, q1, pair_rows, positions, positive)


# -- private helpers -------------------------------------------------------------------


def _torch_prepare(x: np.ndarray, metric: str, device, half: bool):
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    sq = None
    if metric == "cosine":
        t = t / t.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    else:
        sq = (t * t).sum(dim=1)
    return (t.half() if half else t), sq


def _torch_block(q, g, metric: str):
    (qx, q_sq), (gx, g_sq) = q, g
    dist = (qx @ gx.T).float()
    if metric == "cosine":
        return dist.neg_().add_(1.0).clamp_(0.0, 2.0)
    return dist.mul_(-2.0).add_(q_sq[:, None]).add_(g_sq[None, :]).clamp_(min=0.0).sqrt_()


def _torch_keys(dist, first_index: int):
    """`protocol.order_keys` in torch."""
    bits = dist.view(torch.int32)
    high = bits & 0x7FFFFFFF
    high = torch.where(bits < 0, -high, high)
    index = torch.arange(first_index, first_index + dist.shape[1], device=dist.device, dtype=torch.int64)
    return (high.to(torch.int64) << 32) | index


def _torch_check_nan(dist) -> None:
    if torch.isnan(dist).any():
        reject_nan(dist.cpu().numpy())
