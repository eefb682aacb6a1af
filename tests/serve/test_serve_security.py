"""The service as an attacker and a careless client meet it (issue 17): foreign Host names (DNS rebinding),
cross-site writes, CORS, the token's secrecy, ids out of range, image bombs, broken multipart, slow and
greedy clients. The app through TestClient where a request is enough; a live `reid-export serve` on
loopback, spoken to over raw sockets, where the server's own connection handling is what is tested."""

from __future__ import annotations

import json
import select
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib

import httpx
import pytest

pytest.importorskip("fastapi", reason='the service needs fastapi: pip install "reid-export[serve]"')
from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import LiveServer  # noqa: E402
from test_serve_batching import RecordingRuntime  # noqa: E402

from reid_export.errors import ReidExportError  # noqa: E402
from reid_export.serve.app import create_app  # noqa: E402
from reid_export.serve.batching import BatchingSettings  # noqa: E402
from reid_export.serve.service import ServeSettings  # noqa: E402
from reid_export.serve.stores import EmbeddedStore  # noqa: E402
from reid_export.serve.uploads import CAMID_RANGE, PID_RANGE, UploadLimits  # noqa: E402

SECRET = "s3cret-token-7f1c2a9e"
EVIL = "http://evil.example"


def _client(gallery, tiny_onnx, **settings) -> TestClient:
    runtime = RecordingRuntime(tiny_onnx, threads=1)
    app = create_app(ServeSettings(model=str(tiny_onnx), gallery=gallery, **settings), runtime=runtime)
    return TestClient(app, base_url="http://127.0.0.1:8000")


@pytest.fixture
def client(gallery, tiny_onnx):
    with _client(gallery, tiny_onnx) as c:
        yield c


@pytest.fixture
def crop(tiny_market) -> bytes:
    return sorted((tiny_market / "bounding_box_train").glob("*.jpg"))[0].read_bytes()


def _add(client, crop: bytes, name: str = "crop.jpg", headers=None, **fields):
    return client.post("/v1/gallery", files={"images": (name, crop, "image/jpeg")},
                       data={k: str(v) for k, v in fields.items()}, headers=headers or {})


def _total(client) -> int:
    return client.get("/v1/gallery", params={"limit": 1}).json()["total"]


# -- Host: DNS rebinding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["evil.example", "attacker.example:8000", "127.0.0.1.nip.io:8000", "localhost.evil",
                                  "127.0.0.1:notaport"])
def test_a_foreign_host_is_refused_naming_the_host_and_the_flag(client, host):
    response = client.get("/v1/gallery", headers={"Host": host})
    assert response.status_code == 421
    error = response.json()["error"]
    assert host in error and "--allowed-hosts" in error
    assert "items" not in response.json()


@pytest.mark.parametrize("host", ["localhost", "localhost:1234", "127.0.0.1:8000", "[::1]:9999", "LOCALHOST:8000"])
def test_loopback_names_are_served_on_any_port(client, host):
    assert client.get("/v1/gallery", headers={"Host": host}).status_code == 200


def test_allowed_hosts_and_the_bound_address_add_exact_names(gallery, tiny_onnx):
    with _client(gallery, tiny_onnx, host="10.1.2.3", token="t0k", allowed_hosts="reid.example.com") as c:
        auth = {"Authorization": "Bearer t0k"}
        for host, status in [("reid.example.com", 200), ("reid.example.com:443", 200), ("10.1.2.3:8000", 200),
                             ("www.reid.example.com", 421), ("example.com", 421), ("0.0.0.0:8000", 421)]:
            assert c.get("/v1/info", headers={**auth, "Host": host}).status_code == status, host
    with _client(gallery, tiny_onnx, host="0.0.0.0", token="t0k", allowed_hosts=("*",)) as c:
        assert c.get("/v1/info", headers={"Authorization": "Bearer t0k", "Host": "any.name"}).status_code == 200


