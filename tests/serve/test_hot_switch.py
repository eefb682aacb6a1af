"""`POST /v1/admin/switch`: a real server moves to a migrated gallery and a second model while searches keep
coming, and none of them fails."""

from __future__ import annotations

import hashlib
import shutil
import threading

import httpx
import pytest
from serve_helpers import LiveServer
from tiny_models import make_tiny_model

from reid_export.serve.migrate import migrate_gallery

TOKEN = "switch-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SEARCHERS = 4  # threads searching during the switch
AFTER = 10  # searches each thread makes once the switch is answered


@pytest.fixture(scope="module")
def second_onnx(tmp_path_factory):
    from reid_export.export.onnx import export_onnx

    return export_onnx(make_tiny_model(seed=1), tmp_path_factory.mktemp("second") / "second.onnx")


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def _embedding(server: LiveServer, image) -> list[float]:
    answer = httpx.post(server.url + "/v1/embed", files={"images": (image.name, image.read_bytes())}, headers=AUTH,
                        timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"][0]["embedding"]


def test_a_switch_under_load_drops_no_request_and_then_answers_from_the_new_model(
        gallery, tiny_onnx, second_onnx, token_file, query_image, tmp_path, capsys):
    server = LiveServer(["--model", str(tiny_onnx), "--gallery", str(gallery), "--token-file", str(token_file)],
                        headers=AUTH)
    server.start()
    try:
        before = _embedding(server, query_image)
        counts = {"ok": 0, "failed": 0, "after_switch": 0}
        failures: list[str] = []
        switched = threading.Event()
        lock = threading.Lock()

        def search() -> None:
            extra = 0
            with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
                while extra < AFTER:  # bounded: AFTER searches once the switch is answered
                    extra += switched.is_set()
                    answer = client.post("/v1/search", files={"image": (query_image.name, query_image.read_bytes())},
                                         data={"k": "5"})
                    with lock:
                        if answer.status_code == 200 and len(answer.json()["results"]) == 5:
                            counts["ok"] += 1
                            counts["after_switch"] += switched.is_set()
                        else:
                            counts["failed"] += 1
                            failures.append(f"{answer.status_code} {answer.text[:200]}")

        threads = [threading.Thread(target=search) for _ in range(SEARCHERS)]
        for t in threads:
            t.start()
        # the migration runs while the server answers from the gallery it reads
        migrated = migrate_gallery(gallery, str(second_onnx), tmp_path / "v2", progress=False)
        during_migration = counts["ok"] + counts["failed"]
        answer = httpx.post(server.url + "/v1/admin/switch", json={"model": str(second_onnx), "gallery": str(migrated)},
                            headers=AUTH, timeout=120)
        switched.set()
        for t in threads:
            t.join(timeout=300)
        assert answer.status_code == 200, answer.text
        assert not failures and counts["failed"] == 0, failures[:5]
        assert counts["after_switch"] >= SEARCHERS * (AFTER - 1)
        info = httpx.get(server.url + "/v1/info", headers=AUTH, timeout=30).json()
        assert info["model_sha256"] == hashlib.sha256(second_onnx.read_bytes()).hexdigest() == answer.json()["model_sha256"]
        assert _embedding(server, query_image) != pytest.approx(before, abs=1e-3)
        with capsys.disabled():
            print(f"\nhot switch under load: {during_migration} searches during the migration, "
                  f"{counts['ok']} answered in all, {counts['failed']} failed, "
                  f"{counts['after_switch']} after the switch")
    finally:
        server.stop()
    assert "Application shutdown complete" in server.output()  # the old app and the new one closed cleanly


def test_the_switch_endpoint_is_off_without_a_token_and_needs_it_with_one(live_server, token_file, tiny_onnx,
                                                                          gallery, built_gallery, tmp_path):
    body = {"model": str(tiny_onnx), "gallery": str(gallery)}
    off = httpx.post(live_server.url + "/v1/admin/switch", json=body, timeout=30)
    assert off.status_code == 403 and "--token-file" in off.json()["error"]
    other = shutil.copytree(built_gallery, tmp_path / "copy")
    guarded = LiveServer(["--model", str(tiny_onnx), "--gallery", str(other), "--token-file", str(token_file)],
                         headers=AUTH)
    guarded.start()
    try:
        assert httpx.post(guarded.url + "/v1/admin/switch", json=body, timeout=30).status_code == 401
        held = httpx.post(guarded.url + "/v1/admin/switch", json={"model": str(tiny_onnx), "gallery": str(other)},
                          headers=AUTH, timeout=60)  # its own gallery, held by the running app: refused, still serving
        assert held.status_code == 422 and "still serving" in held.json()["error"]
        assert httpx.get(guarded.url + "/readyz", headers=AUTH, timeout=30).status_code == 200
    finally:
        guarded.stop()


def test_a_switch_to_a_gallery_of_another_model_is_refused_naming_both(gallery, tiny_onnx, second_onnx, token_file,
                                                                       built_gallery):
    server = LiveServer(["--model", str(tiny_onnx), "--gallery", str(gallery), "--token-file", str(token_file)],
                        headers=AUTH)
    server.start()
    try:
        refused = httpx.post(server.url + "/v1/admin/switch", headers=AUTH, timeout=60,
                             json={"model": str(second_onnx), "gallery": str(built_gallery)})
        assert refused.status_code == 422, refused.text
        assert "second.onnx" in refused.json()["error"] and "index migrate" in refused.json()["error"]
        info = httpx.get(server.url + "/v1/info", headers=AUTH, timeout=30).json()
        assert info["model_sha256"] == hashlib.sha256(tiny_onnx.read_bytes()).hexdigest()
    finally:
        server.stop()
