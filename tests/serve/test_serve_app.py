"""Every endpoint and every bad input, through FastAPI's TestClient on the real app, runtime and gallery."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason='the service needs fastapi: pip install "reid-export[serve]"')
from fastapi.testclient import TestClient  # noqa: E402
from test_serve_batching import RecordingRuntime  # noqa: E402

from reid_export.serve.app import create_app  # noqa: E402
from reid_export.serve.gallery import Gallery  # noqa: E402
from reid_export.serve.service import MAX_K, ServeSettings  # noqa: E402
from reid_export.serve.uploads import UploadLimits  # noqa: E402


def _client(gallery, tiny_onnx, **settings) -> TestClient:
    runtime = RecordingRuntime(tiny_onnx, threads=1)
    # the Host a loopback server answers (TestClient sends "testserver" by default, which it refuses)
    return TestClient(create_app(ServeSettings(model=str(tiny_onnx), gallery=gallery, **settings), runtime=runtime),
                      base_url="http://127.0.0.1")


def _png(width: int, height: int, colour=(200, 30, 60)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def client(gallery, tiny_onnx):
    with _client(gallery, tiny_onnx) as c:
        yield c


def _search(client, path, **form):
    return client.post("/v1/search", files={"image": (path.name, path.read_bytes(), "image/jpeg")},
                       data={k: str(v) for k, v in form.items()})


def test_health_ready_info_docs_and_page(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"ready": True}
    info = client.get("/v1/info").json()
    assert info["runtime"] == "onnxruntime" and info["precision"] == "fp32" and info["input"] == "64x32"
    assert info["gallery_items"] > 0 and info["cameras"]
    assert client.get("/docs").status_code == 200
    assert "/v1/search" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and 'id="search-form"' in page.text
    assert client.get("/static/app.js").status_code == 200


def test_search_returns_k_ranked_items_with_labels_and_crop_urls(client, query_image):
    answer = _search(client, query_image, k=5).json()
    results = answer["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    distances = [r["distance"] for r in results]
    assert distances == sorted(distances) and all(0 <= d <= 2 for d in distances)
    for r in results:
        assert set(r) >= {"id", "pid", "camid", "attributes", "image_url", "source"}
        crop = client.get(r["image_url"])
        assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(crop.content)).size[0] > 0


def test_exclude_camera_filters_results(client, query_image):
    results = _search(client, query_image, k=50, exclude_camera=1).json()["results"]
    assert results and all(r["camid"] != 1 for r in results)


def test_k_larger_than_the_gallery_returns_the_whole_gallery(client, query_image):
    size = client.get("/v1/info").json()["gallery_items"]
    assert len(_search(client, query_image, k=MAX_K).json()["results"]) == size


def test_embed_takes_one_or_many_images(client, tiny_market):
    paths = sorted((tiny_market / "query").glob("*.jpg"))[:3]
    answer = client.post("/v1/embed", files=[("images", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]).json()
    assert len(answer["items"]) == 3 and answer["dim"] == len(answer["items"][0]["embedding"])
    norms = [np.linalg.norm(item["embedding"]) for item in answer["items"]]
    np.testing.assert_allclose(norms, 1.0, atol=1e-4)


def test_added_crop_is_found_first_then_deleted_from_search_and_disk(client, gallery, tiny_market):
    path = sorted((tiny_market / "bounding_box_train").glob("*.jpg"))[0]
    added = client.post("/v1/gallery", files={"images": (path.name, path.read_bytes(), "image/jpeg")})
    assert added.status_code == 201
    item = added.json()["added"][0]
    assert (item["pid"], item["camid"]) != (None, None)  # read from the Market-1501 file name
    top = _search(client, path, k=1).json()["results"][0]
    assert top["id"] == item["id"] and top["distance"] < 1e-4
    with Gallery.open(gallery) as g:
        crop = g.image_path(item["id"])
    assert crop.read_bytes() == path.read_bytes()

    assert client.delete(f"/v1/gallery/{item['id']}").status_code == 200
    assert not crop.exists()
    assert client.get(f"/v1/gallery/{item['id']}/image").status_code == 404
    assert client.delete(f"/v1/gallery/{item['id']}").status_code == 404
    assert item["id"] not in {r["id"] for r in _search(client, path, k=MAX_K).json()["results"]}
    with Gallery.open(gallery) as g:
        assert item["id"] not in g


def test_gallery_listing_pages_through_items(client):
    first = client.get("/v1/gallery", params={"limit": 2}).json()
    second = client.get("/v1/gallery", params={"offset": 2, "limit": 2}).json()
    assert len(first["items"]) == 2 and first["total"] >= 4
    assert {i["id"] for i in first["items"]}.isdisjoint(i["id"] for i in second["items"])


@pytest.mark.parametrize("item_id", ["..%2F..%2Fgallery.json", "0123456789abcdef", "ZZZ", "%2Fetc%2Fpasswd"])
def test_item_ids_never_reach_a_path(client, item_id):
    response = client.get(f"/v1/gallery/{item_id}/image")
    assert response.status_code == 404 and "error" in response.json()


def test_bad_uploads_get_a_clear_4xx_and_the_server_stays_up(client, query_image):
    jpeg = query_image.read_bytes()
    cases = {
        "not an image": ({"image": ("notes.jpg", b"just some text, not pixels", "image/jpeg")}, {}, 415),
        "corrupt jpeg": ({"image": ("broken.jpg", jpeg[:len(jpeg) // 3], "image/jpeg")}, {}, 422),
        "empty": ({"image": ("empty.jpg", b"", "image/jpeg")}, {}, 422),
        "1x1": ({"image": ("dot.png", _png(1, 1), "image/png")}, {}, 422),
        "wrong field": ({"file": ("q.jpg", jpeg, "image/jpeg")}, {}, 422),
        "k=0": ({"image": ("q.jpg", jpeg, "image/jpeg")}, {"k": "0"}, 422),
        "k=10^9": ({"image": ("q.jpg", jpeg, "image/jpeg")}, {"k": str(10**9)}, 422),
        "k not a number": ({"image": ("q.jpg", jpeg, "image/jpeg")}, {"k": "many"}, 422),
    }
    for name, (files, data, status) in cases.items():
        response = client.post("/v1/search", files=files, data=data)
        assert response.status_code == status, (name, response.text)
        message = response.json()["error"]
        assert isinstance(message, str) and len(message) > 10, name
    assert "'image'" in client.post("/v1/search", files={"file": ("q.jpg", jpeg, "image/jpeg")}).json()["error"]
    assert "k must be between 1 and" in client.post("/v1/search", files={"image": ("q.jpg", jpeg, "image/jpeg")},
                                                     data={"k": "0"}).json()["error"]
    assert _search(client, query_image, k=3).status_code == 200


def test_size_and_pixel_limits(gallery, tiny_onnx, query_image):
    limits = UploadLimits(max_bytes=2000, max_pixels=64 * 64)
    with _client(gallery, tiny_onnx, limits=limits) as client:
        big = client.post("/v1/search", files={"image": ("big.png", np.random.bytes(3000), "image/png")})
        assert big.status_code == 413 and "2000 bytes" in big.json()["error"]
        bomb = client.post("/v1/search", files={"image": ("wide.png", _png(400, 300), "image/png")})
        assert bomb.status_code == 413 and "pixels" in bomb.json()["error"]


def test_a_runtime_error_is_a_500_for_that_request_only(client, query_image):
    flat = client.post("/v1/search", files={"image": ("flat.png", _png(32, 64), "image/png")})
    assert flat.status_code == 500 and "inference failed" in flat.json()["error"]
    assert _search(client, query_image, k=2).status_code == 200
    assert client.get("/readyz").status_code == 200


def test_metrics_count_requests_batches_and_queue(client, query_image):
    _search(client, query_image, k=2)
    text = client.get("/metrics").text
    assert 'reid_requests_total{endpoint="/v1/search",status="200"}' in text
    assert "reid_request_seconds_bucket" in text and "reid_batch_images_count" in text
    assert "reid_queue_images" in text and "reid_gallery_items" in text


def test_a_token_is_required_everywhere_but_healthz_and_the_page_shell(gallery, tiny_onnx, query_image):
    with _client(gallery, tiny_onnx, token="s3cret") as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/").status_code == 200
        for method, path in [("get", "/readyz"), ("get", "/metrics"), ("get", "/v1/info"), ("get", "/v1/gallery"),
                             ("get", "/openapi.json"), ("delete", "/v1/gallery/0123456789abcdef")]:
            response = getattr(client, method)(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
        assert _search(client, query_image).status_code == 401
        assert client.get("/v1/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert client.get("/v1/info", headers=good).status_code == 200
        assert client.post("/v1/search", headers=good, files={"image": ("q.jpg", query_image.read_bytes(),
                                                                         "image/jpeg")}).status_code == 200


def test_the_milvus_store_serves_the_same_results(gallery, tiny_onnx, query_image, tmp_path):
    pytest.importorskip("milvus_lite", reason='the Milvus store needs pymilvus + milvus-lite: pip install "reid-export[milvus]"')
    with _client(gallery, tiny_onnx) as client:
        embedded = _search(client, query_image, k=8).json()["results"]
    with _client(gallery, tiny_onnx, store="milvus", milvus_uri=str(tmp_path / "m.db")) as client:
        assert client.get("/v1/info").json()["store"] == "milvus"
        milvus = _search(client, query_image, k=8).json()["results"]
    assert [r["id"] for r in milvus] == [r["id"] for r in embedded]
    np.testing.assert_allclose([r["distance"] for r in milvus], [r["distance"] for r in embedded], atol=1e-5)


def test_attribute_models_fill_attributes_in_the_gallery_and_in_answers(tiny_market, tmp_path):
    from tiny_models import make_tiny_model

    from reid_export.export.onnx import export_onnx
    from reid_export.serve.indexing import build_gallery

    model = export_onnx(make_tiny_model(attributes=True), tmp_path / "attr.onnx", with_attributes=True)
    gallery = build_gallery(tiny_market / "bounding_box_test", str(model), tmp_path / "gallery", progress=False)
    with Gallery.open(gallery) as g:
        assert all(item.attributes is not None and len(item.attributes) == 27 for item in g.items)
    query = sorted((tiny_market / "query").glob("*.jpg"))[0]
    with _client(gallery, model) as client:
        answer = _search(client, query, k=3).json()
        assert answer["query"]["attributes"]["gender"] in ("male", "female")
        assert all(r["attributes"]["age"] in ("young", "teenager", "adult", "old") for r in answer["results"])
        embedded = client.post("/v1/embed", files={"images": (query.name, query.read_bytes(), "image/jpeg")}).json()
        assert set(embedded["items"][0]["attributes"]) >= {"gender", "backpack", "upblack"}


def test_an_emptied_gallery_answers_searches_with_no_results(client, gallery, query_image):
    for item in client.get("/v1/gallery", params={"limit": 1000}).json()["items"]:
        assert client.delete(f"/v1/gallery/{item['id']}").status_code == 200
    assert client.get("/v1/info").json()["gallery_items"] == 0
    response = _search(client, query_image, k=5)
    assert response.status_code == 200 and response.json()["results"] == []
    assert not list((gallery / "crops").iterdir()) and not list((gallery / "shards").iterdir())


def test_numpy_blas_runs_one_thread_while_serving_and_is_restored_after(gallery, tiny_onnx):
    """OpenBLAS's second thread spun after every gallery search, taking CPU the model needs (README, Serve)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads() -> set[int]:  # numpy's own BLAS: the one the gallery search runs on
        return {info["num_threads"] for info in threadpoolctl.threadpool_info()
                if info["user_api"] == "blas" and "numpy" in info["filepath"]}

    before = blas_threads()
    if not before:
        pytest.skip("numpy has no BLAS threadpoolctl can see")
    with _client(gallery, tiny_onnx) as client:
        assert client.get("/readyz").json() == {"ready": True}
        assert blas_threads() == {1}
    assert blas_threads() == before


