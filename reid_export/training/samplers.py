"""Batch samplers for training: P identities x K images, or plain random batches.

Both are batch samplers (pass them as `DataLoader(batch_sampler=...)`) and work like
`DistributedSampler`: call `set_epoch(epoch)` before each epoch. An epoch's batches depend only on
(seed, epoch), so a resumed run draws exactly the batches an uninterrupted one would.

Each batch is a list of `(index, draw)` pairs: the dataset index and a random 63-bit integer that
seeds that image's augmentation. Augmentation therefore does not depend on worker processes, their
number or their global RNG state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..errors import DataError

__all__ = ["PKSampler", "RandomBatchSampler"]

Batch = list[tuple[int, int]]


class PKSampler:
    """Batches of `p` distinct identities with `k` images each.

    Identities are visited in shuffled rounds, so every identity appears about equally often; the
    images of an identity are taken from its own shuffled stream, without repeats within a batch
    while it has at least `k` images, and with replacement when it has fewer. An epoch has
    max(1, len(labels) // (p * k)) batches.
    """

    def __init__(self, labels: Sequence[int], p: int, k: int, *, seed: int = 0):
        self.p, self.k, self.seed, self.epoch = p, k, seed, 0
        by_label: dict[int, list[int]] = {}
        for index, label in enumerate(labels):
            by_label.setdefault(int(label), []).append(index)
        self._groups = [np.asarray(by_label[label]) for label in sorted(by_label)]
        if p < 1 or k < 1:
            raise DataError(f"P x K sampling needs p >= 1 and k >= 1, found p = {p}, k = {k}")
        if len(self._groups) < p:
            raise DataError(
                f"P x K sampling with p = {p} identities per batch, but the training split has only "
                f"{len(self._groups)} identities; lower p (or batch_size) to at most {len(self._groups)}"
            )
        self._num_batches = max(1, len(labels) // (p * k))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self._num_batches

    def __iter__(self) -> Iterator[Batch]:
        rng = np.random.default_rng([self.seed, self.epoch])
        streams = [_Stream(group) for group in self._groups]
        queue: list[int] = []
        for _ in range(self._num_batches):
            batch: list[int] = []
            for group in _next_distinct(queue, self.p, len(self._groups), rng):
                batch.extend(streams[group].take(self.k, rng))
            yield _with_draws(batch, rng)


class RandomBatchSampler:
    """Shuffled batches of `batch_size` images; the last incomplete batch is dropped (a batch of one
    breaks BatchNorm), unless the whole split is smaller than one batch."""

    def __init__(self, num_samples: int, batch_size: int, *, seed: int = 0):
        if num_samples < 1 or batch_size < 1:
            raise DataError(f"random batches need images and batch_size >= 1, found {num_samples} images "
                            f"and batch_size {batch_size}")
        self.num_samples, self.batch_size, self.seed, self.epoch = num_samples, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return max(1, self.num_samples // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.num_samples).tolist()
        size = min(self.batch_size, self.num_samples)
        for start in range(0, len(self) * size, size):
            yield _with_draws(order[start:start + size], rng)


# -- helpers ---------------------------------------------------------------------------------------


class _Stream:
    """An identity's image indices in shuffled order, reshuffled when too few are left for a visit."""

    def __init__(self, indices: np.ndarray):
        self.indices = indices
        self.pending: list[int] = []

    def take(self, k: int, rng: np.random.Generator) -> list[int]:
        if len(self.indices) < k:  # too few images: all of them, topped up with replacement
            extra = rng.choice(self.indices, size=k - len(self.indices), replace=True)
            return self.indices.tolist() + extra.tolist()
        if len(self.pending) < k:
            self.pending = rng.permutation(self.indices).tolist()
        taken, self.pending = self.pending[:k], self.pending[k:]
        return taken


def _next_distinct(queue: list[int], p: int, num_groups: int, rng: np.random.Generator) -> list[int]:
    """Pop `p` distinct groups from the front of `queue`, refilling it with shuffled rounds of all
    groups; groups skipped as duplicates stay queued for the next batch."""
    chosen: list[int] = []
    i = 0
    while len(chosen) < p:
        if i == len(queue):
            queue.extend(rng.permutation(num_groups).tolist())
        if queue[i] in chosen:
            i += 1
        else:
            chosen.append(queue.pop(i))
    return chosen


def _with_draws(indices: list[int], rng: np.random.Generator) -> Batch:
    draws = rng.integers(0, 2**63 - 1, size=len(indices))
    return [(int(i), int(d)) for i, d in zip(indices, draws)]
