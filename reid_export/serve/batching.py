"""Dynamic batching: concurrent requests coalesced into one runtime call, as Triton's dynamic batcher does.

    batcher = DynamicBatcher(runtime, max_batch=32, max_delay_ms=5)
    await batcher.start()
    out = await batcher.infer(images)        # uint8 (N, H, W, 3) -> {"embedding": (N, D), ...}
    await batcher.stop()                     # runs what is queued, then stops

A worker task takes the first waiting request, then keeps taking requests until `max_batch` images are
gathered or `max_delay_ms` has passed since the first arrived, or no other request is on the way
(queued, or announced with `announce()` by a request still being received and decoded); the batch is
normalised and run in one `runtime.infer` call on a single inference thread (off the event loop), split into calls of at most the
runtime's own `max_batch` when it has one. A request is never split across batches unless it alone
is larger than `max_batch`. `enabled=False` runs each request on its own (the "batching off" baseline).

When a coalesced call fails, each of its requests is run again alone, so a runtime error fails only
the request that caused it. `postprocess` (optional) runs on the inference thread right after each call,
with every request's outputs and task: the service searches the gallery there, one top-k for the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..errors import ReidExportError
from ..runtimes import Runtime

__all__ = ["DynamicBatcher", "BatchingSettings"]


@dataclass(frozen=True)
class BatchingSettings:
    enabled: bool = True  # coalesce concurrent requests; False: one runtime call per request
    max_batch: int = 32  # images per coalesced runtime call, at most
    max_delay_ms: float = 5.0  # how long the first request of a batch waits for others to join

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ReidExportError(f"--max-batch must be 1 or more, got {self.max_batch}")
        if self.max_delay_ms < 0:
            raise ReidExportError(f"--max-delay-ms must be 0 or more, got {self.max_delay_ms}")


@dataclass
class _Request:
    images: np.ndarray
    future: asyncio.Future
    task: object = None  # handed to `postprocess` with this request's outputs (e.g. a search to run)
    queued_at: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    def __init__(self, runtime: Runtime, settings: BatchingSettings | None = None,
                 on_batch: Callable[[int, float], None] | None = None,
                 postprocess: Callable[[list[dict], list], list] | None = None):
        self.runtime = runtime
        self.settings = settings or BatchingSettings()
        self.on_batch = on_batch  # called with (images in the runtime call, seconds it took)
        # run on the inference thread after each call with every request's outputs and task, so that work
        # on the outputs (the gallery search) is batched too; returns one result per request
        self.postprocess = postprocess
        runtime_max = getattr(runtime, "max_batch", None)
        self.call_max = min(self.settings.max_batch, runtime_max) if runtime_max else self.settings.max_batch
        self._queue: asyncio.Queue[_Request | None] | None = None
        self._worker: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reid-infer")
        self._accepting = False
        self.queued_images = 0  # images waiting for the runtime (the queue-depth gauge)
        self.arriving = 0  # requests announced (being received / decoded) but not queued yet

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    async def start(self) -> None:
        self._accepting = True
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run(), name="reid-batcher")

    async def stop(self) -> None:
        """Finish every queued request, then stop the worker."""
        if self._worker is None:
            return
        self._accepting = False  # nothing is queued behind the stop marker
        await self._queue.put(None)
        await self._worker
        self._worker = None
        self._pool.shutdown(wait=True)

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
        while True:
            first = carry if carry is not None else await self._queue.get()
            carry = None
            if first is None:
                return
            batch, size, stop = [first], len(first.images), False
            if self.settings.enabled:
                deadline = first.queued_at + self.settings.max_delay_ms / 1e3
                while size < self.settings.max_batch:
                    if self._queue.empty() and self.arriving == 0:
                        break  # nobody else is on the way: waiting would only add latency
                    timeout = deadline - time.perf_counter()
                    try:
                        nxt = self._queue.get_nowait() if timeout <= 0 else \
                            await asyncio.wait_for(self._queue.get(), timeout)
                    except (asyncio.TimeoutError, asyncio.QueueEmpty):
                        break
                    if nxt is None:
                        stop = True
                        break
                    if size + len(nxt.images) > self.settings.max_batch:
                        carry = nxt
                        break
                    batch.append(nxt)
                    size += len(nxt.images)
            await self._serve(batch)
            if stop:  # the stop marker is the last thing queued: nothing is left behind
                return

    async def _serve(self, batch: list[_Request], *, retry: bool = False) -> None:
        if not retry:
            self.queued_images -= sum(len(r.images) for r in batch)
        loop = asyncio.get_running_loop()
        images = batch[0].images if len(batch) == 1 else np.concatenate([r.images for r in batch])
        try:
            outputs, results = await loop.run_in_executor(self._pool, self._call, images,
                                                          [r.task for r in batch], [len(r.images) for r in batch])
        except Exception as error:  # noqa: BLE001 - handed to the requests, never raised in the worker
            if len(batch) == 1:
                _settle(batch[0], error=error)
            else:  # find which request failed: each alone
                for request in batch:
                    await self._serve([request], retry=True)
            return
        for request, out, result in zip(batch, outputs, results):
            _settle(request, (out, result))

    def _call(self, images: np.ndarray, tasks: list, sizes: list[int]) -> tuple[list[dict], list]:
        """On the inference thread: normalise and run, in calls of at most `call_max` images; split the outputs
        per request and postprocess them."""
        t0 = time.perf_counter()
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(images), self.call_max):
            chunk = self.runtime.contract.normalize_uint8(images[start:start + self.call_max])
            for key, value in self.runtime.infer(chunk).items():
                parts.setdefault(key, []).append(value)
        merged = {key: np.concatenate(values) for key, values in parts.items()}
        if self.on_batch is not None:
            self.on_batch(len(images), time.perf_counter() - t0)
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
