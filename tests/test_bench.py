import json

import numpy as np
import pytest

from reid_export.bench import BenchSettings, ModelSpec, run_bench
from reid_export.checkpoint import load_model
from reid_export.data.market1501 import load_market1501
from reid_export.metrics import evaluate_ranking
from reid_export.ranking import pairwise_distance
from reid_export.report import table_rows, write_report

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
    assert report["machine"]["cpu_count"] >= 1 and "onnxruntime" in report["machine"]
