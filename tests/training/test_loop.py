"""End-to-end training on a tiny data set: checkpoint, refusal to overwrite, resume, out-of-memory."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from market_files import write_market

from reid_export.checkpoint import load_checkpoint, load_model
from reid_export.errors import CheckpointError, DataError, ReidExportError
from reid_export.training import TrainConfig, TrainResult, loop, train


def test_training_writes_a_loadable_checkpoint_with_metrics_and_recipe(tiny_config):
    result = train(tiny_config, quiet=True)
    assert isinstance(result, TrainResult) and result.checkpoint.is_file()
    assert result.seconds > 0 and result.images_per_sec > 0
    assert {"rank1", "mAP", "mINP", "loss", "id_acc"} <= set(result.metrics)
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt.epoch == 2 and ckpt.recipe == tiny_config.to_dict()
    assert ckpt.metrics["rank1"] == result.metrics["rank1"]
    model = load_model(result.checkpoint)
    assert (model.config.preprocess.height, model.config.preprocess.width) == (64, 32)
    assert model.embed(torch.zeros(2, 3, 64, 32)).shape == (2, 512)


def test_existing_checkpoint_is_never_overwritten(tiny_config, tmp_path):
    out = tmp_path / "model.pt"
    out.write_bytes(b"the user's checkpoint")
    with pytest.raises(ReidExportError, match=r"already exists; pass --resume .* or choose another --out"):
        train(replace(tiny_config, out=str(out)), quiet=True)
    assert out.read_bytes() == b"the user's checkpoint"


def test_resume_without_a_checkpoint_is_an_error(tiny_config):
    with pytest.raises(ReidExportError, match="no checkpoint at .* to continue from"):
        train(tiny_config, resume=True, quiet=True)


def test_resumed_run_ends_where_an_uninterrupted_run_ends(tiny_config, tmp_path, monkeypatch):
    config = replace(tiny_config, epochs=3)
    full = train(replace(config, out=str(tmp_path / "full.pt")), quiet=True)

    real_epoch, calls = loop.train_one_epoch, []

    def interrupted_after_two_epochs(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    part = replace(config, out=str(tmp_path / "part.pt"))
    monkeypatch.setattr(loop, "train_one_epoch", interrupted_after_two_epochs)
    with pytest.raises(KeyboardInterrupt):
        train(part, quiet=True)
    assert load_checkpoint(part.out).epoch == 2
    monkeypatch.setattr(loop, "train_one_epoch", real_epoch)
    resumed = train(part, resume=True, quiet=True)

    a, b = load_checkpoint(full.checkpoint), load_checkpoint(resumed.checkpoint)
    assert a.epoch == b.epoch == 3
    for key, tensor in a.model.items():
        torch.testing.assert_close(b.model[key], tensor, rtol=0, atol=1e-5, msg=key)
    assert resumed.metrics["rank1"] == full.metrics["rank1"]
    assert resumed.metrics["loss"] == pytest.approx(full.metrics["loss"], abs=1e-5)


def test_resume_with_another_model_is_refused(tiny_config):
    train(replace(tiny_config, epochs=1), quiet=True)
    with pytest.raises(CheckpointError, match=r"--resume: .* holds a model with neck='bnneck'"):
        train(replace(tiny_config, neck="none"), resume=True, quiet=True)


def test_cuda_out_of_memory_halves_the_batch_and_retries_the_epoch(jpeg_market, tmp_path, monkeypatch):
    config = TrainConfig(data=str(jpeg_market), out=str(tmp_path / "seed.pt"), arch="resnet18", height=64,
                         width=32, epochs=1, batch_size=8, num_workers=0, num_threads=1, device="cpu")
    real_step, sizes = loop.train_step, []

    def out_of_memory_once(model, criterion, optimizer, images, labels, **kwargs):
        sizes.append(images.shape[0])
        if len(sizes) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected by the test)")
        return real_step(model, criterion, optimizer, images, labels, **kwargs)

    monkeypatch.setattr(loop, "train_step", out_of_memory_once)
    result = train(config, quiet=True)
    assert sizes[0] == 8 and set(sizes[1:]) == {4}
    assert len(sizes) == 1 + 25 // 4
    assert load_checkpoint(result.checkpoint).recipe["batch_size"] == 4


def test_out_of_memory_at_the_smallest_pk_batch_is_an_error(tiny_config, monkeypatch):
    def always_out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected by the test)")

    monkeypatch.setattr(loop, "train_step", always_out_of_memory)
    with pytest.raises(ReidExportError, match="CUDA ran out of memory even at batch size 4"):
        train(tiny_config, quiet=True)


def test_training_needs_two_identities(tmp_path, tiny_config):
    root = write_market(tmp_path / "one", train_ids=1)
    with pytest.raises(DataError, match="at least 2 identities"):
        train(replace(tiny_config, data=str(root), k=0, triplet_weight=0.0, p=0), quiet=True)


def test_training_without_query_and_gallery_skips_evaluation(tmp_path, tiny_config):
    root = write_market(tmp_path / "trainonly")
    for name in ("query", "bounding_box_test"):
        for f in (root / name).iterdir():
            f.unlink()
        (root / name).rmdir()
    result = train(replace(tiny_config, data=str(root), epochs=1), quiet=True)
    assert "rank1" not in result.metrics and result.checkpoint.is_file()


def test_resume_from_a_checkpoint_without_training_state_is_refused(tiny_config):
    from reid_export.checkpoint import save_checkpoint
    from reid_export.models import build_model

    save_checkpoint(tiny_config.out, build_model(tiny_config.model_config(5)), epoch=1)
    with pytest.raises(CheckpointError, match="no training state"):
        train(tiny_config, resume=True, quiet=True)


def test_torch_thread_setting_is_restored_after_training(tiny_config):
    before = torch.get_num_threads()
    train(replace(tiny_config, epochs=1, num_threads=1), quiet=True)
    assert torch.get_num_threads() == before
