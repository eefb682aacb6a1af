"""`reid-export triton` and `reid-export deepstream` through the real entry point."""

import subprocess
import sys

import pytest
import yaml

from reid_export.deploy.triton import parse_config

pytestmark = pytest.mark.slow


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "reid_export.cli", *map(str, args)], check=False, capture_output=True,
                          text=True, timeout=600)


def test_triton_command_writes_a_repository_that_parses(tiny_onnx, tmp_path):
    r = run_cli("triton", tiny_onnx, "-o", tmp_path / "repo", "--name", "people", "--max-batch", 32,
                "--instances", 2, "--preferred-batch", "8,32")
    assert r.returncode == 0, r.stderr
    assert "checked against Triton's model-config schema" in r.stdout
    cfg = parse_config((tmp_path / "repo" / "people" / "config.pbtxt").read_text())
    assert cfg.name == "people" and cfg.max_batch_size == 32 and cfg.instance_group[0].count == 2
    assert list(cfg.dynamic_batching.preferred_batch_size) == [8, 32]
    assert (tmp_path / "repo" / "people" / "1" / "model.onnx").is_file()
    r = run_cli("triton", tiny_onnx, "-o", tmp_path / "repo", "--name", "people")
    assert r.returncode == 2 and "already exists" in r.stderr


def test_deepstream_command_writes_the_model_and_the_reid_section(tiny_checkpoint, tmp_path):
    r = run_cli("deepstream", tiny_checkpoint, "-o", tmp_path / "ds", "--batch-size", 8, "--network-mode", "fp32")
    assert r.returncode == 0, r.stderr
    reid = yaml.safe_load((tmp_path / "ds" / "config_tracker_reid.yml").read_text())["ReID"]
    assert reid["batchSize"] == 8 and reid["networkMode"] == 0 and reid["onnxFile"].endswith("reid.onnx")
    assert "min cosine 1.0000" in r.stdout or "min cosine 0.9999" in r.stdout
