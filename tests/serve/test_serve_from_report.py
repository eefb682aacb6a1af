"""`serve --from-report`: a real report of `reid-export bench` on the tiny model, the row it picks, and a real server
serving that row; every refusal names what to change."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from serve_helpers import LiveServer

from reid_export.errors import ReidExportError
from reid_export.serve.from_report import DEFAULT_MAX_MAP_DROP, pick_from_report
from reid_export.serve.indexing import build_gallery

pytest.importorskip("openvino", reason='the report holds an OpenVINO row: pip install "reid-export[openvino]"')


@pytest.fixture(scope="module")
def bench_dir(tiny_market, tiny_checkpoint, tiny_onnx, tmp_path_factory):
    """`reid-export bench` run inside its report folder on copies of the tiny models one folder up, so the report
    names them by relative paths (../engines/...), as a bench run beside its artefacts does."""
    root = tmp_path_factory.mktemp("from-report")
    engines = root / "engines"
    engines.mkdir()
    shutil.copy(tiny_checkpoint, engines / "tiny.pt")
    shutil.copy(tiny_onnx, engines / "tiny.onnx")
    (root / "bench").mkdir()
    run = subprocess.run([sys.executable, "-m", "reid_export.cli", "bench", "--data", str(tiny_market),
                          "--model", "../engines/tiny.pt", "--model", "../engines/tiny.onnx",
                          "--model", "openvino=../engines/tiny.onnx", "--batch-sizes", "1,2", "--no-stages", "-q",
                          "-o", "."], capture_output=True, text=True, timeout=600, cwd=root / "bench")
    assert run.returncode == 0, run.stdout + run.stderr
    return root / "bench"


def _report(bench_dir: Path) -> dict:
    return json.loads((bench_dir / "report.json").read_text())


def _edited(bench_dir: Path, tmp_path: Path, edit) -> Path:
    """A copy of the real report beside the same artefacts (../engines), changed by `edit(report)`."""
    folder = tmp_path / "engines"
    shutil.copytree(bench_dir.parent / "engines", folder)
    (tmp_path / "bench").mkdir()
    report = _report(bench_dir)
    edit(report)
    path = tmp_path / "bench" / "report.json"
    path.write_text(json.dumps(report))
    return path


def _speed(row: dict) -> float:
    return row["throughput"]["2"]["images_per_sec"]


def test_the_fastest_ok_row_within_the_drop_is_picked_with_its_runtime_and_resolved_path(bench_dir):
    rows = _report(bench_dir)["rows"]
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    assert all(abs(r.get("delta_mAP", 0.0)) <= DEFAULT_MAX_MAP_DROP for r in rows)  # all three run the same weights
    fastest = max(rows, key=_speed)
    pick = pick_from_report(bench_dir / "report.json")
    assert (pick.row.runtime, pick.row.model) == (fastest["runtime"], fastest["model"])
    assert pick.batch == 2 and pick.images_per_sec == _speed(fastest)
    # relative to the report's folder, although the test runs elsewhere
    assert Path(pick.path).resolve() == (bench_dir / fastest["model"]).resolve()
    assert pick.model == f"{fastest['runtime']}={(bench_dir / fastest['model']).resolve()}"
    line = pick.line()
    assert line.startswith(f"serving {fastest['runtime']} fp32 ") and f"{_speed(fastest):.1f} img/s @2" in line
    assert "3 ok rows, 0 over the drop" in line


def test_a_faster_row_over_the_drop_is_passed_over_and_named(bench_dir, tmp_path):
    def slower_rows_faster_but_worse(report):
        assert report["rows"][0]["is_reference"]  # the torch row; the two exports follow
        for i, row in enumerate(report["rows"][1:], start=1):  # both exports faster than the reference, and worse
            row["throughput"]["2"]["images_per_sec"] = 10_000.0 * i
            row["delta_mAP"] = -0.8
        report["rows"][1]["delta_mAP"] = -0.3  # the slower of them stays within 0.5

    path = _edited(bench_dir, tmp_path, slower_rows_faster_but_worse)
    rows = json.loads(path.read_text())["rows"]
    pick = pick_from_report(path, max_map_drop=0.5)
    assert pick.row.runtime == rows[1]["runtime"] and pick.row.delta_mAP == -0.3
    line = pick.line()
    assert "ΔmAP -0.30 within 0.5" in line and "3 ok rows, 1 over the drop" in line
    assert f"{rows[2]['runtime']} fp32 tiny.onnx (ΔmAP -0.80, over 0.5)" in line
    # a Rank-1 limit is checked as well when given
    pick = pick_from_report(path, max_map_drop=1.0, max_rank1_drop=100)
    assert pick.row.runtime == rows[2]["runtime"] and "ΔRank-1" in pick.line()


def test_no_servable_row_within_the_drop_lists_every_row_and_its_drop(bench_dir, tmp_path):
    def reference_is_an_embedding_variant(report):
        for row in report["rows"]:
            if row.get("is_reference"):
                row["runtime"] = "torch (pooled)"  # as `--embedding both` names its rows
            else:
                row["delta_mAP"] = -2.5

    path = _edited(bench_dir, tmp_path, reference_is_an_embedding_variant)
    with pytest.raises(ReidExportError) as refused:
        pick_from_report(path, max_map_drop=1.0)
    message = str(refused.value)
    assert str(path) in message and "ΔmAP drop of 1.0" in message
    assert message.count("(ΔmAP -2.50, over 1.0)") == 2 and "torch (pooled)" in message
    assert "--max-map-drop" in message


def test_a_report_that_breaks_the_schema_is_refused_naming_where(bench_dir, tmp_path):
    path = _edited(bench_dir, tmp_path, lambda report: report["rows"][1].update(status="great"))
    with pytest.raises(ReidExportError, match=r"rows/1/status.*reid-export bench -o DIR") as refused:
        pick_from_report(path)
    assert "report.schema.json" in str(refused.value)
    path.write_text("{not json")
    with pytest.raises(ReidExportError, match="not a readable JSON file"):
        pick_from_report(path)


def test_a_missing_artefact_names_the_file_and_the_command_that_writes_it(bench_dir, tmp_path):
    report = tmp_path / "elsewhere" / "report.json"
    report.parent.mkdir()
    shutil.copy(bench_dir / "report.json", report)  # without the artefacts beside it
    fastest = max(_report(bench_dir)["rows"], key=_speed)
    with pytest.raises(ReidExportError) as refused:
        pick_from_report(report)
    message = str(refused.value)
    assert fastest["model"] in message and str(report.parent / fastest["model"]) in message
    assert ("`reid-export train`" if fastest["model"].endswith(".pt") else "`reid-export onnx`") in message


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reid_export.cli", "serve", *args], capture_output=True, text=True,
                          timeout=120)


def test_from_report_with_model_is_refused_naming_both(bench_dir, tmp_path):
    both = _cli("--from-report", str(bench_dir / "report.json"), "--model", "m.onnx", "--gallery", str(tmp_path))
    assert both.returncode == 2 and "--from-report and --model both given" in both.stderr
    assert "RUNTIME=" in both.stderr
    neither = _cli("--gallery", str(tmp_path))
    assert neither.returncode == 2 and "--model" in neither.stderr and "--from-report" in neither.stderr
    drop_alone = _cli("--model", "m.onnx", "--max-map-drop", "1", "--gallery", str(tmp_path))
    assert drop_alone.returncode == 2 and "--from-report" in drop_alone.stderr


@pytest.mark.slow
def test_the_server_serves_the_picked_row_and_says_which_and_why(bench_dir, tiny_market, tmp_path, query_image):
    pick = pick_from_report(bench_dir / "report.json")
    gallery = build_gallery(tiny_market, pick.model, tmp_path / "gallery", progress=False)
    server = LiveServer(["--from-report", str(bench_dir / "report.json"), "--gallery", str(gallery)])
    server.start()
    try:
        info = httpx.get(server.url + "/v1/info", timeout=10).json()
        found = httpx.post(server.url + "/v1/search", files={"image": (query_image.name, query_image.read_bytes(),
                                                                       "image/jpeg")}, data={"k": "3"}, timeout=60)
    finally:
        server.stop()
    assert info["runtime"] == pick.row.runtime and info["model"] == Path(pick.row.model).name
    assert found.status_code == 200 and len(found.json()["results"]) == 3
    assert pick.line() in server.output()
