"""Kill -9 at any point, then `--resume`: training continues from the last complete epoch and ends
with the metrics (and weights) of an uninterrupted run with the same seed.

The run is `reid-export train` in a subprocess on a tiny synthetic Market-1501 set, killed twice:
once while it writes a checkpoint, once inside the epoch after one. Whenever the test looks, the
file at --out must load: checkpoints are written to a temporary file and renamed into place.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

EPOCHS = 3
# the quick recipe, shrunk: resnet18 at 64x32, P x K = 3 x 2, one thread, no worker processes
SMALL = {"height": 64, "width": 32, "p": 3, "k": 2, "batch_size": 6, "num_workers": 0, "num_threads": 1, "val_ids": 2,
         "device": "cpu"}
TIMEOUT_S = 120


@pytest.fixture
def started() -> list[subprocess.Popen]:
    """The training processes a test starts; any still running when it ends (a failure) are killed."""
    processes: list[subprocess.Popen] = []
    yield processes
    for proc in processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigkill_at_any_point_then_resume_ends_like_an_uninterrupted_run(synth_market, tmp_path, started):
    full_out, out = tmp_path / "full" / "model.pt", tmp_path / "killed" / "model.pt"
    full = _start(started, synth_market, full_out, tmp_path / "full.log")  # runs beside the killed one
    watch = _Watcher(out)

    # 1. kill while the checkpoint after the first epoch seen is rewritten (its temporary file exists)
    first = _start(started, synth_market, out, tmp_path / "run1.log")
    _wait(first, lambda: (watch.epoch() or 0) >= 1, "a checkpoint of epoch >= 1")
    before, seen_at = watch.epoch(), time.perf_counter()
    _wait(first, lambda: _temporaries(out) or watch.epoch() != before, "the next checkpoint write", poll_s=0.002)
    epoch_s = time.perf_counter() - seen_at  # about one epoch: from a checkpoint to the next write
    _kill(first)
    stale = _temporaries(out)  # left by a write the kill interrupted
    killed_in_write = bool(stale)
    assert watch.epoch() == before + (0 if killed_in_write else 1)  # the old checkpoint, whole, or the new one

    # 2. resume, and kill half an epoch after its first checkpoint (or in the final evaluation)
    second = _start(started, synth_market, out, tmp_path / "run2.log", resume=True)
    resumed_from, saves = watch.epoch(), watch.loads
    _wait(second, lambda: watch.epoch() is not None and watch.loads > saves, "a checkpoint after resuming")
    if watch.epoch() < EPOCHS:
        time.sleep(min(epoch_s / 2, 1.0))
    _kill(second)
    assert watch.epoch() in (resumed_from + 1, EPOCHS)

    # 3. resume to the end
    third = _start(started, synth_market, out, tmp_path / "run3.log", resume=True)
    _wait(third, lambda: watch.epoch() is not None and third.poll() is not None, "the resumed run to finish")
    _wait(full, lambda: full.poll() is not None, "the uninterrupted run to finish")
    for proc in (third, full):
        assert proc.returncode == 0, proc.log.read_text()[-3000:]

    a, b = _load(full_out), _load(out)
    assert a["epoch"] == b["epoch"] == EPOCHS
    for key in ("rank1", "mAP"):
        assert b["metrics"][key] == pytest.approx(a["metrics"][key], abs=0.5), key
    for key, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][key], tensor, rtol=0, atol=1e-5, msg=key)
    assert watch.loads >= 2  # read back during the first two runs (the waits above ensure it), loading every time

    # the killed write's hidden temporary was removed by the next save: only the checkpoint is left
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]
    assert not _temporaries(full_out)
    print(json.dumps({"killed_in_write": killed_in_write, "resumed_from": [before, resumed_from], "epoch_s": epoch_s,
                      "rank1": b["metrics"]["rank1"], "mAP": b["metrics"]["mAP"]}))


# -- helpers ---------------------------------------------------------------------------------------


class _Watcher:
    """Reads the checkpoint at `path` back whenever the file there changes; a read that fails fails the test."""

    def __init__(self, path: Path):
        self.path, self.loads = path, 0
        self._key, self._epoch = None, None

    def epoch(self) -> int | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            assert self._key is None, f"{self.path} disappeared after it was written"
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._key:
            self._epoch, self._key = _load(self.path)["epoch"], key
            self.loads += 1
        return self._epoch


def _load(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a half-written file under the real name
        pytest.fail(f"{path} did not load ({type(e).__name__}: {e}); checkpoint writes are not atomic")


def _start(started: list, data: Path, out: Path, log: Path, *, resume: bool = False) -> subprocess.Popen:
    sets = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    cmd = [sys.executable, "-m", "reid_export.cli", "train", "--data", str(data), "--out", str(out),
           "--recipe", "quick", "--epochs", str(EPOCHS), *sets, "-q", *(["--resume"] if resume else [])]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    with log.open("ab") as f:
        started.append(subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env))
    started[-1].log = log
    return started[-1]


def _wait(proc: subprocess.Popen, done, what: str, *, poll_s: float = 0.005) -> None:
    deadline = time.perf_counter() + TIMEOUT_S
    while not done():
        if proc.poll() is not None and not done():
            pytest.fail(f"the training process exited ({proc.returncode}) before {what}:\n"
                        f"{proc.log.read_text()[-3000:]}")
        if time.perf_counter() > deadline:
            proc.kill()
            pytest.fail(f"no {what} within {TIMEOUT_S} s")
        time.sleep(poll_s)


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL, "the process ended before it could be killed"


def _temporaries(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.*.tmp"))
