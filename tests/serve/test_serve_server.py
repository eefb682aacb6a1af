"""The real server: `reid-export serve` under uvicorn on a free loopback port, searched over HTTP; SIGTERM drains."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serve_helpers import LiveServer

from reid_export.errors import ReidExportError
from reid_export.serve.gallery import Gallery
from reid_export.serve.server import check_bind

pytest.importorskip("uvicorn", reason='the server needs uvicorn: pip install "reid-export[serve]"')


def _search(url: str, path, k: int = 5, **headers) -> httpx.Response:
    return httpx.post(url + "/v1/search", files={"image": (path.name, path.read_bytes(), "image/jpeg")},
                      data={"k": str(k)}, headers=headers, timeout=60)


@pytest.mark.slow
def test_the_live_server_answers_a_search(live_server, query_image):
    response = _search(live_server.url, query_image, k=4)
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 4
    crop = httpx.get(live_server.url + results[0]["image_url"], timeout=10)
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    assert httpx.get(live_server.url + "/metrics", timeout=10).text.count("reid_batch_images_count") == 1


def _slow_post(url: str, files: dict, pause_s: float) -> httpx.Response:
    """A multipart POST whose body arrives in two halves `pause_s` apart: in flight for that long."""
    request = httpx.Request("POST", url, files=files)
    body = request.read()

    def halves():
        yield body[: len(body) // 2]
        time.sleep(pause_s)
        yield body[len(body) // 2:]

    return httpx.post(url, content=halves(), headers={"content-type": request.headers["content-type"]}, timeout=60)


@pytest.mark.slow
def test_sigterm_finishes_in_flight_requests_and_commits_gallery_writes(tiny_onnx, gallery, query_image, tiny_market):
    server = LiveServer(["--model", str(tiny_onnx), "--gallery", str(gallery)])
    server.start()
    new = sorted((tiny_market / "bounding_box_train").glob("*.jpg"))[0]
    try:
        with ThreadPoolExecutor(4) as pool:
            search = pool.submit(_slow_post, server.url + "/v1/search", {"image": (query_image.name,
                                 query_image.read_bytes(), "image/jpeg")}, 2.0)
            added = pool.submit(_slow_post, server.url + "/v1/gallery", {"images": (new.name, new.read_bytes(),
                                "image/jpeg")}, 2.0)
            _wait_for_metric(server.url, "reid_requests_in_flight", 3)  # both uploads, and this /metrics call
            server.process.send_signal(15)  # both requests are still mid-upload
            search_response, add_response = search.result(), added.result()
        assert search_response.status_code == 200 and search_response.json()["results"]
        assert add_response.status_code == 201
        # uvicorn re-raises the signal once its graceful shutdown is done, so the exit status is -SIGTERM
        assert server.process.wait(30) in (0, -15)
        assert "Application shutdown complete" in server.process.stdout.read()
    finally:
        server.stop()
    assert not (gallery / ".gallery.json.lock").exists()  # the app's shutdown closed the gallery
    with Gallery.open(gallery, writable=True) as g:  # and the write is on disk
        assert add_response.json()["added"][0]["id"] in g


def _wait_for_metric(url: str, name: str, value: float, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
            if line.startswith(name + " ") and float(line.split()[1]) >= value:
                return
        time.sleep(0.02)
    raise AssertionError(f"{name} never reached {value}")


def test_a_non_loopback_address_needs_a_token():
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", "secret")
    with pytest.raises(ReidExportError, match="--token"):
        check_bind("0.0.0.0", None)


@pytest.mark.slow
def test_serve_refuses_a_public_bind_without_a_token_from_the_command_line(tiny_onnx, gallery):
    result = subprocess.run([sys.executable, "-m", "reid_export.cli", "serve", "--model", str(tiny_onnx),
                             "--gallery", str(gallery), "--host", "0.0.0.0"], capture_output=True, text=True,
                            timeout=120, env={"REID_EXPORT_TOKEN": "", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and "without a token" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("model, expected", [
    ("torch={checkpoint}", "more model instances (lanes) are for the CPU runtimes"),  # --instances 2 on torch
    ("{broken}", "re-export it with `reid-export onnx`"),  # a model file that is not an ONNX graph
])
def test_a_refused_start_up_says_why_in_one_line_without_a_traceback(tiny_onnx, tiny_checkpoint, gallery, tmp_path,
                                                                     model, expected):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(tiny_onnx.read_bytes() + b"\0")
    spec = model.format(checkpoint=tiny_checkpoint, broken=broken)
    result = subprocess.run([sys.executable, "-m", "reid_export.cli", "serve", "--model", spec, "--gallery",
                             str(gallery), "--instances", "2", "--port", "0"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "start-up refused: " in result.stderr and expected in result.stderr
    assert "Traceback" not in result.stderr
