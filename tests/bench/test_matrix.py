"""The architecture x runtime x precision matrix: per-arch references, grouped tables, one colour per arch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reid_export.bench import BenchSettings, ModelSpec, run_bench
from reid_export.bench.plots import arch_colours, write_plots
from reid_export.bench.report import grouped_rows, matrix_rows, print_table, table_rows, write_report
from reid_export.bench.rows import BenchRow
from reid_export.bench.run import _compare_to_reference
from reid_export.checkpoint import save_checkpoint
from reid_export.models import ModelConfig, ReidNet

FAST = BenchSettings(batch_sizes=(1, 4), warmup_batches=1, min_batches=2, min_seconds=0.0, stages=False, progress=False)


def _row(runtime, model, precision, arch, rank1, mAP, **extra):
    return {"runtime": runtime, "model": model, "precision": precision, "arch": arch, "status": "ok",
            "rank1": rank1, "mAP": mAP, "mINP": mAP / 2, "throughput": {"1": _speed(100 * rank1), "4": _speed(300 * rank1)},
            **extra}


def _speed(images_per_sec):
    return {"images_per_sec": images_per_sec, "p50_ms": 1.0, "p99_ms": 2.0}


def _matrix():
    """Rows in an awkward order: an export before its checkpoint, two resnet18 checkpoints, an OSNet without
    a torch row, a failed row."""
    rows = [
        _row("torch", "/r/r50.pt", "fp32", "resnet50", 80.0, 70.0, attr_mA=60.0),
        _row("onnxruntime", "/e/r18.int8.onnx", "int8", "resnet18", 69.0, 58.0),
        _row("torch", "/r/r18.pt", "fp32", "resnet18", 70.0, 60.0),
        _row("torch", "/r/r18b.pt", "fp32", "resnet18", 50.0, 40.0),
        _row("onnxruntime", "/e/r18b.fp16.onnx", "fp16", "resnet18", 50.5, 40.5),
        _row("onnxruntime", "/e/osnet.onnx", "fp32", "osnet_x0_25", 60.0, 50.0),
        _row("onnxruntime", "/e/osnet.int8.onnx", "int8", "osnet_x0_25", 55.0, 47.0),
        _row("onnxruntime", "/e/r50.int8.onnx", "int8", "resnet50", 79.0, 68.5, attr_mA=59.0),
        {"runtime": "onnxruntime", "model": "/e/bad.onnx", "status": "failed: broken"},
    ]
    rng = np.random.default_rng(0)
    dims = {"resnet50": 16, "resnet18": 8, "osnet_x0_25": 12}
    embeddings = [rng.standard_normal((5, dims[r["arch"]])).astype(np.float32) if "arch" in r else None for r in rows]
    typed = [BenchRow.from_dict(row) for row in rows]
    _compare_to_reference(typed, embeddings)
    return [row.to_dict() for row in typed]


def test_each_row_is_compared_with_the_torch_fp32_row_of_its_own_arch_and_model():
    rows = {row["model"]: row for row in _matrix()}
    assert rows["/e/r18.int8.onnx"]["reference"] == "torch:r18.pt"  # not the first torch row (resnet50)
    assert rows["/e/r18b.fp16.onnx"]["reference"] == "torch:r18b.pt"  # the same checkpoint, by name
    assert rows["/e/r50.int8.onnx"]["reference"] == "torch:r50.pt"
    assert rows["/e/r18.int8.onnx"]["delta_mAP"] == pytest.approx(-2.0)
    assert rows["/e/r18b.fp16.onnx"]["delta_rank1"] == pytest.approx(0.5)
    assert rows["/e/r50.int8.onnx"]["delta_attr_mA"] == pytest.approx(-1.0)
    # no torch row for OSNet: its first row is the reference, not a row of another architecture
    assert rows["/e/osnet.int8.onnx"]["reference"] == "onnxruntime:osnet.onnx"
    assert rows["/e/osnet.int8.onnx"]["delta_mAP"] == pytest.approx(-3.0)
    assert {m for m, r in rows.items() if r.get("is_reference")} == {"/r/r50.pt", "/r/r18.pt", "/r/r18b.pt", "/e/osnet.onnx"}
    assert "cosine_min" in rows["/e/r18.int8.onnx"] and "reference" not in rows["/e/bad.onnx"]


def test_tables_group_rows_by_arch_in_order_of_first_appearance():
    report = _report(_matrix())
    assert [r["arch"] for r in grouped_rows(report)[:6]] == ["resnet50", "resnet50", "resnet18", "resnet18", "resnet18",
                                                              "resnet18"]
    header, cells = table_rows(report)
    assert header[0] == "arch" and [line[0] for line in cells] == [r.get("arch") or "-" for r in grouped_rows(report)]
    header, cells = matrix_rows(report)
    assert header == ["arch", "runtime", "precision", "img/s @4", "Rank-1", "ΔRank-1", "mAP", "ΔmAP", "attr mA", "ΔmA",
                      "reference"]
    r50_int8 = cells[1]
    assert r50_int8[:4] == ["resnet50", "onnxruntime", "int8", "23700.0"]
    assert r50_int8[4:] == ["79.00", "-1.00", "68.50", "-1.50", "59.00", "-1.00", "torch:r50.pt"]
    assert cells[0][-1] == "itself" and cells[-1][:4] == ["-", "onnxruntime", "-", "failed"]


def test_markdown_and_console_lead_with_the_matrix(tmp_path, capsys):
    report = _report(_matrix())
    _, md_path = write_report(report, tmp_path)
    md = md_path.read_text()
    assert md.index("## Architecture x runtime x precision") < md.index("## Every row")
    header, _ = matrix_rows(report)
    assert "| " + " | ".join(header) + " |" in md
    print_table(report, wide=True)
    out = capsys.readouterr().out
    assert "architecture x runtime x precision" in out and "osnet_x0_25" in out


def test_one_architecture_keeps_the_single_table(tmp_path):
    rows = [r for r in _matrix() if r.get("arch") == "resnet18"]
    md = write_report(_report(rows), tmp_path)[1].read_text()
    assert "## Architecture x runtime x precision" not in md


def test_the_accuracy_plot_has_one_colour_per_architecture(tmp_path):
    from PIL import Image

    rows = [_row("torch", "/r/a.pt", "fp32", "resnet18", 70.0, 60.0), _row("onnxruntime", "/e/a.int8.onnx", "int8", "resnet18", 60.0, 50.0),
            _row("torch", "/r/b.pt", "fp32", "osnet_x0_25", 50.0, 40.0), _row("onnxruntime", "/e/b.onnx", "fp32", "osnet_x0_25", 40.0, 30.0)]
    assert arch_colours(rows) == {"resnet18": "C0", "osnet_x0_25": "C1"}
    write_plots(_report(rows), tmp_path)
    pixels = np.asarray(Image.open(tmp_path / "accuracy_vs_throughput.png").convert("RGB")).reshape(-1, 3).astype(int)

    def count(hex_colour):
        rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
        return int((np.abs(pixels - rgb).sum(axis=1) < 30).sum())

    # matplotlib's cycle would give four points four colours (C0..C3); two archs give two
    assert count("#1f77b4") > 50 and count("#ff7f0e") > 50
    assert count("#2ca02c") == 0 and count("#d62728") == 0


def test_bench_rows_carry_their_arch_and_an_export_is_compared_with_its_own_arch(tiny_market, tiny_checkpoint,
                                                                                  tiny_onnx, tmp_path):
    from tiny_models import TINY

    torch.manual_seed(0)
    osnet = ReidNet(ModelConfig(arch="osnet_x0_25", num_classes=8, neck="bnneck", preprocess=TINY)).eval()
    save_checkpoint(tmp_path / "osnet.pt", osnet, epoch=1)
    specs = [ModelSpec("torch", tmp_path / "osnet.pt"), ModelSpec("torch", tiny_checkpoint),
             ModelSpec("onnxruntime", tiny_onnx)]
    osnet_row, resnet_row, onnx_row = run_bench(tiny_market, specs, FAST, log=lambda *_: None)["rows"]
    assert (osnet_row["arch"], resnet_row["arch"], onnx_row["arch"]) == ("osnet_x0_25", "resnet18", "resnet18")
    assert osnet_row["is_reference"] and resnet_row["is_reference"]
    assert onnx_row["reference"] == "torch:tiny.pt" and onnx_row["cosine_min"] > 0.9999


def _report(rows):
    return {"settings": {"batch_sizes": [1, 4]}, "rows": rows, "machine": {"cpu_count": 2},
            "data": {"root": "/d", "num_query": 5, "num_gallery": 20}}
