"""PyTorch's compiled rows: `torch-compile` (inductor, frozen weights) and `torch-aot` (a `.pt2` written by
`reid-export aot`), against eager PyTorch, in the bench like every other row. Compiling takes a minute or more
on 2 cores, so the compiling tests are `slow`, share one package, and compile the fewest batch ranges."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from tiny_models import make_tiny_model

from reid_export.bench.run import ModelSpec, run_bench
from reid_export.bench.settings import BenchSettings
from reid_export.errors import ExportError, RuntimeUnavailable
from reid_export.runtimes import make_runtime, parse_model_spec

BATCH = np.random.default_rng(0).standard_normal((3, 3, 64, 32), dtype=np.float32)
FP32_PARITY = 0.9999  # export.settings.DEFAULT_MIN_COSINE["fp32"]: the bar every FP32 export meets


@pytest.fixture
def no_cpp_compiler():
    """Inductor looking for a C++ compiler that is not there (its own setting, as on a machine without g++)."""
    from torch._inductor import config

    with config.patch({"cpp.cxx": ("/nonexistent/c++",)}):
        yield


@pytest.fixture(scope="module")
def tiny_package(tmp_path_factory, tiny_checkpoint, tiny_market):
    """`reid-export aot` on the tiny checkpoint, as a user runs it (parity on the tiny set's images)."""
    out = tmp_path_factory.mktemp("aot") / "tiny.pt2"
    result = subprocess.run([sys.executable, "-m", "reid_export.cli", "aot", str(tiny_checkpoint), "-o", str(out),
                             "--data", str(tiny_market)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return out, result.stdout


def test_torch_compile_without_a_cpp_compiler_is_unavailable_and_says_why(tiny_checkpoint, no_cpp_compiler):
    with pytest.raises(RuntimeUnavailable, match=r"C\+\+ compiler.*/nonexistent/c\+\+.*torch runtime"):
        make_runtime("torch-compile", tiny_checkpoint).activate()


def test_aot_export_without_a_cpp_compiler_stops_before_any_work(tiny_checkpoint, tmp_path, no_cpp_compiler):
    from reid_export.verified.aot import export_aot

    with pytest.raises(RuntimeUnavailable, match=r"C\+\+ compiler"):
        export_aot(tiny_checkpoint, tmp_path / "m.pt2")
    assert not (tmp_path / "m.pt2").exists()


def test_aot_output_must_end_in_pt2(tiny_checkpoint, tmp_path):
    from reid_export.verified.aot import export_aot

    with pytest.raises(ExportError, match=r"must end in \.pt2.*-o engines/model\.pt2"):
        export_aot(tiny_checkpoint, tmp_path / "model.onnx")


def test_aot_overwrite_refuses_a_file_that_is_not_a_package(tiny_checkpoint, tmp_path):
    from reid_export.verified.aot import export_aot

    notes = tmp_path / "notes.pt2"
    notes.write_text("my notes")
    with pytest.raises(ExportError, match="AOTInductor package"):
        export_aot(tiny_checkpoint, notes, overwrite=True)
    assert notes.read_text() == "my notes"


@pytest.mark.slow
def test_aot_package_carries_the_contract_and_runs_any_batch_like_eager(tiny_package, tiny_checkpoint):
    path, stdout = tiny_package
    assert "wrote" in stdout and "compiled in" in stdout and "min cosine" in stdout
    assert parse_model_spec(str(path)) == ("torch-aot", path)  # a .pt2 runs on torch-aot by default
    with make_runtime("torch", tiny_checkpoint) as eager:
        expected = eager.infer(BATCH)["embedding"]
        contract = eager.contract
    with make_runtime("torch-aot", path) as rt:
        assert rt.contract == contract  # read back from the package, not re-typed
        assert rt.info.arch == "resnet18" and rt.precision == "fp32"
        got = rt.infer(BATCH)["embedding"]
        assert rt.infer(BATCH[:1])["embedding"].shape == (1, 512)  # the batch axis is dynamic from 1
        assert rt.infer(np.concatenate([BATCH] * 7))["embedding"].shape == (21, 512)
    assert (got * expected).sum(axis=1).min() >= FP32_PARITY


@pytest.mark.slow
def test_aot_package_metadata_holds_the_contract_model_and_outputs(tiny_package):
    path, _ = tiny_package
    with zipfile.ZipFile(path) as archive:  # what any reader of the .pt2 finds, without loading the model
        texts = [archive.read(n) for n in archive.namelist() if n.endswith("wrapper_metadata.json")]
    meta = json.loads(texts[0])
    assert json.loads(meta["reid_export.preprocess"])["height"] == 64
    assert json.loads(meta["reid_export.model"])["arch"] == "resnet18"
    assert json.loads(meta["reid_export.outputs"]) == ["embedding"] and meta["reid_export.precision"] == "fp32"


@pytest.mark.slow
def test_a_package_that_fails_parity_is_kept_as_failed_pt2_or_deleted(tiny_package, tmp_path):
    from reid_export.verified.parity import verify_export

    kept, deleted = tmp_path / "kept.pt2", tmp_path / "deleted.pt2"
    for copy in (kept, deleted):
        shutil.copyfile(tiny_package[0], copy)
    other = make_tiny_model(seed=1)  # other weights: the package does not reproduce them
    result = verify_export(other, kept, runtime="torch-aot", keep_failed=True)
    assert not result.passed and result.path == tmp_path / "kept.failed.pt2" and result.path.is_file()
    assert not kept.exists() and "kept as" in result.failure()
    result = verify_export(other, deleted, runtime="torch-aot")
    assert not result.passed and result.removed and not deleted.exists()


@pytest.mark.slow
def test_bench_rows_for_compiled_torch_are_parity_checked_against_eager_with_compile_time_apart(
        tiny_package, tiny_checkpoint, tiny_market):
    path, _ = tiny_package
    specs = [ModelSpec("torch", tiny_checkpoint),
             ModelSpec("torch-compile", tiny_checkpoint, options=(("warm_batches", (2,)),)),
             ModelSpec("torch-aot", path)]
    # batches of 2..15 only (throughput and extraction), the one range torch-compile compiled on activate
    settings = BenchSettings(batch_sizes=(4,), eval_batch_size=_eval_batch(tiny_market), stages=False,
                             progress=False, min_seconds=0.0, warmup_batches=1)
    report = run_bench(tiny_market, specs, settings, log=lambda _: None)
    rows = {row["runtime"]: row for row in report["rows"]}
    assert [row["status"] for row in rows.values()] == ["ok", "ok", "ok"], report["rows"]
    assert rows["torch"]["is_reference"]
    for name in ("torch-compile", "torch-aot"):
        assert rows[name]["reference"].startswith("torch:") and rows[name]["cosine_min"] >= FP32_PARITY
        assert rows[name]["mAP"] == pytest.approx(rows["torch"]["mAP"], abs=0.01)
    # compiled on activate, timed apart from the throughput; the provider says what ran
    assert rows["torch-compile"]["compile_seconds"] > 0 and "compile_seconds" not in rows["torch-aot"]
    assert "inductor, frozen weights" in rows["torch-compile"]["provider"]
    assert "AOTInductor" in rows["torch-aot"]["provider"]


def _eval_batch(market) -> int:
    """An extraction batch size in 2..15 whose last batch is not 1 image (batch 1 is a range of its own)."""
    count = sum(1 for d in ("query", "bounding_box_test") for p in (market / d).iterdir() if p.suffix == ".jpg")
    return next(bs for bs in range(15, 1, -1) if count % bs != 1)
