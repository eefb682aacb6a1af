"""A tiny Market-1501 folder of random JPEGs and a training config small enough for a test."""

from __future__ import annotations

from pathlib import Path

import pytest
from market_files import write_market

from reid_export.training import TrainConfig


@pytest.fixture(scope="session")
def jpeg_market(tmp_path_factory) -> Path:
    return write_market(tmp_path_factory.mktemp("market") / "market")


@pytest.fixture
def tiny_config(jpeg_market: Path, tmp_path: Path) -> TrainConfig:
    """resnet18 at 64x32, P x K = 2 x 2, two epochs, everything on, no worker processes."""
    return TrainConfig(
        recipe="test", data=str(jpeg_market), out=str(tmp_path / "model.pt"), arch="resnet18", height=64, width=32,
        neck="bnneck", zero_init_residual=True, epochs=2, batch_size=4, p=2, k=2, lr=1e-3, weight_decay=5e-4,
        scheduler="cosine", warmup_epochs=0.5, label_smoothing=0.1, triplet_weight=1.0, margin=0.3, flip=True,
        pad_crop=True, random_erasing=True, num_workers=0, num_threads=1, device="cpu", seed=3,
    )


@pytest.fixture(scope="session")
def synth_market(tmp_path_factory) -> Path:
    """A tiny synthetic Market-1501 with market_attribute.mat: 6 train ids, 4 test ids."""
    from reid_export.data.synthetic import generate_market1501

    root = tmp_path_factory.mktemp("synth") / "market"
    generate_market1501(root, train_ids=6, test_ids=4, distractors=3, junk=2, train_images=(6, 8),
                        gallery_images=(4, 6), cameras_per_id=(2, 3), progress=False)
    return root
