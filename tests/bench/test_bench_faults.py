"""A broken runtime is a row, never the end of the sweep: NaN weights, batches too big to fit, a runtime's
own batch limit, unsafe external data, a contract that does not match its graph; and the report folder
is checked before the sweep."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx_files import onnx_with_external_data_outside
from tiny_models import make_tiny_model

from reid_export.bench import BenchSettings, ModelSpec, run_bench
from reid_export.bench.report import print_table
from reid_export.bench.run import REPORT_FILES, check_report_dir, row_outcomes
from reid_export.checkpoint import save_checkpoint
from reid_export.errors import ReidExportError
from reid_export.runtimes import infer_images, make_runtime

FAST = BenchSettings(batch_sizes=(1, 2), warmup_batches=0, min_batches=1, min_seconds=0.0, stages=False,
                     progress=False)


@pytest.fixture(scope="module")
def nan_checkpoint(tmp_path_factory):
    model = make_tiny_model()
    with torch.no_grad():
        model.backbone[0].weight.fill_(float("nan"))
    return save_checkpoint(tmp_path_factory.mktemp("nan") / "nan.pt", model, epoch=1)


def test_nan_embeddings_fail_their_row_and_keep_the_good_row(tiny_market, tiny_onnx, nan_checkpoint):
    report = run_bench(tiny_market, [ModelSpec("torch", nan_checkpoint), ModelSpec("onnxruntime", tiny_onnx)], FAST,
                       log=lambda *_: None)
    bad, good = report["rows"]
    assert bad["status"].startswith("failed: ") and "embeddings are not finite (first: " in bad["status"]
    n = report["data"]["num_query"] + report["data"]["num_gallery"]
    assert f"{n} of {n} embeddings" in bad["status"]
    assert good["status"] == "ok" and good["is_reference"] and good["mAP"] > 0
    assert [len(v) for v in row_outcomes(report).values()] == [1, 1, 0]


def test_a_batch_too_big_for_memory_is_skipped_for_that_size_only(tiny_market, tiny_onnx):
    settings = BenchSettings(batch_sizes=(2, 10**8), warmup_batches=0, min_batches=1, min_seconds=0.0,
                             stages=False, progress=False)
    row = run_bench(tiny_market, [ModelSpec("onnxruntime", tiny_onnx)], settings, log=lambda *_: None)["rows"][0]
    assert row["status"] == "ok"
    assert row["throughput"]["2"]["images_per_sec"] > 0
    skipped = row["throughput"][str(10**8)]["skipped"]
    assert skipped.startswith(f"batch {10**8} needs ~") and " GB" in skipped and "available" in skipped


def test_the_runtime_owns_its_batch_limit(tiny_market, tiny_onnx):
    from reid_export.bench.run import _sweep

    images = np.random.default_rng(0).integers(0, 255, (7, 64, 32, 3), dtype=np.uint8)
    with make_runtime("onnxruntime", tiny_onnx) as rt:
        assert rt.max_batch is None  # CPU: unbounded
        whole = infer_images(rt, images, batch_size=64, progress=False)["embedding"]
        rt.max_batch = 3  # as a TensorRT engine built with --max-batch 3 reports it
        with pytest.raises(ReidExportError, match=r"max_batch 3"):
            rt.infer(rt.contract.normalize_uint8(images[:4]))
        split = infer_images(rt, images, batch_size=64, progress=False)["embedding"]  # split to fit
        sweep = _sweep(rt, images, FAST.__class__(batch_sizes=(2, 4), warmup_batches=0, min_batches=1,
                                                  min_seconds=0.0))
    np.testing.assert_allclose(split, whole, atol=1e-5)
    assert sweep["2"]["batches"] >= 1 and "max_batch 3" in sweep["4"]["skipped"]


def test_external_data_outside_the_model_folder_fails_for_safety(tmp_path):
    path = onnx_with_external_data_outside(tmp_path, size=4)
    with pytest.raises(ReidExportError, match=r"refused for safety") as error:
        make_runtime("onnxruntime", path).activate()
    assert not isinstance(error.value, __import__("reid_export.errors").errors.RuntimeUnavailable)  # failed, not skipped


def test_contract_that_disagrees_with_the_graph_is_refused_at_activation(tiny_onnx, tmp_path):
    from reid_export.artefacts.onnx_metadata import METADATA_KEY, set_metadata
    from reid_export.contract import Preprocess

    proto = onnx.load(str(tiny_onnx))
    set_metadata(proto, {METADATA_KEY: Preprocess(height=256, width=128).to_json()})
    path = tmp_path / "lying.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ReidExportError, match=r"lying\.onnx: its metadata contract says input 256x128 .* graph's input "
                                              r"is \[.*64, 32\]"):
        make_runtime("onnxruntime", path).activate()


def test_an_earlier_report_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "bench"
    out.mkdir()
    (out / "report.json").write_text("{}")
    with pytest.raises(ReidExportError, match=r"report\.json already exists .*--overwrite"):
        check_report_dir(out)
    assert check_report_dir(out, overwrite=True) == out
    assert (out / "report.json").read_text() == "{}"  # nothing is touched before the sweep
    assert "report.md" in REPORT_FILES


def test_a_file_given_as_the_report_folder_is_refused(tmp_path):
    path = tmp_path / "report.txt"
    path.write_text("mine")
    with pytest.raises(ReidExportError, match=r"report\.txt is a file; bench writes a folder"):
        check_report_dir(path)


def test_console_table_shows_each_reason_in_full(capsys):
    reason = "failed: " + " ".join(f"word{i}" for i in range(60)) + " THE-END"
    report = {"settings": {"batch_sizes": [1]}, "rows": [
        {"runtime": "torch", "model": "/x/a.pt", "status": reason},
        {"runtime": "onnxruntime", "model": "/x/b.onnx", "status": "ok", "precision": "fp32"}]}
    print_table(report)
    text = " ".join(capsys.readouterr().out.split())
    assert "failed [1]" in text and "[1] torch a.pt: " + reason in text
