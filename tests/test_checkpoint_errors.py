"""Checkpoints that cannot be used: each is one message naming the file, and nothing unsafe runs."""

from __future__ import annotations

import pytest
import torch
from tiny_models import make_tiny_model

from reid_export.checkpoint import load_model, save_checkpoint
from reid_export.errors import CheckpointError, ReidExportError


class _RunsCode:
    def __reduce__(self):
        return (print, ("this would have run",))


def test_pickles_that_would_run_code_are_refused_without_unsafe_advice(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"model": _RunsCode()}, path)
    with pytest.raises(CheckpointError) as error:
        load_model(path)
    message = str(error.value)
    assert message.startswith(f"{path}: not a plain tensor checkpoint") and "was not loaded, for safety" in message
    assert "weights_only=False" not in message and "weights_only" not in message
    assert "this would have run" not in capsys.readouterr().out


def test_a_file_that_is_not_a_checkpoint_is_not_called_unsafe(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"notes\.pt: cannot be read as a PyTorch file"):
        load_model(path)


def test_wrong_architecture_weights_are_one_summary_line(tmp_path):
    big = save_checkpoint(tmp_path / "r34.pt", make_tiny_model(), epoch=1)
    ckpt = torch.load(big, weights_only=True)
    from reid_export.models import ModelConfig, ReidNet
    from tiny_models import TINY

    ckpt["model"] = ReidNet(ModelConfig(arch="resnet34", num_classes=8, neck="bnneck", preprocess=TINY)).state_dict()
    torch.save(ckpt, big)  # the config still says resnet18
    with pytest.raises(CheckpointError) as error:
        load_model(big)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{big}: its weights are for resnet34 but its config says resnet18")
    assert "0 missing" in message and "unexpected ['backbone." in message


def test_an_unknown_arch_in_the_config_names_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "odd.pt", make_tiny_model(), epoch=1)
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["arch"] = "resnet9000"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=rf"{path}: its model config cannot be used \(unknown arch 'resnet9000'"):
        load_model(path)


@pytest.mark.parametrize("size", [(0, None), (None, -4)])
def test_zero_or_negative_input_sizes_are_refused(tiny_checkpoint, size):
    with pytest.raises(ReidExportError, match="size must be positive"):
        load_model(tiny_checkpoint, input_size=size)
