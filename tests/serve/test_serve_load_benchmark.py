"""The load benchmark runs end to end on small counts and stops by itself (its numbers are not checked here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"


@pytest.mark.slow
def test_the_load_benchmark_reports_every_cell_and_the_model_only_reference(tiny_onnx, built_gallery, tiny_market,
                                                                            tmp_path):
    spec = importlib.util.spec_from_file_location("serve_load", SCRIPT)
    serve_load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve_load)
    report = serve_load.main(["--model", str(tiny_onnx), "--gallery", str(built_gallery), "--queries",
                              str(tiny_market / "query"), "--requests", "6", "--concurrency", "1,3",
                              "--min-seconds", "0.1", "--out", str(tmp_path)])
    cells = {(r["batching"], r["concurrency"]) for r in report["rows"]}
    assert cells == {("on", 1), ("on", 3), ("off", 1), ("off", 3)}
    assert all(r["errors"] == 0 and r["requests_per_sec"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in report["rows"])
    ref = report["model_only"]
    assert ref["batch1_images_per_sec"] > 0 and ref["batch32_images_per_sec"] > 0 and ref["search_ms"] > 0
    assert json.loads((tmp_path / "load.json").read_text())["rows"] == report["rows"]
    assert "| batching | concurrency | req/s | p50 ms | p99 ms | errors |" in (tmp_path / "load.md").read_text()
