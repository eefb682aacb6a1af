"""Serve fixtures: a gallery built from the tiny Market-1501 set with the tiny ONNX model, and a live server."""

from __future__ import annotations

import shutil

import pytest
from serve_helpers import LiveServer

from reid_export.serve.indexing import build_gallery


@pytest.fixture(scope="session")
def built_gallery(tiny_market, tiny_onnx, tmp_path_factory):
    """Built once; copy it (`gallery`) before changing it."""
    return build_gallery(tiny_market, str(tiny_onnx), tmp_path_factory.mktemp("galleries") / "gallery", progress=False)


@pytest.fixture
def gallery(built_gallery, tmp_path):
    return shutil.copytree(built_gallery, tmp_path / "gallery")


@pytest.fixture
def query_image(tiny_market):
    return sorted((tiny_market / "query").glob("*.jpg"))[0]


@pytest.fixture
def live_server(tiny_onnx, gallery):
    """`reid-export serve` in a subprocess on a free loopback port; stopped (SIGTERM) after the test."""
    server = LiveServer(["--model", str(tiny_onnx), "--gallery", str(gallery)])
    server.start()
    yield server
    server.stop()
