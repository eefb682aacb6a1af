"""The command line end to end, through the real entry point, on a tiny synthetic set."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow
TINY_TRAIN = ["--set", "height=64", "--set", "width=32", "--set", "p=4", "--set", "k=2", "--set", "batch_size=8",
              "--set", "num_workers=0", "--set", "val_ids=2"]  # the quick recipe holds out 15 ids; the tiny set has 6


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "reid_export.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def data(workdir):
    out = workdir / "data"
    r = run_cli("synth", out, "--train-ids", 6, "--test-ids", 4, "--seed", 1, "-q")
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def checkpoint(workdir, data):
    out = workdir / "model.pt"
    r = run_cli("train", "--data", data, "--out", out, "--recipe", "quick", "--epochs", 1, *TINY_TRAIN, "-q")
    assert r.returncode == 0, r.stderr
    assert "rank1" in r.stdout
    return out


@pytest.fixture(scope="module")
def onnx_model(workdir, data, checkpoint):
    out = workdir / "model.onnx"
    r = run_cli("onnx", checkpoint, "-o", out, "--data", data)
    assert r.returncode == 0, r.stderr
    assert "min cosine" in r.stdout and "images from" in r.stdout
    return out


def test_synth_writes_the_official_layout_and_refuses_to_overwrite(data):
    for folder in ("bounding_box_train", "bounding_box_test", "query"):
        assert any((data / folder).glob("*.jpg"))
    before = sorted(p.name for p in (data / "query").iterdir())
    r = run_cli("synth", data, "--train-ids", 2, "--test-ids", 2, "-q")
    assert r.returncode == 2 and "bounding_box_train" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in (data / "query").iterdir()) == before


def test_train_refuses_to_overwrite_a_checkpoint_without_resume(checkpoint, data):
    before = checkpoint.read_bytes()
    r = run_cli("train", "--data", data, "--out", checkpoint, "--epochs", 1, *TINY_TRAIN, "-q")
    assert r.returncode == 2 and "--resume" in r.stderr
    assert checkpoint.read_bytes() == before


def test_bench_reports_both_runtimes_and_refuses_a_negative_gate(workdir, data, checkpoint, onnx_model):
    report_dir = workdir / "report"
    r = run_cli("bench", "--data", data, "--model", checkpoint, "--model", onnx_model, "--batch-sizes", "1,2",
                "--out", report_dir, "-q")
    assert r.returncode == 0, r.stderr
    report = json.loads((report_dir / "report.json").read_text())
    assert [row["status"] for row in report["rows"]] == ["ok", "ok"]
    assert abs(report["rows"][0]["mAP"] - report["rows"][1]["mAP"]) < 0.1
    assert "Rank-1" in (report_dir / "report.md").read_text()
    r = run_cli("bench", "--data", data, "--model", checkpoint, "--model", onnx_model, "--batch-sizes", "1",
                "--out", workdir / "gated", "--max-map-drop", "-1", "-q")  # a negative drop is refused (issue 17)
    assert r.returncode == 2 and r.stderr.startswith("error: --max-map-drop takes") and not (workdir / "gated").exists()
    # a gate that fires end to end needs a row below its reference: tests/bench/test_gates.py covers the rule


def test_int8_export_from_the_cli_records_its_calibration(workdir, data, checkpoint):
    out = workdir / "model.int8.onnx"
    r = run_cli("onnx", checkpoint, "-o", out, "--precision", "int8", "--calib-data", data, "--calib-images", 16,
                "--data", data, "-q")
    assert r.returncode == 0, r.stderr
    assert "int8" in r.stdout and out.exists()


@pytest.mark.parametrize("args,expected", [
    (["train", "--data", "{tmp}/nowhere", "--out", "{tmp}/x.pt"], "nowhere"),
    (["onnx", "{tmp}/corrupt.pt", "-o", "{tmp}/x.onnx"], "corrupt.pt"),
    (["bench", "--data", "{data}", "--model", "{tmp}/missing.onnx"], "missing.onnx"),
    (["bench", "--data", "{data}", "--model", "{tmp}/corrupt.pt", "--batch-sizes", "0"], "--batch-sizes"),
])
def test_bad_input_gives_one_clear_message_and_exit_2(args, expected, tmp_path, data):
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 truncated")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    r = run_cli(*[a.format(tmp=tmp_path, data=data) for a in args], cwd=cwd)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert expected in r.stderr and "Traceback" not in r.stderr
    assert list(cwd.iterdir()) == []  # no empty runs/bench-<time>/ left behind by a refused run


def test_help_works_and_lists_every_command():
    r = run_cli("--help")
    assert r.returncode == 0
    for command in ("synth", "train", "onnx", "bench", "demo"):
        assert command in r.stdout


def test_help_lists_the_commands_in_data_flow_order():
    r = run_cli("--help")
    assert r.returncode == 0
    flow = ["synth", "train", "onnx", "trt", "bench", "visualize", "predict", "demo"]
    lines = [line.strip("│ ").split(" ")[0] for line in r.stdout.splitlines()]
    listed = [name for name in lines if name in flow]
    assert listed == flow, listed


@pytest.mark.parametrize("command", ["synth", "train", "onnx", "trt", "bench", "visualize", "predict", "demo"])
def test_every_command_that_writes_takes_o_and_out(command):
    r = run_cli(command, "--help")
    assert r.returncode == 0
    assert "--out" in r.stdout and "-o" in r.stdout


def test_the_old_output_spelling_still_works_with_a_notice(workdir, checkpoint):
    out = workdir / "old-spelling.onnx"
    r = run_cli("onnx", checkpoint, "--output", out, "-q")
    assert r.returncode == 0, r.stderr
    assert out.exists() and "--output is now -o/--out" in r.stderr


def test_synth_takes_o_as_well_as_the_argument(tmp_path):
    r = run_cli("synth", "-o", tmp_path / "s", "--train-ids", 2, "--test-ids", 2, "-q")
    assert r.returncode == 0, r.stderr
    assert any((tmp_path / "s" / "query").glob("*.jpg"))
    r = run_cli("synth", tmp_path / "a", "-o", tmp_path / "b", "-q")
    assert r.returncode == 2 and "give one" in r.stderr


def test_set_values_are_read_like_recipe_values():
    from reid_export.options import parse_sets

    assert parse_sets(["height=64", "lr=2e-3", "flip=false", "lr_steps=[40, 70]", "arch=resnet50"]) == {
        "height": 64, "lr": 2e-3, "flip": False, "lr_steps": [40, 70], "arch": "resnet50"}
