"""Dynamic batching: concurrent requests share runtime calls, limits hold, a failure stays with its request."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from reid_export.runtimes.onnxruntime import OnnxRuntime
from reid_export.serve.batching import BatchingSettings, DynamicBatcher


class RecordingRuntime(OnnxRuntime):
    """The real ONNX Runtime backend, recording the batch size of every call; a batch holding a flat (single
    colour) image fails, as a backend error would."""

    def __init__(self, artefact, **options):
        super().__init__(artefact, **options)
        self.calls: list[int] = []

    def _infer_impl(self, batch):
        self.calls.append(len(batch))
        if (batch.max(axis=(2, 3)) == batch.min(axis=(2, 3))).all(axis=1).any():  # a flat image
            raise RuntimeError("poisoned input")
        return super()._infer_impl(batch)


@pytest.fixture
def runtime(tiny_onnx):
    rt = RecordingRuntime(tiny_onnx, threads=1)
    with rt:
        yield rt


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 32, 3), dtype=np.uint8)


async def _run(batcher: DynamicBatcher, requests: list[np.ndarray]):
    await batcher.start()
    try:
        return await asyncio.gather(*(batcher.infer(r) for r in requests), return_exceptions=True)
    finally:
        await batcher.stop()


def test_concurrent_requests_are_coalesced_and_answered_with_their_own_rows(runtime):
    requests = [_images(1, seed) for seed in range(12)]
    alone = [runtime.infer(runtime.contract.normalize_uint8(r))["embedding"] for r in requests]
    runtime.calls.clear()
    batcher = DynamicBatcher(runtime, BatchingSettings(max_batch=8, max_delay_ms=200))
    outputs = asyncio.run(_run(batcher, requests))
    assert sorted(runtime.calls) == [4, 8]  # 12 single-image requests in two calls, none over max_batch
    for out, expected in zip(outputs, alone):
        np.testing.assert_allclose(out["embedding"], expected, atol=1e-5)


def test_batching_off_makes_one_call_per_request(runtime):
    batcher = DynamicBatcher(runtime, BatchingSettings(enabled=False))
    asyncio.run(_run(batcher, [_images(1, s) for s in range(5)] + [_images(3, 9)]))
    assert sorted(runtime.calls) == [1, 1, 1, 1, 1, 3]


def test_the_runtimes_own_max_batch_is_respected(runtime):
    runtime.max_batch = 3
    batcher = DynamicBatcher(runtime, BatchingSettings(max_batch=32, max_delay_ms=200))
    outputs = asyncio.run(_run(batcher, [_images(2, s) for s in range(4)]))
    assert max(runtime.calls) <= 3 and sum(runtime.calls) == 8
    assert all(out["embedding"].shape == (2, runtime_dim(runtime)) for out in outputs)


def test_a_runtime_error_fails_only_the_request_that_caused_it(runtime):
    poisoned = np.zeros((1, 64, 32, 3), np.uint8)
    requests = [_images(1, 1), poisoned, _images(1, 2)]
    outputs = asyncio.run(_run(DynamicBatcher(runtime, BatchingSettings(max_batch=8, max_delay_ms=200)), requests))
    assert isinstance(outputs[1], RuntimeError)
    assert outputs[0]["embedding"].shape[0] == 1 and outputs[2]["embedding"].shape[0] == 1


def test_stop_finishes_queued_requests_and_later_ones_are_refused(runtime):
    async def scenario():
        batcher = DynamicBatcher(runtime, BatchingSettings(max_batch=2, max_delay_ms=0))
        await batcher.start()
        tasks = [asyncio.create_task(batcher.infer(_images(1, s))) for s in range(6)]
        await asyncio.sleep(0)  # all six queued
        await batcher.stop()
        done = await asyncio.gather(*tasks)
        with pytest.raises(Exception, match="not running"):
            await batcher.infer(_images(1, 0))
        return done

    assert len(asyncio.run(scenario())) == 6
    assert sum(runtime.calls) == 6


def runtime_dim(runtime) -> int:
    return runtime.infer(runtime.contract.normalize_uint8(_images(1, 0)))["embedding"].shape[1]


def test_postprocess_runs_once_per_batch_and_each_request_gets_its_own_result(runtime):
    seen = []

    def postprocess(outputs, tasks):
        seen.append(len(outputs))
        return [(task, out["embedding"].shape[0]) for out, task in zip(outputs, tasks)]

    async def scenario():
        batcher = DynamicBatcher(runtime, BatchingSettings(max_batch=16, max_delay_ms=200), postprocess=postprocess)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.run(_images(1 + s % 2, s), task=f"search {s}") for s in range(6)))
        finally:
            await batcher.stop()

    answers = asyncio.run(scenario())
    assert seen == [6]  # one postprocess (one gallery search) for the six coalesced requests
    for s, (outputs, result) in enumerate(answers):
        assert result == (f"search {s}", 1 + s % 2) and outputs["embedding"].shape[0] == 1 + s % 2


def test_a_lone_request_does_not_wait_for_the_delay_but_an_announced_one_is_waited_for(runtime):
    async def scenario():
        batcher = DynamicBatcher(runtime, BatchingSettings(max_batch=8, max_delay_ms=2000))
        await batcher.start()
        try:
            t0 = time.perf_counter()
            await batcher.infer(_images(1, 0))
            alone_s = time.perf_counter() - t0

            async def late_arrival(ticket):
                await asyncio.sleep(0.3)  # still being received and decoded
                return await batcher.run(_images(1, 2), ticket=ticket)

            runtime.calls.clear()
            with batcher.announce() as ticket:
                first = asyncio.create_task(batcher.infer(_images(1, 1)))
                second = asyncio.create_task(late_arrival(ticket))
                await asyncio.gather(first, second)
            return alone_s
        finally:
            await batcher.stop()

    alone_s = asyncio.run(scenario())
    assert alone_s < 1.0  # far below the 2 s delay
    assert runtime.calls == [2]  # the first request waited for the announced one


# -- instances: an all-core runtime for lone requests, one-thread lanes under load ----------------------------
class TimedRuntime(RecordingRuntime):
    """Records when each call ran, to check which instances overlapped."""

    def __init__(self, artefact, **options):
        super().__init__(artefact, **options)
        self.spans: list[tuple[float, float]] = []

    def _infer_impl(self, batch):
        t0 = time.perf_counter()
        try:
            return super()._infer_impl(batch)
        finally:
            self.spans.append((t0, time.perf_counter()))


@pytest.fixture
def instances(tiny_onnx):
    solo = TimedRuntime(tiny_onnx, threads=2)
    lanes = [TimedRuntime(tiny_onnx, threads=1) for _ in range(2)]
    for rt in (solo, *lanes):
        rt.activate()
    yield solo, lanes
    for rt in (solo, *lanes):
        rt.deactivate()


def test_a_lone_request_runs_on_the_all_core_instance_and_a_burst_is_shared_by_the_lanes(instances):
    solo, lanes = instances
    requests = [_images(1, seed) for seed in range(12)]
    alone = [solo.infer(solo.contract.normalize_uint8(r))["embedding"] for r in requests]
    solo.calls.clear()

    async def scenario():
        batcher = DynamicBatcher(solo, BatchingSettings(max_batch=32, max_delay_ms=200), lanes=lanes)
        await batcher.start()
        try:
            lone = await batcher.infer(requests[0])
            burst = await asyncio.gather(*(batcher.infer(r) for r in requests))
            return lone, burst, batcher.instances
        finally:
            await batcher.stop()

    lone, burst, count = asyncio.run(scenario())
    assert count == 2
    assert solo.calls == [1]  # the lone request, on all cores; nothing of the burst
    # the twelve queued at once: each free lane takes its share instead of one lane taking all twelve
    assert sorted(lanes[0].calls + lanes[1].calls) == [6, 6]
    np.testing.assert_allclose(lone["embedding"], alone[0], atol=1e-5)
    for out, expected in zip(burst, alone):  # every request still gets its own row, whichever lane ran it
        np.testing.assert_allclose(out["embedding"], expected, atol=1e-5)


def test_the_all_core_instance_never_runs_beside_a_lane(instances):
    """Under a mixed load (lone requests and bursts), no call of the all-core instance overlaps a lane's call:
    their threads would otherwise compete for the same cores."""
    solo, lanes = instances

    async def scenario():
        batcher = DynamicBatcher(solo, BatchingSettings(max_batch=4, max_delay_ms=1), lanes=lanes)
        await batcher.start()
        try:
            for round_ in range(6):
                await batcher.infer(_images(1, round_))  # alone
                await asyncio.gather(*(batcher.infer(_images(1, 10 * round_ + i)) for i in range(1 + 3 * round_)))
        finally:
            await batcher.stop()

    asyncio.run(scenario())
    assert solo.spans and lanes[0].spans and lanes[1].spans
    lane_spans = lanes[0].spans + lanes[1].spans
    for start, end in solo.spans:
        assert all(end <= s or e <= start for s, e in lane_spans)
    assert all(size <= 4 for size in lanes[0].calls + lanes[1].calls)


def test_on_lanes_a_runtime_error_still_fails_only_its_request_and_stop_drains_every_lane(instances):
    solo, lanes = instances
    poisoned = np.zeros((1, 64, 32, 3), np.uint8)

    async def scenario():
        batcher = DynamicBatcher(solo, BatchingSettings(max_batch=8, max_delay_ms=50), lanes=lanes)
        await batcher.start()
        tasks = [asyncio.create_task(batcher.infer(poisoned if i == 3 else _images(1, i))) for i in range(10)]
        await asyncio.sleep(0)
        await batcher.stop()  # queued and running batches finish first
        return await asyncio.gather(*tasks, return_exceptions=True)

    outputs = asyncio.run(scenario())
    assert isinstance(outputs[3], RuntimeError)
    assert all(out["embedding"].shape[0] == 1 for i, out in enumerate(outputs) if i != 3)
    assert solo.calls == []  # nothing ran alone: ten requests arrived together


def test_lane_plan_follows_the_runtime_and_the_cores(monkeypatch):
    from reid_export.errors import ReidExportError
    from reid_export.serve import service

    monkeypatch.setattr(service.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert service.lane_plan("onnxruntime", 0) == (2, 1)  # one one-thread lane per core
    assert service.lane_plan("onnxruntime", 1) == (0, 0)  # a single all-core instance
    assert service.lane_plan("onnxruntime", 4) == (4, 1)
    assert service.lane_plan("torch", 0) == (0, 0)  # torch's threads are process-wide: one instance
    assert service.lane_plan("openvino", 2) == (2, 1)  # OpenVINO too: one-thread compiled models
    with pytest.raises(ReidExportError, match="lanes.*onnxruntime, openvino"):
        service.lane_plan("torch", 2)
    monkeypatch.setattr(service.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert service.lane_plan("onnxruntime", 0) == (0, 0)  # one core: nothing to share out
    with pytest.raises(ReidExportError, match="--instances"):
        BatchingSettings(instances=-1)
