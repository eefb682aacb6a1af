"""Two writers of one checkpoint: the second is refused at start, naming the first; a live writer's
temp file is never removed by another process; a full disk is one message, before any epoch."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from lock_holder import holding_lock

from reid_export.checkpoint import save_checkpoint
from reid_export.errors import ReidExportError
from reid_export.files import output_lock
from reid_export.training import train
from reid_export.training import loop as training_loop

@pytest.fixture
def other_writer(tmp_path):
    """A real second process holding the lock of tmp_path/model.pt."""
    out = tmp_path / "model.pt"
    with holding_lock(out, "reid-export", "train", "--out", str(out)) as proc:
        yield out, proc


def test_second_train_on_the_same_out_is_refused_naming_the_first(tiny_config, other_writer):
    out, proc = other_writer
    with pytest.raises(ReidExportError, match=rf"being written by pid {proc.pid} .*reid-export train --out"):
        train(replace(tiny_config, out=str(out)), quiet=True)
    assert not out.exists()  # the refused run wrote nothing


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, other_writer):
    out, proc = other_writer
    proc.kill()
    proc.wait()
    with output_lock(out, "second") as lock:
        assert lock.exists() and f'"pid": {os.getpid()}' in lock.read_text()
    assert not lock.exists()


def test_live_writers_temp_file_is_not_removed_by_another_save(tmp_path, tiny_model):
    out = tmp_path / "model.pt"
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        theirs = tmp_path / f".model.pt.{alive.pid}.abcd1234.tmp"
        theirs.write_bytes(b"half a checkpoint being written")
        save_checkpoint(out, tiny_model, epoch=1)
        assert theirs.read_bytes() == b"half a checkpoint being written"
    finally:
        alive.kill()
        alive.wait()
    save_checkpoint(out, tiny_model, epoch=2)  # its owner is provably gone now
    assert not theirs.exists()
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # usual permissions, not 0600


def test_full_disk_is_refused_before_the_first_epoch(tiny_config, monkeypatch):
    epochs = []
    monkeypatch.setattr(training_loop, "train_one_epoch", lambda *a, **k: epochs.append(1))
    monkeypatch.setattr("reid_export.files.free_bytes", lambda folder: 1000)  # the disk, not the code under test
    with pytest.raises(ReidExportError, match=r"checkpoint .*model\.pt needs about .* MB but .* has only 1.0 kB free"):
        train(tiny_config, quiet=True)
    assert not epochs and not Path(tiny_config.out).exists()
    assert not list(Path(tiny_config.out).parent.glob(".model.pt.lock"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused_before_training(tiny_config, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        started = time.perf_counter()
        with pytest.raises(ReidExportError, match=r"ro is not writable"):
            train(replace(tiny_config, out=str(folder / "model.pt")), quiet=True)
        assert time.perf_counter() - started < 30
    finally:
        folder.chmod(0o755)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
