"""The `triton=http://HOST:PORT/NAME` runtime. No Triton server runs here: the server test needs
REID_EXPORT_TRITON_URL (a server with a repository written by `reid-export triton`) and is skipped without it."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest

from reid_export.bench.run import BenchSettings, ModelSpec, run_bench
from reid_export.errors import ReidExportError, RuntimeUnavailable
from reid_export.runtimes import make_runtime, parse_model_spec
from reid_export.runtimes.triton import TritonAddress


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_triton_spec_is_a_server_address_not_a_file():
    name, address = parse_model_spec("triton=http://localhost:8000/reid")
    assert name == "triton" and isinstance(address, TritonAddress)
    assert str(address) == "http://localhost:8000/reid" and address.name == "reid" and address.host == "localhost:8000"
    assert str(parse_model_spec("triton=http://h:1/m/3")[1]) == "http://h:1/m/3"


@pytest.mark.parametrize("bad", ["triton=localhost:8000/reid", "triton=http://localhost:8000", "triton=http://h/a/b/c"])
def test_a_malformed_address_says_what_is_expected(bad):
    with pytest.raises(ReidExportError, match="expected http://HOST:PORT/NAME"):
        parse_model_spec(bad)


def test_no_server_is_runtime_unavailable_naming_the_address():
    port = _closed_port()
    runtime = make_runtime("triton", f"http://127.0.0.1:{port}/reid", timeout_s=2.0)
    with pytest.raises(RuntimeUnavailable, match=f"no Triton server at http://127.0.0.1:{port}"):
        runtime.activate()


def test_bench_reports_an_unreachable_server_as_a_skipped_row(tiny_market):
    address = TritonAddress.parse(f"http://127.0.0.1:{_closed_port()}/reid")
    report = run_bench(tiny_market, [ModelSpec("triton", address)],
                       BenchSettings(batch_sizes=(1,), stages=False, progress=False), log=lambda *_: None)
    (row,) = report["rows"]
    assert row["status"].startswith("skipped: no Triton server at http://127.0.0.1:")


@pytest.mark.skipif(not os.environ.get("REID_EXPORT_TRITON_URL"),
                    reason="no Triton server here; set REID_EXPORT_TRITON_URL=http://HOST:PORT/NAME to test against one")
def test_a_running_server_matches_onnxruntime_on_the_same_model():
    url = os.environ["REID_EXPORT_TRITON_URL"]
    local = os.environ.get("REID_EXPORT_TRITON_ONNX")  # the .onnx its repository was written from, if known
    with make_runtime("triton", url) as rt:
        batch = np.random.default_rng(0).standard_normal((3, *rt.contract.input_shape)).astype(np.float32)
        emb = rt.infer(batch)["embedding"]
        assert emb.shape[0] == 3 and rt.provider.startswith("Triton")
    if local:
        with make_runtime("onnxruntime", local) as ort_rt:
            ref = ort_rt.infer(batch)["embedding"]
        assert float((emb * ref).sum(axis=1).min()) > 0.9999
