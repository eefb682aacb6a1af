import json
from pathlib import Path

import numpy as np
import pytest

from reid_export.bench import BenchSettings, ModelSpec, run_bench
from reid_export.bench.report import table_rows, write_report
from reid_export.checkpoint import load_model
from reid_export.data.market1501 import load_market1501
from reid_export.evaluation.distances import pairwise_distance
from reid_export.evaluation.protocol import evaluate_ranking

FAST = BenchSettings(batch_sizes=(1, 4), warmup_batches=1, min_batches=2, min_seconds=0.0, progress=False)


@pytest.fixture(scope="module")
def report(tiny_market, tiny_checkpoint, tiny_onnx, tmp_path_factory):
    broken = tmp_path_factory.mktemp("broken") / "broken.onnx"
    broken.write_bytes(b"\x00" * 64)
    specs = [ModelSpec("torch", tiny_checkpoint), ModelSpec("onnxruntime", tiny_onnx),
             ModelSpec("onnxruntime", broken), ModelSpec("torch-cuda", tiny_checkpoint)]
    return run_bench(tiny_market, specs, FAST, log=lambda *_: None)


def test_each_runtime_gets_a_row_with_status(report):
    statuses = [row["status"] for row in report["rows"]]
    assert statuses[:2] == ["ok", "ok"]
    assert statuses[2].startswith("failed: ") and "broken.onnx" in statuses[2]
    import torch

    if not torch.cuda.is_available():
        assert statuses[3].startswith("skipped: ") and "CUDA" in statuses[3]


def test_throughput_is_reported_per_batch_size(report):
    for row in report["rows"][:2]:
        assert set(row["throughput"]) == {"1", "4"}
        for t in row["throughput"].values():
            assert t["images_per_sec"] > 0 and 0 < t["p50_ms"] <= t["p99_ms"] and t["batches"] >= 2


def test_accuracy_equals_a_direct_evaluation_of_the_torch_embeddings(report, tiny_market, tiny_checkpoint):
    data = load_market1501(tiny_market, splits=("query", "gallery"), progress=False)
    model = load_model(tiny_checkpoint)
    c = model.config.preprocess
    import torch

    with torch.no_grad():
        q = torch.nn.functional.normalize(model.embed(torch.from_numpy(c.load_batch([s.path for s in data.query]))), dim=1)
        g = torch.nn.functional.normalize(model.embed(torch.from_numpy(c.load_batch([s.path for s in data.gallery]))), dim=1)
    m = evaluate_ranking(pairwise_distance(q.numpy(), g.numpy()),
                         np.array([s.pid for s in data.query]), np.array([s.pid for s in data.gallery]),
                         np.array([s.camid for s in data.query]), np.array([s.camid for s in data.gallery]))
    row = report["rows"][0]
    assert row["rank1"] == pytest.approx(m["rank1"], abs=1e-3) and row["mAP"] == pytest.approx(m["mAP"], abs=1e-3)


def test_onnxruntime_agrees_with_the_torch_reference(report):
    torch_row, ort_row = report["rows"][:2]
    assert ort_row["reference"] == "torch:tiny.pt"
    assert ort_row["cosine_min"] > 0.9999
    assert abs(ort_row["mAP"] - torch_row["mAP"]) < 0.1 and abs(ort_row["rank1"] - torch_row["rank1"]) < 0.1


def test_report_is_written_as_json_and_markdown(report, tmp_path):
    json_path, md_path = write_report(report, tmp_path / "out")
    assert json.loads(json_path.read_text())["rows"][1]["runtime"] == "onnxruntime"
    md = md_path.read_text()
    header, cells = table_rows(report)
    assert "| " + " | ".join(header) + " |" in md
    assert len(cells) == 4 and "img/s @4" in header
    model = header.index("model")  # rows of two files at one precision stay apart
    assert [line[model] for line in cells] == [Path(r["model"]).name for r in report["rows"]]
    assert report["machine"]["cpu_count"] >= 1 and "onnxruntime" in report["machine"]


def test_report_has_both_plots_and_links_them(report, tmp_path):
    from PIL import Image

    _, md_path = write_report(report, tmp_path / "plots")
    md = md_path.read_text()
    for name in ("throughput.png", "accuracy_vs_throughput.png"):
        with Image.open(tmp_path / "plots" / name) as im:
            assert im.size[0] > 300 and im.size[1] > 200
        assert f"]({name})" in md


def test_compare_reports_gives_percent_speed_and_point_accuracy_changes(report):
    import copy

    from reid_export.bench.report import compare_reports

    newer = copy.deepcopy(report)
    row = newer["rows"][1]
    row["throughput"]["4"]["images_per_sec"] = report["rows"][1]["throughput"]["4"]["images_per_sec"] * 1.1
    row["mAP"] = report["rows"][1]["mAP"] - 2.0
    changes = {c["row"]: c for c in compare_reports(report, newer)}
    assert set(changes) == {"torch fp32", "onnxruntime fp32"}  # failed/skipped rows are not compared
    assert changes["onnxruntime fp32"]["images_per_sec_change_pct@4"] == pytest.approx(10.0, abs=0.05)
    assert changes["onnxruntime fp32"]["mAP_change"] == pytest.approx(-2.0, abs=1e-3)
    assert changes["torch fp32"]["mAP_change"] == 0


class _RunsOutOfMemoryAbove4:
    """A stand-in runtime for the harness's own logic: it fails like an allocator would above batch 4."""
    name = "oom-probe"

    def __init__(self):
        from tiny_models import TINY

        self.contract = TINY

    def infer(self, batch):
        if len(batch) > 4:
            raise MemoryError(f"cannot allocate {len(batch)} images")
        return {"embedding": np.zeros((len(batch), 8), dtype=np.float32)}


def test_batch_sweep_stops_at_the_first_batch_that_runs_out_of_memory():
    from reid_export.bench.run import _sweep

    images = np.zeros((3, 64, 32, 3), dtype=np.uint8)
    settings = BenchSettings(batch_sizes=(16, 1, 8, 4), warmup_batches=0, min_batches=5, min_seconds=0.0)
    result = _sweep(_RunsOutOfMemoryAbove4(), images, settings)
    assert list(result) == ["1", "4", "8"]
    assert result["4"]["batches"] >= 5 and "error" not in result["4"]
    assert "out of memory at batch 8" in result["8"]["error"]
