"""The load benchmark runs end to end on small counts and stops by itself (its numbers are not checked here)."""

from __future__ import annotations

import importlib.util
import json
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"


@pytest.mark.slow
@pytest.mark.parametrize("client", ["raw", "httpx"])
def test_the_load_benchmark_reports_every_cell_and_the_model_only_reference(tiny_onnx, built_gallery, tiny_market,
                                                                            tmp_path, client):
    spec = importlib.util.spec_from_file_location("serve_load", SCRIPT)
    serve_load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve_load)
    report = serve_load.main(["--model", str(tiny_onnx), "--gallery", str(built_gallery), "--queries",
                              str(tiny_market / "query"), "--requests", "6", "--concurrency", "1,3",
                              "--min-seconds", "0.1", "--client", client, "--out", str(tmp_path)])
    cells = {(r["batching"], r["concurrency"]) for r in report["rows"]}
    assert cells == {("on", 1), ("on", 3), ("off", 1), ("off", 3)}
    assert all(r["errors"] == 0 and r["requests_per_sec"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in report["rows"])
    # both processes did work that was counted: the server ran the model, the client sent and read
    assert all(r["server_cpu_ms_per_request"] > 0 and r["client_cpu_ms_per_request"] > 0 for r in report["rows"])
    ref = report["model_only"][str(tiny_onnx)]
    assert ref["batch1_images_per_sec"] > 0 and ref["batch32_images_per_sec"] > 0 and ref["search_ms"] > 0
    assert ref["batch1_paced_ms"] > 0 and report["settings"]["instances"] == [0]
    # the call and its search timed together, and the search's own part of that
    assert ref["search_after_call_ms"] > 0 and ref["batch1_paced_then_search_ms"] > ref["search_after_call_ms"]
    in_process, = report["in_process"]
    assert in_process["requests_per_sec"] > 0 and in_process["concurrency"] == 3
    target, = report["targets"]
    assert target["c1_p50_over_paced_batch1_plus_search"] > 0 and "c32_target_met" not in target
    assert target["c1_p50_over_paced_batch1_then_search"] > 0
    assert json.loads((tmp_path / "load.json").read_text())["rows"] == report["rows"]
    text = (tmp_path / "load.md").read_text()
    assert "| model | instances | batching | concurrency | req/s | p50 ms | p99 ms | errors | server CPU ms |" in text
    assert f"Load generator: {client}" in text and "after a 2 ms pause" in text and "lscpu model name" in text
    assert "The service without HTTP (same run" in text and "3 callers" in text
    assert "| search after a call ms | paced call then search ms |" in text and "a paced call then its search" in text


@pytest.mark.slow
def test_the_load_benchmark_compares_runtimes_and_instance_counts_in_one_run(tiny_onnx, built_gallery, tiny_market,
                                                                              tmp_path):
    """ONNX Runtime and OpenVINO on the same file, one and two instances each: every combination gets its rows."""
    pytest.importorskip("openvino", reason='the OpenVINO rows need openvino: pip install "reid-export[openvino]"')
    spec = importlib.util.spec_from_file_location("serve_load", SCRIPT)
    serve_load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve_load)
    models = [str(tiny_onnx), f"openvino={tiny_onnx}"]
    report = serve_load.main(["--model", models[0], "--model", models[1], "--instances", "1,2", "--batching", "on",
                              "--gallery", str(built_gallery), "--queries", str(tiny_market / "query"),
                              "--requests", "4", "--concurrency", "1,2", "--min-seconds", "0.05"])
    assert {(r["model"], r["instances"], r["concurrency"]) for r in report["rows"]} == {
        (m, n, c) for m in models for n in (1, 2) for c in (1, 2)}
    assert all(r["errors"] == 0 for r in report["rows"])
    assert [(ip["model"], ip["instances"]) for ip in report["in_process"]] == [(m, n) for m in models for n in (1, 2)]
    assert "openvino" in report["model_only"][models[1]]["runtime"]


def test_the_raw_client_sends_a_well_formed_multipart_search(tmp_path):
    """The pre-encoded request parses as HTTP with a multipart body holding the image bytes unchanged and k."""
    spec = importlib.util.spec_from_file_location("serve_load", SCRIPT)
    serve_load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve_load)
    data = bytes(range(256)) * 4  # every byte value, CR and LF among them
    request = serve_load.search_request("127.0.0.1", 8123, 'a"b.jpg', data, k=7)
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/search HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert int(headers["Content-Length"]) == len(body)
    boundary = headers["Content-Type"].split("boundary=")[1]
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + headers["Content-Type"].encode()
                                                  + b"\r\n\r\n" + body)  # an independent multipart parser
    parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
    assert parts["image"].get_payload(decode=True) == data
    assert parts["k"].get_payload(decode=True).strip() == b"7"
    assert boundary.encode() not in data


def test_the_instances_benchmark_measures_every_configuration(tiny_onnx, capsys):
    """benchmarks/ort_instances.py (behind `serve --instances`) runs each configuration, alone and under load."""
    spec = importlib.util.spec_from_file_location("ort_instances", SCRIPT.with_name("ort_instances.py"))
    ort_instances = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ort_instances)
    ort_instances.main([str(tiny_onnx), "--seconds", "0.05", "--python-load", "0.5"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(";")[0] for line in lines if line.startswith("--")] == ["-- Python load: 0% of one core",
                                                                            "-- Python load: 50% of one core"]
    rates = [float(part.split()[-2]) for line in lines if "img/s" in line for part in line.split(": ")[1].split(", ")]
    assert len(rates) == 2 * (2 + 2 + 3) and all(rate > 0 for rate in rates)
