"""P x K and random batch samplers: batch composition, determinism, epochs."""

from __future__ import annotations

from collections import Counter

import pytest

from reid_export.errors import DataError
from reid_export.training import PKSampler, RandomBatchSampler

# 10 identities with 2..11 images each; identity 0 has fewer than K = 4
LABELS = [label for label in range(10) for _ in range(label + 2)]


def _epoch(sampler, epoch: int) -> list[list[tuple[int, int]]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_every_pk_batch_has_p_identities_with_k_images():
    sampler = PKSampler(LABELS, p=3, k=4, seed=0)
    batches = _epoch(sampler, 0)
    assert len(batches) == len(sampler) == len(LABELS) // 12
    for batch in batches:
        counts = Counter(LABELS[i] for i, _ in batch)
        assert len(counts) == 3 and set(counts.values()) == {4}
        for label in counts:  # no repeated image unless the identity has fewer than K
            images = [i for i, _ in batch if LABELS[i] == label]
            assert len(set(images)) == min(4, LABELS.count(label))


def test_identities_with_fewer_than_k_images_are_sampled_with_replacement():
    sampler = PKSampler([0, 0, 1, 1, 1, 1, 2, 2, 2, 2], p=3, k=4, seed=1)
    batch = _epoch(sampler, 0)[0]
    assert sorted(i for i, _ in batch if i < 2).count(0) >= 1
    assert len([i for i, _ in batch if i < 2]) == 4 and set(i for i, _ in batch if i < 2) == {0, 1}


def test_pk_sampler_is_deterministic_for_a_seed_and_differs_by_epoch_and_seed():
    a, b = PKSampler(LABELS, 3, 4, seed=7), PKSampler(LABELS, 3, 4, seed=7)
    assert _epoch(a, 2) == _epoch(b, 2)
    assert _epoch(a, 0) != _epoch(a, 1)
    assert _epoch(a, 0) != _epoch(PKSampler(LABELS, 3, 4, seed=8), 0)


def test_pk_sampler_visits_identities_evenly():
    labels = [label for label in range(8) for _ in range(16)]
    sampler = PKSampler(labels, p=4, k=4, seed=0)
    visits = Counter(labels[batch[j][0]] for batch in _epoch(sampler, 0) for j in range(0, 16, 4))
    assert sorted(visits.values()) == [4] * 8


def test_draws_differ_between_images():
    draws = [d for batch in _epoch(PKSampler(LABELS, 3, 4, seed=0), 0) for _, d in batch]
    assert len(set(draws)) == len(draws)


def test_more_identities_per_batch_than_in_the_data_is_an_error():
    with pytest.raises(DataError, match=r"p = 11 identities per batch.*only 10 identities"):
        PKSampler(LABELS, p=11, k=2)


def test_random_batches_cover_each_image_at_most_once_and_drop_the_remainder():
    sampler = RandomBatchSampler(10, 4, seed=0)
    batches = _epoch(sampler, 0)
    assert len(batches) == len(sampler) == 2
    indices = [i for batch in batches for i, _ in batch]
    assert all(len(batch) == 4 for batch in batches) and len(set(indices)) == 8
    assert _epoch(sampler, 0) == batches and _epoch(sampler, 1) != batches


def test_random_batches_smaller_split_than_one_batch_gives_one_batch():
    assert [len(b) for b in _epoch(RandomBatchSampler(3, 32), 0)] == [3]
