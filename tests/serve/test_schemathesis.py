"""Schemathesis fuzzes the service's own OpenAPI schema against a live `reid-export serve` (a subprocess on
loopback with the tiny model and gallery): every operation, positive and negative examples, bounded
(`MAX_EXAMPLES` per operation and mode) and derandomised, so CI runs the same requests every time.

Every answer must be no 5xx and one the schema documents: its status code, content type and body
(`not_a_server_error`, `status_code_conformance`, `content_type_conformance`, `response_schema_conformance`).
Random bytes are never an image, so half the positive examples carry a real crop in every file field
instead: the model runs, searches answer and the gallery grows, with the other fields as generated.
The counts are printed (`pytest -s`) and every failure is listed with a curl command that repeats it."""

from __future__ import annotations

import datetime
import io
import shutil
from collections import Counter

import hypothesis
import pytest
import schemathesis
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)
from serve_helpers import LiveServer

MAX_EXAMPLES = 25  # per operation and generation mode
REQUEST_TIMEOUT_S = 60  # a request that takes longer is a hung server, reported as a failure
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


@pytest.fixture(scope="module")
def fuzzed(tiny_onnx, built_gallery, tmp_path_factory):
    """Every operation of the live server's schema fuzzed once: (counts, failures)."""
    gallery = shutil.copytree(built_gallery, tmp_path_factory.mktemp("fuzzed") / "gallery")
    # the default a user starts: loopback, no token (the token's 401s are the fault sweep's, tests/faults)
    server = LiveServer(["--model", str(tiny_onnx), "--gallery", str(gallery)], env={"REID_EXPORT_TOKEN": ""})
    server.start()
    try:
        schema = schemathesis.openapi.from_url(server.url + "/openapi.json", timeout=30)
        counts, failures = Counter(), []
        operations = [result.ok() for result in schema.get_all_operations()]
        # adds first, so every read and search then meets the items the fuzzing made (ids, labels, crops)
        for operation in sorted(operations, key=lambda op: (op.method.upper(), op.path) != ("POST", "/v1/gallery")):
            counts["operations"] += 1
            for mode in MODES:
                _fuzz_operation(operation, mode, server.url, counts, failures)
        counts["server_still_up"] = int(server.process.poll() is None)
    finally:
        server.stop()
    print(f"\nschemathesis against {server.url}: {dict(counts)}")
    return counts, failures


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(fuzzed):
    counts, failures = fuzzed
    listed = "\n\n".join(failures[:10])
    assert counts["5xx"] == 0 and counts["schema_failures"] == 0, \
        f"{counts['5xx']} answers were 5xx, {counts['schema_failures']} broke the schema:\n{listed}"


def test_schemathesis_ran_every_operation_with_examples(fuzzed):
    counts, _ = fuzzed
    assert counts["operations"] >= 10, "the schema lost operations: /v1/embed, /v1/search, /v1/gallery, ..."
    assert counts["examples"] >= counts["operations"] * 2, counts
    assert counts["server_still_up"] == 1, "the server exited during the fuzzing"


def _fuzz_operation(operation, mode, base_url: str, counts: Counter, failures: list[str]) -> None:
    """Send up to MAX_EXAMPLES generated requests to one operation; count them and record every failure
    (not stopping at the first, so the counts are complete; no shrinking, the curl command repeats it)."""
    strategy = operation.as_strategy(generation_mode=mode)

    @hypothesis.settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None,
                         deadline=datetime.timedelta(seconds=REQUEST_TIMEOUT_S),
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(case=strategy, real_crops=hypothesis.strategies.booleans())
    def run(case, real_crops: bool) -> None:
        if real_crops and mode == schemathesis.GenerationMode.POSITIVE:
            _put_crops_in(case)
        response = case.call(base_url=base_url, timeout=REQUEST_TIMEOUT_S)
        counts["examples"] += 1
        counts[f"status_{response.status_code}"] += 1
        if response.status_code >= 500:
            counts["5xx"] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as e:
            counts["schema_failures"] += response.status_code < 500
            failures.append(f"{operation.label} [{mode.value}] {response.status_code}: {e}")

    try:
        run()
    except hypothesis.errors.Unsatisfiable:  # nothing to make invalid: an operation without parameters or body
        counts["modes_without_examples"] += 1


def _put_crops_in(case) -> None:
    """Every file field of a multipart body (`image`, `images`) gets a real JPEG person crop."""
    if not isinstance(case.body, dict):
        return
    for name in ("image", "images"):
        if name in case.body:
            case.body[name] = [_CROP] * len(case.body[name]) if isinstance(case.body[name], list) else _CROP


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 128), (40, 120, 200)).save(out, format="JPEG")
    return out.getvalue()


_CROP = _jpeg()
