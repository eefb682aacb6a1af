"""The checkpoint schema as a type: `Checkpoint` / `ResumeState` read and write the same plain dict as before, and
files written before a key existed still load."""

from __future__ import annotations

import pytest
import torch
from tiny_models import make_tiny_model

from reid_export.checkpoint import FORMAT, Checkpoint, ResumeState, load_checkpoint, load_model, save_checkpoint
from reid_export.errors import CheckpointError
from reid_export.verified.run import recorded_validation_ids

CHOICE = {"embedding": "pooled", "neck": {"mAP": 40.0}, "pooled": {"mAP": 45.0}, "reason": "pooled: validation mAP"}
VALIDATION = {"source": "market training ids held out", "ids": [8, 9], "num_query": 4, "num_gallery": 6,
              "choice": CHOICE}


def test_a_checkpoint_of_the_first_format_without_the_later_keys_still_loads(tmp_path):
    model = make_tiny_model()
    path = tmp_path / "old.pt"
    torch.save({"format": FORMAT, "model": model.state_dict(), "config": model.config.to_dict(), "epoch": 2,
                "optimizer": None, "lr_scheduler": None, "metrics": {"rank1": 12.5}}, path)  # no recipe, state, ids
    ckpt = load_checkpoint(path)
    assert ckpt.epoch == 2 and ckpt.metrics == {"rank1": 12.5} and ckpt.recipe == {} and ckpt.extra == {}
    assert ckpt.train_state is None and ckpt.validation is None
    assert ckpt.validation_ids is None and ckpt.embedding_choice is None
    assert recorded_validation_ids(path) is None
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(load_model(path).embed(x), model.eval().embed(x))


def test_a_saved_checkpoint_is_the_same_plain_dict_and_reads_back_typed(tmp_path):
    model = make_tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    resume = ResumeState(rng={"torch": torch.get_rng_state()}, sampler_epoch=3, steps_per_epoch=5,
                         history=[{"epoch": 3, "loss": 1.0}], criterion={"center.centers": torch.ones(2, 4)})
    path = save_checkpoint(tmp_path / "m.pt", model, epoch=3, optimizer=optimizer, metrics={"mAP": 40.0},
                           recipe={"batch_size": 8}, train_state=resume, validation=VALIDATION)
    raw = torch.load(path, weights_only=True)  # plain dicts and tensors only: no pickled class
    assert list(raw) == ["format", "model", "config", "epoch", "optimizer", "lr_scheduler", "metrics", "recipe",
                         "train_state", "validation"]
    assert raw["train_state"]["sampler_epoch"] == 3 and raw["validation"]["ids"] == [8, 9]
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt.train_state, ResumeState) and ckpt.train_state.history == [{"epoch": 3, "loss": 1.0}]
    torch.testing.assert_close(ckpt.train_state.criterion["center.centers"], torch.ones(2, 4))
    assert ckpt.train_state.scaler is None and ckpt.optimizer["param_groups"][0]["lr"] == 0.1
    assert ckpt.validation_ids == [8, 9] and ckpt.embedding_choice == CHOICE
    assert recorded_validation_ids(path) == [8, 9]


def test_keys_a_later_version_adds_are_kept_when_written_back(tmp_path):
    model = make_tiny_model()
    written = {"format": FORMAT, "model": model.state_dict(), "config": model.config.to_dict(), "epoch": 1,
               "ema": {"decay": 0.999}}
    ckpt = Checkpoint.from_dict(written)
    assert ckpt.extra == {"ema": {"decay": 0.999}} and ckpt.to_dict()["ema"] == {"decay": 0.999}


def test_a_checkpoint_without_weights_or_config_names_what_is_missing(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save({"format": FORMAT, "epoch": 1, "config": make_tiny_model().config.to_dict()}, path)
    with pytest.raises(CheckpointError, match=r"cut\.pt: a reid-export checkpoint without its model \(expected"):
        load_checkpoint(path)


def test_resume_refuses_a_checkpoint_without_training_state(tmp_path, tiny_config):
    from reid_export.training import train

    out = tmp_path / "weights-only.pt"
    save_checkpoint(out, make_tiny_model(), epoch=1)
    with pytest.raises(CheckpointError, match="holds weights but no training state"):
        train(tiny_config.with_overrides({"out": str(out)}), resume=True, quiet=True)