# -- Origin: cross-site writes --------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{"Origin": EVIL}, {"Origin": "null"}, {"Origin": "http://127.0.0.1:1"},
                                     {"Origin": "https://127.0.0.1:8000"}, {"Sec-Fetch-Site": "cross-site"}])
def test_a_cross_origin_multipart_add_is_refused_and_adds_nothing(client, crop, headers):
    before = _total(client)
    response = _add(client, crop, "cross-origin.jpg", headers)
    assert response.status_code == 403
    error = response.json()["error"]
    assert "--cors-origins" in error and (headers.get("Origin", "cross-site") in error)
    assert _total(client) == before


def test_a_cross_origin_delete_is_refused_and_the_item_stays(client):
    item = client.get("/v1/gallery", params={"limit": 1}).json()["items"][0]
    assert client.delete(f"/v1/gallery/{item['id']}", headers={"Origin": EVIL}).status_code == 403
    assert client.get(f"/v1/gallery/{item['id']}/image").status_code == 200


def test_its_own_page_and_clients_without_origin_can_change_the_gallery(client, crop):
    before = _total(client)
    assert _add(client, crop, headers={"Origin": "http://127.0.0.1:8000"}).status_code == 201
    assert _add(client, crop, headers={"Origin": "http://localhost:8000", "Host": "localhost:8000"}).status_code == 201
    assert _add(client, crop, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 201
    assert _add(client, crop).status_code == 201  # curl, scripts: no Origin
    assert _total(client) == before + 4


def test_no_cors_header_unless_cors_origins_is_set(client):
    read = client.get("/v1/gallery", headers={"Origin": EVIL})
    preflight = client.options("/v1/gallery", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in read.headers
    assert "access-control-allow-origin" not in preflight.headers and preflight.status_code >= 400


def test_cors_origins_get_cors_headers_an_answered_preflight_and_may_add(gallery, tiny_onnx, crop):
    dash = "https://dash.example.com"
    with _client(gallery, tiny_onnx, token="t0k", cors_origins=dash) as c:
        preflight = c.options("/v1/gallery", headers={"Origin": dash, "Access-Control-Request-Method": "POST",
                                                      "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == dash
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        added = _add(c, crop, headers={"Origin": dash, "Authorization": "Bearer t0k"})
        assert added.status_code == 201 and added.headers["access-control-allow-origin"] == dash
        other = _add(c, crop, headers={"Origin": EVIL, "Authorization": "Bearer t0k"})
        assert other.status_code == 403 and "access-control-allow-origin" not in other.headers


# -- request values: ids, bombs, multipart ----------------------------------------------------------------
@pytest.mark.parametrize("field, value", [("camid", 10**20), ("camid", 2**63), ("camid", -1),
                                          ("camid", CAMID_RANGE[1] + 1), ("pid", -10**25), ("pid", -2),
                                          ("pid", PID_RANGE[1] + 1)])
def test_an_id_out_of_range_is_422_naming_the_field_and_commits_nothing(client, crop, field, value):
    before = _total(client)
    response = _add(client, crop, **{field: value})
    assert response.status_code == 422
    assert f"'{field}'" in response.json()["error"] and str(PID_RANGE[1]) in response.json()["error"]
    assert _total(client) == before


def test_an_id_read_from_a_file_name_out_of_range_is_422_and_searches_keep_working(client, crop):
    before = _total(client)
    response = _add(client, crop, f"{10**22}_c1s1_000151_01.jpg")
    assert response.status_code == 422 and "'pid'" in response.json()["error"]
    assert "file name" in response.json()["error"]
    assert _total(client) == before
    search = client.post("/v1/search", files={"image": ("q.jpg", crop, "image/jpeg")}, data={"k": "1000"})
    assert search.status_code == 200


@pytest.mark.parametrize("value", [str(10**25), str(-(10**25)), str(2**31), "-2"])
def test_exclude_camera_out_of_range_is_422(client, crop, value):
    response = client.post("/v1/search", files={"image": ("q.jpg", crop, "image/jpeg")},
                           data={"exclude_camera": value})
    assert response.status_code == 422 and "'exclude_camera'" in response.json()["error"]


def test_a_store_that_refuses_an_add_leaves_the_gallery_as_it_was(client, crop, gallery):
    class RefusingStore(EmbeddedStore):  # as Milvus does when it goes away between start-up and the add
        def add(self, ids, embeddings, camids) -> None:
            raise ReidExportError("the vector store refused the add")

    service = client.app.state.service
    store = RefusingStore()
    store.sync(service.gallery.ids, service.gallery.embeddings, service.gallery.camids())
    service.store = store
    before, crops = _total(client), sorted(p.name for p in (gallery / "crops").iterdir())
    assert _add(client, crop, "refused.jpg").status_code == 500
    assert _total(client) == before and len(service.gallery) == before
    assert sorted(p.name for p in (gallery / "crops").iterdir()) == crops
    assert len(json.loads((gallery / "gallery.json").read_text())["items"]) == before


def test_an_image_bomb_is_413_naming_the_pixel_limit(client):
    for path, field in [("/v1/embed", "images"), ("/v1/search", "image")]:
        response = client.post(path, files={field: ("bomb.png", _png_header(20000, 20000), "image/png")})
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert "pixels" in error and str(UploadLimits().max_pixels) in error and "corrupt" not in error


@pytest.mark.parametrize("problem, says", [("a 10,000-character file name", "filename"),
                                            ("no boundary", "boundary"), ("a part without a name", "name")])
def test_a_bad_multipart_part_gets_400_naming_what_is_wrong(client, crop, problem, says):
    body, content_type = _multipart({"images": ("n" * 10_000 + ".jpg" if says == "filename" else "a.jpg", crop,
                                                "image/jpeg")})
    if says == "boundary":
        content_type = "multipart/form-data"
    elif says == "name":
        body, content_type = (b'--xx\r\nContent-Disposition: form-data; filename="a.jpg"\r\n\r\n' + crop
                              + b"\r\n--xx--\r\n"), "multipart/form-data; boundary=xx"
    response = client.post("/v1/embed", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400
    error = response.json()["error"]
    assert says in error and "Invalid multipart data." != error and "'images'" in error


# -- settings: numbers and names checked where they enter ----------------------------------------------------
@pytest.mark.parametrize("make, flag", [
    (lambda: ServeSettings("m.onnx", "g", port=70000), "--port"),
    (lambda: ServeSettings("m.onnx", "g", port=-1), "--port"),
    (lambda: ServeSettings("m.onnx", "g", header_timeout_s=float("nan")), "--header-timeout-s"),
    (lambda: ServeSettings("m.onnx", "g", header_timeout_s=0), "--header-timeout-s"),
    (lambda: ServeSettings("m.onnx", "g", body_timeout_s=float("inf")), "--body-timeout-s"),
    (lambda: ServeSettings("m.onnx", "g", max_connections=0), "--max-connections"),
    (lambda: ServeSettings("m.onnx", "g", allowed_hosts="http://reid.example.com"), "--allowed-hosts"),
    (lambda: ServeSettings("m.onnx", "g", allowed_hosts="reid.example.com:8000"), "--allowed-hosts"),
    (lambda: ServeSettings("m.onnx", "g", cors_origins="dash.example.com"), "--cors-origins"),
    (lambda: ServeSettings("m.onnx", "g", cors_origins="https://dash.example.com/app"), "--cors-origins"),
    (lambda: ServeSettings("m.onnx", "g", token="two words"), "--token"),
    (lambda: BatchingSettings(max_delay_ms=float("nan")), "--max-delay-ms"),
    (lambda: BatchingSettings(max_batch=0), "--max-batch"),
    (lambda: BatchingSettings(max_batch=2.5), "--max-batch"),
    (lambda: UploadLimits(max_bytes=0), "--max-upload-mb"),
    (lambda: UploadLimits(max_files=0), "max_files"),
    (lambda: UploadLimits(max_pixels=-1), "max_pixels"),
])
def test_settings_refuse_a_bad_value_naming_the_flag(make, flag):
    with pytest.raises(ReidExportError, match=flag):
        make()


@pytest.mark.slow
def test_cli_refuses_bad_serve_options_in_one_line(tmp_path):
    for option, value in [("--header-timeout-s", "nan"), ("--max-connections", "0"), ("--cors-origins", "evil")]:
        result = subprocess.run([sys.executable, "-m", "reid_export.cli", "serve", "--model", "m.onnx", "--gallery",
                                 str(tmp_path), option, value], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and option in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


# -- the token ------------------------------------------------------------------------------------------------
def test_the_token_file_gives_the_token_and_a_readable_one_warns_naming_chmod_600(tmp_path):
    path = tmp_path / "token"
    path.write_text(f"{SECRET}\nsecond line ignored\n")
    path.chmod(0o600)
    assert ServeSettings("m.onnx", "g", token_file=path).token == SECRET
    path.chmod(0o644)
    with pytest.warns(UserWarning, match=f"chmod 600 {path}"):
        ServeSettings("m.onnx", "g", token_file=path)


@pytest.mark.parametrize("content, extra, says", [(None, {}, "no such file"), ("\n", {}, "empty"),
                                                  ("a b", {}, "ASCII"), (SECRET, {"token": "x"}, "both")])
def test_a_bad_token_file_is_one_error_naming_it(tmp_path, content, extra, says):
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
        path.chmod(0o600)
    with pytest.raises(ReidExportError, match=says) as raised:
        ServeSettings("m.onnx", "g", token_file=path, **extra)
    assert SECRET not in str(raised.value)


def test_the_token_is_not_in_info_metrics_schema_errors_or_settings(gallery, tiny_onnx):
    settings = ServeSettings(model=str(tiny_onnx), gallery=gallery, token=SECRET)
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    with _client(gallery, tiny_onnx, token=SECRET) as c:
        auth = {"Authorization": f"Bearer {SECRET}"}
        answers = [c.get(path, headers=auth) for path in ("/v1/info", "/metrics", "/openapi.json", "/v1/gallery")]
        answers += [c.get("/v1/info", headers={"Authorization": f"Bearer {SECRET}x"}),
                    c.get("/v1/info", headers={**auth, "Host": "evil.example"}),
                    c.post("/v1/gallery", headers={**auth, "Origin": EVIL})]
        assert [a.status_code for a in answers] == [200, 200, 200, 200, 401, 421, 403]
        for answer in answers:
            assert SECRET not in answer.text and SECRET not in str(answer.headers)


@pytest.mark.slow
def test_token_on_the_command_line_warns_naming_token_file(tmp_path):
    result = subprocess.run([sys.executable, "-m", "reid_export.cli", "serve", "--model", "m.onnx", "--gallery",
                             str(tmp_path), "--token", SECRET, "--allowed-hosts", "bad:1"],
                            capture_output=True, text=True, timeout=120)
    assert "process list" in result.stderr and "--token-file" in result.stderr
    assert SECRET not in result.stderr and result.returncode == 2


@pytest.mark.slow
def test_the_token_reaches_no_log_line_and_no_answer_of_a_live_server(tiny_onnx, gallery, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(SECRET + "\n")
    token_file.chmod(0o600)
    server = LiveServer(["--model", str(tiny_onnx), "--gallery", str(gallery), "--token-file", str(token_file),
                         "--access-log"], env={"REID_EXPORT_TOKEN": ""},
                        headers={"Authorization": f"Bearer {SECRET}"})
    server.start()
    try:
        auth = {"Authorization": f"Bearer {SECRET}"}
        answers = [httpx.get(server.url + path, headers=auth, timeout=30) for path in ("/v1/info", "/metrics")]
        answers += [httpx.get(server.url + f"/v1/gallery?token={SECRET}", timeout=30),  # a careless client
                    httpx.get(server.url + "/v1/info", headers={"Authorization": f"Bearer {SECRET}x"}, timeout=30),
                    httpx.get(server.url + "/v1/info", timeout=30)]
        assert [a.status_code for a in answers] == [200, 200, 401, 401, 401]
    finally:
        server.stop()
    output = server.output()
    assert "GET /v1/gallery?token=[token]" in output  # the access log ran, and hid it
    assert SECRET not in output
    assert all(SECRET not in a.text for a in answers)


# -- live: raw HTTP on loopback --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def strict_server(tiny_onnx, built_gallery, tmp_path_factory):
    """A live server with short timeouts (1 s) and small uploads (10 KB a file: 1.7 MB a body), reached by
    reid.example.com as well (behind a TLS proxy)."""
    gallery = shutil.copytree(built_gallery, tmp_path_factory.mktemp("strict") / "gallery")
    server = LiveServer(["--model", str(tiny_onnx), "--gallery", str(gallery), "--header-timeout-s", "1",
                         "--body-timeout-s", "1", "--max-upload-mb", "0.01", "--allowed-hosts", "reid.example.com"],
                        env={"REID_EXPORT_TOKEN": "", "FORWARDED_ALLOW_IPS": "127.0.0.1"})
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
def test_live_dns_rebinding_read_and_cross_origin_add_are_refused(strict_server, crop):
    port = strict_server.port
    rebinding = _exchange(port, _head("GET", "/v1/gallery", "evil.example"))
    assert rebinding.startswith(b"HTTP/1.1 421") and b'"items"' not in rebinding and b"--allowed-hosts" in rebinding
    before = _live_total(strict_server)
    body, kind = _multipart({"images": ("cross.jpg", crop, "image/jpeg")})
    cross = _exchange(port, _head("POST", "/v1/gallery", f"127.0.0.1:{port}", {"Origin": EVIL, "Content-Type": kind,
                                                                              "Content-Length": len(body)}) + body)
    assert cross.startswith(b"HTTP/1.1 403") and b"--cors-origins" in cross
    own = _exchange(port, _head("POST", "/v1/gallery", f"127.0.0.1:{port}", {
        "Origin": f"http://127.0.0.1:{port}", "Content-Type": kind, "Content-Length": len(body)}) + body)
    assert own.startswith(b"HTTP/1.1 201")
    assert _live_total(strict_server) == before + 1


@pytest.mark.slow
def test_behind_a_tls_proxy_its_own_https_page_can_add(strict_server, crop):
    """docs/security.md's nginx/Caddy set-up: the proxy on this machine passes Host and X-Forwarded-Proto."""
    port = strict_server.port
    body, kind = _multipart({"images": ("proxied.jpg", crop, "image/jpeg")})
    page = {"Origin": "https://reid.example.com", "Content-Type": kind, "Content-Length": len(body)}
    proxied = _exchange(port, _head("POST", "/v1/gallery", "reid.example.com", {**page, "X-Forwarded-Proto": "https"})
                        + body)
    assert proxied.startswith(b"HTTP/1.1 201")
    unproxied = _exchange(port, _head("POST", "/v1/gallery", "reid.example.com", page) + body)  # http, not https
    assert unproxied.startswith(b"HTTP/1.1 403")


@pytest.mark.slow
def test_a_slowloris_head_is_cut_off_after_the_header_timeout(strict_server):
    head = _head("GET", "/healthz", f"127.0.0.1:{strict_server.port}", {"X-Slow": "s" * 60})
    with socket.create_connection(("127.0.0.1", strict_server.port), timeout=30) as s:
        sent = 0
        for byte in head:  # a byte every 0.1 s: the whole head would take 9 s; the server waits 1 s
            try:
                s.send(bytes([byte]))
            except OSError:
                break
            sent += 1
            if select.select([s], [], [], 0.1)[0]:
                break
        answer = _read_all(s)
    assert sent < len(head), "the server waited for the whole slow head"
    assert answer.startswith(b"HTTP/1.1 408") and b"--header-timeout-s" in answer


@pytest.mark.slow
def test_an_idle_connection_is_closed_after_the_header_timeout(strict_server):
    with socket.create_connection(("127.0.0.1", strict_server.port), timeout=30) as s:
        assert _read_all(s) == b""  # closed, without an answer to a request never begun


@pytest.mark.slow
def test_a_body_that_stalls_gets_408_naming_the_flag(strict_server, crop):
    port = strict_server.port
    body, kind = _multipart({"images": ("stall.jpg", crop, "image/jpeg")})
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(_head("POST", "/v1/embed", f"127.0.0.1:{port}", {"Content-Type": kind,
                                                                    "Content-Length": len(body)}) + body[:200])
        answer = _read_all(s)  # and then nothing more
    assert answer.startswith(b"HTTP/1.1 408") and b"--body-timeout-s" in answer
    assert httpx.get(strict_server.url + "/healthz", timeout=30).status_code == 200


@pytest.mark.slow
def test_a_chunked_body_past_the_limit_is_cut_with_413_as_it_arrives(strict_server):
    port = strict_server.port
    body, kind = _multipart({"images": ("big.jpg", b"\xff\xd8", "image/jpeg")})
    start = body[:body.index(b"\xff\xd8")]  # the part's head; then its content, which never ends
    limit = 10485 * 64 + (1 << 20)  # --max-upload-mb 0.01 x 64 files + 1 MB of form
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(_head("POST", "/v1/embed", f"127.0.0.1:{port}", {"Content-Type": kind,
                                                                    "Transfer-Encoding": "chunked"}))
        s.sendall(b"%x\r\n%s\r\n" % (len(start), start))
        chunk, sent = b"\0" * 65536, len(start)
        try:
            while sent <= limit + len(chunk) and not select.select([s], [], [], 0)[0]:
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:  # the server closed the connection: its answer is read below
            pass
        answer = _read_all(s)  # no end of body was sent: only a cut answers it
    assert answer.startswith(b"HTTP/1.1 413") and b"limit" in answer


@pytest.mark.slow
def test_connections_past_max_connections_get_503(tiny_onnx, gallery):
    server = LiveServer(["--model", str(tiny_onnx), "--gallery", str(gallery), "--max-connections", "2"])
    server.start()
    port, held = server.port, []
    try:
        for _ in range(2):  # two kept-alive connections, each answered once (so the server has accepted them)
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(_head("GET", "/healthz", f"127.0.0.1:{port}", close=False))
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            held.append(s)
        third = _exchange(port, _head("GET", "/healthz", f"127.0.0.1:{port}"))
        assert third.startswith(b"HTTP/1.1 503")
        held.pop().close()
        assert _eventually_ok(port)
    finally:
        for s in held:
            s.close()
        server.stop()


# -- helpers ---------------------------------------------------------------------------------------------------
def _head(method: str, path: str, host: str, headers: dict | None = None, close: bool = True) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request)
        return _read_all(s)


def _read_all(s: socket.socket) -> bytes:
    """Everything until the server closes the connection (bounded by the socket's timeout)."""
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def _multipart(files: dict) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://127.0.0.1/", files=files or {"x": ("x", b"", "text/plain")})
    return request.read(), request.headers["content-type"]


def _live_total(server: LiveServer) -> int:
    return httpx.get(server.url + "/v1/gallery", params={"limit": 1}, timeout=30).json()["total"]


def _eventually_ok(port: int, tries: int = 50) -> bool:
    """A request answered 200 once the server has seen a held connection close (it learns of it on its loop)."""
    for _ in range(tries):
        if _exchange(port, _head("GET", "/healthz", f"127.0.0.1:{port}")).startswith(b"HTTP/1.1 200"):
            return True
        time.sleep(0.1)
    return False


def _png_header(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height pixels, with next to no data: what a bomb's header says."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