def test_search_form_fields_are_checked_and_documented(client, query_image):
    jpeg = query_image.read_bytes()
    image = {"image": ("q.jpg", jpeg, "image/jpeg")}
    bad_k = client.post("/v1/search", files=image, data={"k": "ten"})
    assert bad_k.status_code == 422 and "'k'" in bad_k.json()["error"] and "whole number" in bad_k.json()["error"]
    as_file = client.post("/v1/search", files={**image, "exclude_camera": ("c.txt", b"1", "text/plain")})
    assert as_file.status_code == 422 and "'exclude_camera'" in as_file.json()["error"]
    text_image = client.post("/v1/search", data={"image": "not a file", "k": "3"})
    assert text_image.status_code == 422 and "'image'" in text_image.json()["error"]
    filtered = client.post("/v1/search", files=image, data={"k": "4", "exclude_camera": "1"}).json()
    assert filtered["exclude_camera"] == 1 and filtered["k"] == 4
    assert filtered["results"] and all(r["camid"] != 1 for r in filtered["results"])
    schema = client.get("/openapi.json").json()["paths"]["/v1/search"]["post"]["requestBody"]["content"]
    fields = schema["multipart/form-data"]["schema"]["properties"]
    assert set(fields) == {"image", "k", "exclude_camera"} and fields["image"]["format"] == "binary"
