"""The service with more model instances (lanes): same answers as one instance, lanes used under load."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from reid_export.errors import RuntimeUnavailable
from reid_export.runtimes import capabilities, make_runtime, runtime_names
from reid_export.serve.batching import BatchingSettings
from reid_export.serve.service import ReidService, ServeSettings


def _pixels(service: ReidService, paths) -> list[np.ndarray]:
    return [service.contract.decode(p) for p in paths]


async def _searches(settings: ServeSettings, paths) -> tuple[list, list, dict, dict]:
    service = ReidService(settings)
    await service.start()
    try:
        pixels = _pixels(service, paths)
        lone = [await service.search(p, k=5) for p in pixels[:2]]  # one at a time
        burst = await asyncio.gather(*(service.search(p, k=5) for p in pixels))  # all at once
        return lone, burst, service.describe(), dict(service.batcher.calls_by_instance)
    finally:
        await service.stop()


def _run_off_main_thread(coroutine):
    """asyncio.run on a worker thread: once the main thread has set OpenBLAS's thread count (the service does
    on start), a later set from another thread (TestClient's lifespan thread in other tests) is ignored."""
    result = {}
    worker = threading.Thread(target=lambda: result.update(value=asyncio.run(coroutine)))
    worker.start()
    worker.join()
    return result["value"]


# every runtime whose registry entry declares lanes (serve --instances), at FP32 so one instance and two agree
LANE_RUNTIMES = [name for name in runtime_names(lanes=True) if "fp32" in capabilities(name).precisions]


@pytest.mark.parametrize("runtime", LANE_RUNTIMES)
def test_lanes_give_the_same_answers_as_one_instance_and_take_the_load(tiny_onnx, gallery, tiny_market, runtime):
    try:
        make_runtime(runtime, tiny_onnx).activate().deactivate()
    except RuntimeUnavailable as e:
        pytest.skip(f"{runtime} cannot run here: {e}")
    queries = sorted((tiny_market / "query").glob("*.jpg"))[:8]
    model = f"{runtime}={tiny_onnx}"  # the gallery was built with ONNX Runtime; any runtime of the same file fits
    one = ServeSettings(model=model, gallery=gallery, batching=BatchingSettings(instances=1))
    two = ServeSettings(model=model, gallery=gallery, batching=BatchingSettings(instances=2))
    lone1, burst1, info1, calls1 = _run_off_main_thread(_searches(one, queries))
    lone2, burst2, info2, calls2 = _run_off_main_thread(_searches(two, queries))
    assert info1["runtime"] == info2["runtime"] == runtime
    assert info1["batching"]["instances"] == 1 and info2["batching"]["instances"] == 2
    assert set(calls1) == {"infer"}
    assert calls2["infer"] >= 2 and calls2["lane0"] + calls2["lane1"] >= 1  # lone ones on all cores, the burst on lanes
    for (q1, r1), (q2, r2) in zip(lone1 + burst1, lone2 + burst2):
        assert q1 == q2  # the query's attributes, decoded with its batch on the inference thread
        assert [r["id"] for r in r1] == [r["id"] for r in r2]
        np.testing.assert_allclose([r["distance"] for r in r1], [r["distance"] for r in r2], atol=1e-5)
