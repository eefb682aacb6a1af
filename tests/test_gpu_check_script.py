"""benchmarks/gpu/check.sh fails at once, and says why, where there is no NVIDIA GPU (it is run for real on a
GPU machine; nothing here fakes a GPU result)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "check.sh"


def _run(path_dirs, tmp_path):
    env = {**os.environ, "PATH": os.pathsep.join(map(str, path_dirs))}
    return subprocess.run([shutil.which("bash"), str(SCRIPT), str(tmp_path / "no-demo"), str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def basic_path(tmp_path):
    """A PATH with the tools the script needs but no nvidia-smi."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("date", "ls", "sort", "tail", "grep", "head", "dirname", "mkdir", "cat", "timeout", "printf"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return bin_dir


def test_without_nvidia_smi_it_exits_3_saying_there_is_no_gpu(basic_path, tmp_path):
    r = _run([basic_path], tmp_path)
    assert r.returncode == 3 and "no NVIDIA GPU here: nvidia-smi is not on PATH" in r.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_driver_without_a_gpu_exits_3(basic_path, tmp_path):
    smi = basic_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'No devices were found'\n")
    smi.chmod(0o755)
    r = _run([basic_path], tmp_path)
    assert r.returncode == 3 and "nvidia-smi lists no GPU (No devices were found)" in r.stderr
