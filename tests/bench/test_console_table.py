"""The console's bench table: by default a short table that fits a 120-column terminal, every column with
`--wide` (bench and demo); report.md and report.json keep everything."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from rich.console import Console

from reid_export.bench.report import SHORT_TABLE_COLUMNS, print_table, short_rows, table_rows, write_report

SHORT_HEADER = ["runtime", "precision", "img/s @32", "p50 ms @1", "Rank-1", "ΔRank-1", "mAP", "ΔmAP", "cos min",
                "status"]


def _row(runtime, model, precision, rank1, mAP, cosine_min, speeds, **extra):
    """A row as `bench.run` writes it (demo model: ResNet18, attribute heads, batch sizes 1, 8, 32)."""
    return {"runtime": runtime, "model": model, "precision": precision, "arch": "resnet18", "status": "ok",
            "provider": extra.pop("provider", "CPUExecutionProvider"), "opset": 18,
            "throughput": {bs: {"images_per_sec": ips, "p50_ms": 1000 * int(bs) / ips, "p99_ms": 1100 * int(bs) / ips,
                                "batches": 20} for bs, ips in zip(("1", "8", "32"), speeds)},
            "rank1": rank1, "rank5": rank1 + 8, "rank10": rank1 + 12, "mAP": mAP, "mINP": mAP - 22,
            "cosine_min": cosine_min, "cosine_mean": (1 + cosine_min) / 2, "delta_rank1": rank1 - 78.08,
            "delta_mAP": mAP - 71.88, "attr_mean_accuracy": 72.5, "attr_mA": 77.5, "delta_attr_mA": 0.0,
            "reference": "torch:model.pt", **extra}


def _demo_like_report():
    """The demo's three rows and every CPU runtime beside them (two openvino int8 rows: the model column
    tells them apart), one skipped GPU row and one failed row with a long reason."""
    d = "runs/demo-20261202-004547"
    rows = [
        _row("torch", f"{d}/model.pt", "fp32", 78.08, 71.88, 1.0, (36.6, 141.1, 200.9), is_reference=True,
             provider="cpu"),
        _row("torch-bf16", f"{d}/model.pt", "bf16", 78.33, 71.93, 0.999984, (44.9, 300.0, 384.8),
             provider="cpu (avx512_bf16, bf16 autocast, channels_last)"),
        _row("onnxruntime", f"{d}/model.onnx", "fp32", 78.08, 71.88, 1.0, (188.2, 271.5, 283.9)),
        _row("onnxruntime", f"{d}/model.int8.onnx", "int8", 79.31, 71.91, 0.995855, (532.0, 833.9, 973.6)),
        _row("openvino-bf16", f"{d}/model.onnx", "bf16", 77.83, 71.86, 0.999986, (397.6, 500.0, 591.4),
             provider="OpenVINO 2026.4.1 CPU, latency hint, 1 streams, 2 threads"),
        _row("openvino", f"{d}/model.int8.onnx", "int8", 77.34, 71.75, 0.995892, (732.6, 900.0, 1049.2)),
        _row("openvino", "engines/demo.nncf-int8.xml", "int8", 76.85, 71.53, 0.972942, (618.4, 850.0, 983.8)),
        {"runtime": "onnxruntime-cuda", "model": f"{d}/model.onnx", "status": "skipped: no CUDA device (torch.cuda."
         "is_available() is False and onnxruntime has no CUDAExecutionProvider here)"},
        {"runtime": "tensorrt", "model": "engines/model.engine", "status": "failed: " + "engine built for another "
         "GPU " * 12 + "(rebuild it with reid-export trt)"},
    ]
    return {"settings": {"batch_sizes": [1, 8, 32]}, "rows": rows, "machine": {"cpu_count": 2},
            "data": {"root": f"{d}/data", "num_query": 100, "num_gallery": 1648}, "stages_seconds": {"bench": 46.5}}


def _printed(report, *, width=SHORT_TABLE_COLUMNS, wide=False):
    out = io.StringIO()
    print_table(report, title="reid-export demo (runs/demo-20261202-004547)", wide=wide,
                console=Console(file=out, width=width))
    return out.getvalue()


def test_the_default_table_fits_120_columns_with_every_key_column_whole():
    report = _demo_like_report()
    text = _printed(report)
    assert max(len(line) for line in text.splitlines()) <= SHORT_TABLE_COLUMNS
    assert "…" not in text  # no cell cut short to make it fit
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("runtime"))  # "img/s @32" over two lines
    assert lines[at - 1].split() == ["img/s", "p50", "ms"]
    assert lines[at].split() == ["runtime", "precision", "model", "@32", "@1", "Rank-1", "ΔRank-1", "mAP", "ΔmAP", "cos",
                                 "min", "status"]
    assert short_rows(report)[0] == [*SHORT_HEADER[:2], "model", *SHORT_HEADER[2:]]
    onnx_int8 = next(line for line in text.splitlines() if "model.int8.onnx" in line and "onnxruntime" in line)
    assert onnx_int8.split() == ["onnxruntime", "int8", "model.int8.onnx", "973.6", "1.88", "79.31", "+1.23", "71.91",
                                 "+0.03", "0.995855", "ok"]
    assert "demo.nncf-int8.xml" in text and "skipped [1]" in text and "failed [2]" in text
    assert "[2] tensorrt model.engine: failed: engine built" in text  # the reason in full, under the table
    assert "against torch:model.pt" in text


def test_the_default_table_leaves_the_rest_to_wide_and_report_md(tmp_path):
    report = _demo_like_report()
    text = _printed(report)
    for column in ("provider", "p99 ms", "Rank-5", "mINP", "cos mean", "attr mA", "img/s @8"):
        assert column not in text
    md = write_report(report, tmp_path)[1].read_text()
    assert "| " + " | ".join(table_rows(report)[0]) + " |" in md  # report.md keeps every column
    assert json.loads((tmp_path / "report.json").read_text())["rows"] == report["rows"]


def test_wide_prints_every_column():
    report = _demo_like_report()
    text = _printed(report, width=400, wide=True)
    header, cells = table_rows(report)
    for column in header:
        assert column in text
    assert "OpenVINO 2026.4.1 CPU, latency hint, 1 streams, 2 threads" in text


def test_the_model_column_appears_only_when_two_rows_would_read_the_same():
    report = _demo_like_report()
    report["rows"] = report["rows"][:4]  # the demo's own rows: runtime + precision name each one
    header, cells = short_rows(report)
    assert header == SHORT_HEADER and [line[:2] for line in cells] == [
        ["torch", "fp32"], ["torch-bf16", "bf16"], ["onnxruntime", "fp32"], ["onnxruntime", "int8"]]


def test_bench_prints_the_short_table_and_the_full_one_with_wide(tiny_market, tiny_onnx, tmp_path):
    def bench(*extra):
        return subprocess.run([sys.executable, "-m", "reid_export.cli", "bench", "--data", str(tiny_market), "--model",
                               str(tiny_onnx), "--batch-sizes", "1,2", "--no-stages", "-q", *extra],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)

    short = bench("-o", str(tmp_path / "short"))
    assert short.returncode == 0, short.stderr
    table = short.stdout.partition("\nwrote ")[0]  # the paths written follow the table
    assert "cos min" in table and max(len(line) for line in table.splitlines()) <= SHORT_TABLE_COLUMNS
    assert "p50 ms" in short.stdout and "@2" in short.stdout and "cos min" in short.stdout
    assert "provider" not in short.stdout and "p99" not in short.stdout
    wide = bench("-o", str(tmp_path / "wide"), "--wide")
    assert wide.returncode == 0, wide.stderr
    assert all(column in wide.stdout for column in ("provider", "p99 ms @2", "Rank-10", "cos mean"))
