
import pytest
import torch
from tiny_models import make_tiny_model

from reid_export.checkpoint import FORMAT, load_checkpoint, load_model, save_checkpoint
from reid_export.errors import CheckpointError, ReidExportError


def test_checkpoint_round_trip_keeps_config_and_weights(tmp_path):
    model = make_tiny_model()
    opt = torch.optim.Adam(model.parameters())
    path = save_checkpoint(tmp_path / "m.pt", model, epoch=3, optimizer=opt, metrics={"rank1": 50.0})
    ckpt = load_checkpoint(path)
    assert ckpt.format == FORMAT and ckpt.epoch == 3 and ckpt.metrics["rank1"] == 50.0
    loaded = load_model(path)
    assert loaded.config == model.config
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.embed(x), model.embed(x))


def test_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.pt", make_tiny_model(), epoch=1)
    before = path.read_bytes()

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(ReidExportError, match=r"m\.pt: could not write \(disk full\)"):
        save_checkpoint(path, make_tiny_model(seed=1), epoch=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left behind


def test_torch_zip_writer_failure_is_one_message_naming_the_file(tmp_path, monkeypatch):
    def full_disk(*a, **k):  # what torch.save raises on ENOSPC
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file data/0")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(ReidExportError, match=r"m\.pt: could not write the checkpoint .*disk has space"):
        save_checkpoint(tmp_path / "m.pt", make_tiny_model(), epoch=1)
    assert list(tmp_path.iterdir()) == []


def test_resume_refuses_a_bare_backbone(tmp_path):
    path = tmp_path / "backbone.pth"
    torch.save(make_tiny_model().backbone.state_dict(), path)
    with pytest.raises(CheckpointError, match="not a reid-export training checkpoint"):
        load_checkpoint(path)


def test_checkpoint_whose_weights_do_not_match_its_config_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", make_tiny_model(), epoch=1)
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["arch"] = "resnet34"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="its weights are for resnet18 but its config says resnet34: 96 missing"):
        load_model(path)


def test_temp_files_left_by_a_killed_save_are_cleaned_up_on_the_next_save(tmp_path):
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a writer that is provably gone: its pid names no live process
    leftover = tmp_path / f".m.pt.{gone.pid}.abc123.tmp"
    leftover.write_bytes(b"half a checkpoint")
    unrelated = tmp_path / ".other.pt.abc123.tmp"
    unrelated.write_bytes(b"not ours to delete")
    save_checkpoint(tmp_path / "m.pt", make_tiny_model(), epoch=1)
    assert not leftover.exists() and unrelated.exists()
    assert load_checkpoint(tmp_path / "m.pt").epoch == 1
