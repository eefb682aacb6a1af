"""Dynamic batching: concurrent requests coalesced into one runtime call, as Triton's dynamic batcher does.

    batcher = DynamicBatcher(runtime, max_batch=32, max_delay_ms=5)
    await batcher.start()
    out = await batcher.infer(images)        # uint8 (N, H, W, 3) -> {"embedding": (N, D), ...}
    await batcher.stop()                     # runs what is queued, then stops

A worker task takes the first waiting request, then keeps taking requests until `max_batch` images are
gathered or `max_delay_ms` has passed since the first arrived, or no other request is on the way
(queued, or announced with `announce()` by a request still being received and decoded) while no other
batch is running (with one running, the service is under load and more requests are coming); the batch is
normalised and run in one `runtime.infer` call on a single inference thread (off the event loop), split into calls of at most the
runtime's own `max_batch` when it has one. A request is never split across batches unless it alone
is larger than `max_batch`. `enabled=False` runs each request on its own (the "batching off" baseline).

When a coalesced call fails, each of its requests is run again alone, so a runtime error fails only
the request that caused it. `postprocess` (optional) runs on the inference thread right after each call,
with every request's outputs and task: the service searches the gallery there, one top-k for the batch.

**Instances** (Triton's `instance_group` count): `lanes`, optional, are more instances of the same model,
each on its own thread, typically with one intra-op thread each. Under load every batch goes to a free
lane, and the batch is cut so the free lanes share what is waiting; a lane's call never waits at a
thread barrier for a core the event loop has taken, so HTTP work costs the model only the CPU it uses.
A request that arrives alone (nothing queued, announced or running) goes to `runtime`, which uses all
cores, for the lowest latency; lanes and that instance never run at the same time. Without lanes every
batch runs on `runtime`, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..errors import ReidExportError
from ..options import number, whole
from ..runtimes import Runtime

__all__ = ["DynamicBatcher", "BatchingSettings"]


@dataclass(frozen=True)
class BatchingSettings:
    enabled: bool = True  # coalesce concurrent requests; False: one runtime call per request
    max_batch: int = 32  # images per coalesced runtime call, at most
    max_delay_ms: float = 5.0  # how long the first request of a batch waits for others to join
    # model instances under load (Triton's instance_group count): 0 = one per core where the runtime can
    # (ONNX Runtime and OpenVINO on CPU), else 1; 1 = a single all-core instance; N = N instances of cores/N threads
    instances: int = 0

    def __post_init__(self) -> None:
        whole(self.max_batch, "--max-batch", low=1)
        number(self.max_delay_ms, "--max-delay-ms", high=60_000)
        whole(self.instances, "--instances", low=0, high=1024)  # 0: one per core


@dataclass
class _Request:
    images: np.ndarray
    future: asyncio.Future
    task: object = None  # handed to `postprocess` with this request's outputs (e.g. a search to run)
    queued_at: float = field(default_factory=time.perf_counter)


class _Instance:
    """One model instance and the thread its calls run on."""

    def __init__(self, runtime: Runtime, label: str, max_batch: int):
        self.runtime = runtime
        self.label = label
        runtime_max = getattr(runtime, "max_batch", None)
        self.call_max = min(max_batch, runtime_max) if runtime_max else max_batch
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"reid-{label}")
        self.busy = False


class DynamicBatcher:
    def __init__(self, runtime: Runtime, settings: BatchingSettings | None = None,
                 on_batch: Callable[[int, float], None] | None = None,
                 postprocess: Callable[[list[dict], list], list] | None = None,
                 lanes: list[Runtime] | tuple = ()):
        self.runtime = runtime
        self.settings = settings or BatchingSettings()
        self.on_batch = on_batch  # called with (images in the runtime call, seconds it took, instance label)
        # run on the inference thread after each call with every request's outputs and task, so that work
        # on the outputs (the gallery search) is batched too; returns one result per request
        self.postprocess = postprocess
        self._solo = _Instance(runtime, "infer", self.settings.max_batch)
        self._lanes = [_Instance(lane, f"lane{i}", self.settings.max_batch) for i, lane in enumerate(lanes)]
        self._queue: asyncio.Queue[_Request | None] | None = None
        self._worker: asyncio.Task | None = None
        self._calls: set[asyncio.Task] = set()  # batches running on an instance
        self._freed: asyncio.Event | None = None  # set when an instance finishes a batch
        self._accepting = False
        self.queued_images = 0  # images waiting for the runtime (the queue-depth gauge)
        self.arriving = 0  # requests announced (being received / decoded) but not queued yet
        self.calls_by_instance: dict[str, int] = {i.label: 0 for i in [self._solo, *self._lanes]}

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    @property
    def instances(self) -> int:
        """Model instances that run batches under load (1 without lanes)."""
        return len(self._lanes) or 1

    async def start(self) -> None:
        self._accepting = True
        self._queue = asyncio.Queue()
        self._freed = asyncio.Event()
        self._worker = asyncio.create_task(self._run(), name="reid-batcher")

    async def stop(self) -> None:
        """Finish every queued request, then stop the worker."""
        if self._worker is None:
            return
        self._accepting = False  # nothing is queued behind the stop marker
        await self._queue.put(None)
        await self._worker
        self._worker = None
        for instance in [self._solo, *self._lanes]:
            instance.pool.shutdown(wait=True)

    async def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 images (N, H, W, 3) at the runtime's contract size -> the runtime's outputs for them."""
        return (await self.run(images))[0]

    @contextlib.contextmanager
    def announce(self):
        """Around a request from its arrival to its `run`: while any announced request has not been queued
        yet, a batch waits for it (up to the delay); with none on the way, a batch leaves at once, so a lone
        request never pays `max_delay_ms`."""
        ticket = _Ticket()
        self.arriving += 1
        ticket.batcher = self
        try:
            yield ticket
        finally:
            ticket.settle()

    async def run(self, images: np.ndarray, task=None, ticket: "_Ticket | None" = None) -> tuple[dict, object]:
        """`infer`, plus what `postprocess` made of this request's outputs and `task` (None without one).
        `ticket`: from `announce()`, marking the request arrived."""
        if ticket is not None:
            ticket.settle()
        if not (self.running and self._accepting):
            raise ReidExportError("the inference worker is not running (the service is starting or stopping)")
        future = asyncio.get_running_loop().create_future()
        self.queued_images += len(images)
        await self._queue.put(_Request(images, future, task))
        return await future

    # -- the worker ------------------------------------------------------------------------
    async def _run(self) -> None:
        carry: _Request | None = None  # a request that did not fit the last batch: it opens the next one
        try:
            while True:
                await self._capacity()
                first = carry if carry is not None else await self._queue.get()
                carry = None
                if first is None:
                    return
                batch, stop, carry = await self._gather(first, self._batch_cap(len(first.images)))
                self._dispatch(self._choose(batch), batch)
                if stop:  # the stop marker is the last thing queued: nothing is left behind
                    return
        finally:
            while self._calls:  # every dispatched batch is answered before the worker ends
                await asyncio.gather(*self._calls, return_exceptions=True)

    async def _capacity(self) -> None:
        """Until an instance can take a batch: without lanes the one instance is idle; with lanes, the all-core
        instance is idle and a lane is free."""
        while self._solo.busy or (self._lanes and self._busy_lanes() == len(self._lanes)):
            self._freed.clear()
            await self._freed.wait()

    def _batch_cap(self, first_size: int) -> int:
        """At most max_batch; when several lanes are free and several images wait, those shared out over them
        (a burst runs on every lane at once; a lone waiting request gathers company as usual)."""
        cap = self.settings.max_batch
        free = len(self._lanes) - self._busy_lanes()
        if free > 1 and self.queued_images > first_size:
            cap = min(cap, math.ceil(self.queued_images / free))
        return max(cap, first_size, 1)

    async def _gather(self, first: _Request, cap: int) -> tuple[list[_Request], bool, _Request | None]:
        batch, size = [first], len(first.images)
        if not self.settings.enabled:
            return batch, False, None
        deadline = first.queued_at + self.settings.max_delay_ms / 1e3
        while size < cap:
            if self._queue.empty() and self.arriving == 0 and not self._busy_lanes():
                break  # nobody else is on the way and nothing runs: waiting would only add latency
            timeout = deadline - time.perf_counter()
            try:
                nxt = self._queue.get_nowait() if timeout <= 0 else \
                    await asyncio.wait_for(self._queue.get(), timeout)
            except (asyncio.TimeoutError, asyncio.QueueEmpty):
                break
            if nxt is None:
                return batch, True, None
            if size + len(nxt.images) > cap:
                return batch, False, nxt
            batch.append(nxt)
            size += len(nxt.images)
        return batch, False, None

    def _choose(self, batch: list[_Request]) -> _Instance:
        """A lone request with nothing else in hand runs on all cores; anything else on a free lane."""
        if not self._lanes:
            return self._solo
        alone = len(batch) == 1 and self._queue.empty() and self.arriving == 0 and not self._busy_lanes()
        return self._solo if alone else next(lane for lane in self._lanes if not lane.busy)

    def _busy_lanes(self) -> int:
        return sum(lane.busy for lane in self._lanes)

    def _dispatch(self, instance: _Instance, batch: list[_Request]) -> None:
        instance.busy = True
        self.queued_images -= sum(len(r.images) for r in batch)
        self.calls_by_instance[instance.label] += 1
        call = asyncio.create_task(self._serve(instance, batch))
        self._calls.add(call)

        def done(task: asyncio.Task) -> None:
            self._calls.discard(task)
            instance.busy = False
            self._freed.set()

        call.add_done_callback(done)

    async def _serve(self, instance: _Instance, batch: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        images = batch[0].images if len(batch) == 1 else np.concatenate([r.images for r in batch])
        try:
            outputs, results = await loop.run_in_executor(instance.pool, self._call, instance, images,
                                                          [r.task for r in batch], [len(r.images) for r in batch])
        except Exception as error:  # noqa: BLE001 - handed to the requests, never raised in the worker
            if len(batch) == 1:
                _settle(batch[0], error=error)
            else:  # find which request failed: each alone
                for request in batch:
                    await self._serve(instance, [request])
            return
        for request, out, result in zip(batch, outputs, results):
            _settle(request, (out, result))

    def _call(self, instance: _Instance, images: np.ndarray, tasks: list, sizes: list[int]) -> tuple[list[dict], list]:
        """On the instance's thread: normalise and run, in calls of at most its `call_max` images; split the
        outputs per request and postprocess them."""
        t0 = time.perf_counter()
        runtime = instance.runtime
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(images), instance.call_max):
            chunk = runtime.contract.normalize_uint8(images[start:start + instance.call_max])
            for key, value in runtime.infer(chunk).items():
                parts.setdefault(key, []).append(value)
        merged = {key: np.concatenate(values) if len(values) > 1 else values[0] for key, values in parts.items()}
        if self.on_batch is not None:
            self.on_batch(len(images), time.perf_counter() - t0, instance.label)
        ends = np.cumsum(sizes)
        outputs = [{key: value[end - n:end] for key, value in merged.items()} for end, n in zip(ends, sizes)]
        if self.postprocess is None or all(task is None for task in tasks):
            return outputs, [None] * len(outputs)
        return outputs, self.postprocess(outputs, tasks)


class _Ticket:
    batcher: DynamicBatcher | None = None

    def settle(self) -> None:
        if self.batcher is not None:
            self.batcher.arriving -= 1
            self.batcher = None


def _settle(request: _Request, outputs: dict | None = None, error: BaseException | None = None) -> None:
    if request.future.done():  # the client went away
        return
    if error is not None:
        request.future.set_exception(error)
    else:
        request.future.set_result(outputs)
