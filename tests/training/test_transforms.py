"""Transforms follow the preprocessing contract; augmentation depends only on its generator."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from reid_export.contract import Preprocess
from reid_export.data.market1501 import Sample
from reid_export.training import ReidDataset, eval_transform, train_transform

CONTRACT = Preprocess(height=64, width=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4))
IMAGE = Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(50, 30, 3), dtype=np.uint8))


def test_eval_transform_is_exactly_the_contract():
    x = eval_transform(CONTRACT)(IMAGE)
    assert x.dtype == torch.float32 and x.shape == (3, 64, 32)
    np.testing.assert_array_equal(x.numpy(), CONTRACT.image_to_array(IMAGE))


def test_train_transform_without_augmentation_is_the_contract():
    x = train_transform(CONTRACT, flip=False, pad_crop=False, random_erasing=False)(IMAGE, torch.Generator())
    np.testing.assert_array_equal(x.numpy(), CONTRACT.image_to_array(IMAGE))


def test_augmentation_is_a_function_of_the_generator_seed():
    transform = train_transform(CONTRACT)
    outputs = [transform(IMAGE, torch.Generator().manual_seed(seed)) for seed in (1, 1, 2, 3, 4)]
    assert all(x.shape == (3, 64, 32) for x in outputs)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    assert any(not torch.equal(outputs[0], x) for x in outputs[2:])


def test_flip_alone_gives_the_image_or_its_mirror():
    base = torch.from_numpy(CONTRACT.image_to_array(IMAGE))
    transform = train_transform(CONTRACT, flip=True, pad_crop=False, random_erasing=False)
    seen = {torch.equal(transform(IMAGE, torch.Generator().manual_seed(s)), base) for s in range(20)}
    assert seen == {True, False}
    for s in range(20):
        x = transform(IMAGE, torch.Generator().manual_seed(s))
        assert torch.equal(x, base) or torch.equal(x, base.flip(-1))


def test_dataset_returns_image_label_and_camera(tmp_path):
    path = tmp_path / "0005_c3s1_000001_01.jpg"
    IMAGE.save(path)
    dataset = ReidDataset([Sample(path, 5, 3)], [0], train_transform(CONTRACT))
    x, label, camid = dataset[(0, 123)]
    assert x.shape == (3, 64, 32) and (label, camid) == (0, 3)
    torch.testing.assert_close(dataset[(0, 123)][0], x, rtol=0, atol=0)
    assert dataset[0][0].shape == (3, 64, 32)
