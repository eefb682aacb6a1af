"""Limits on what one HTTP client may hold: time to send the request head, time between body reads, body size.

    config = uvicorn.Config(app, http=head_timeout_protocol(20.0), limit_concurrency=200)
    body = BoundedBody(receive, max_bytes=70_000_000, timeout_s=30.0)   # the app reads `body` as `receive`

* **Head** (slowloris): uvicorn has no timeout of its own for a request head; a client sending one byte
  every few seconds keeps its connection, and enough of them take every connection. `head_timeout_protocol`
  is uvicorn's HTTP protocol (httptools, or h11 without it) with a timer from the connection's start, and
  from the end of each response on a kept-alive connection, to the moment a request head is complete.
  A client still sending its head when it fires gets 408 and the connection closes.
* **Body**: `BoundedBody` wraps the ASGI `receive` of one request. A read that waits longer than
  `timeout_s` (a client stalled mid-body) ends the body, with 408 to answer; bytes past `max_bytes` end it
  too, with 413, counted as they arrive, so a chunked body (no Content-Length) is bounded as well.
* **Connections**: uvicorn's own `limit_concurrency` answers 503 past that many connections or requests.
"""

from __future__ import annotations

import asyncio
import sys

__all__ = ["head_timeout_protocol", "BoundedBody"]


def head_timeout_protocol(seconds: float) -> type:
    """uvicorn's HTTP protocol class (what `http="auto"` picks) with a request-head timeout of `seconds`."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol  # lazy: uvicorn is the server's, not the app's

    return type("HeadTimeoutProtocol", (_HeadTimeout, AutoHTTPProtocol), {"head_timeout_s": float(seconds)})


class BoundedBody:
    """The request body as the app reads it (an ASGI `receive`), cut by time and size; `refusal` then holds
    (status, message) for the answer, and the app is told the client left."""

    def __init__(self, receive, *, max_bytes: int, timeout_s: float):
        self.receive, self.max_bytes, self.timeout_s = receive, max_bytes, timeout_s
        self.received = 0
        self.complete = False
        self.refusal: tuple[int, str] | None = None

    async def __call__(self) -> dict:
        if self.refusal is not None:
            return {"type": "http.disconnect"}
        if self.complete:  # after the body: only a disconnect can come (a streamed answer listens for it)
            return await self.receive()
        try:
            message = await _within(self.receive(), self.timeout_s)
        except (TimeoutError, asyncio.TimeoutError):
            self.refusal = (408, f"the request body stalled: nothing arrived for {self.timeout_s:g} s after "
                                 f"{self.received} bytes (the server's --body-timeout-s); send the body without pauses")
            return {"type": "http.disconnect"}
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.max_bytes:
                self.refusal = (413, f"request body over the limit of {self.max_bytes} bytes (counted as it arrived); "
                                     "send fewer or smaller images (the server's --max-upload-mb)")
                return {"type": "http.disconnect"}
            self.complete = not message.get("more_body", False)
        return message


class _HeadTimeout:
    """Mixed into uvicorn's protocol class: closes a connection whose request head is not complete
    `head_timeout_s` after the connection opened or the previous response ended. Both of uvicorn's
    protocols keep `cycle`, the request in progress; none (or a finished one) means a head is awaited."""

    head_timeout_s = 20.0
    _head_timer = None
    _head_bytes = False  # a byte of the awaited head has arrived: answer 408 rather than close silently

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        self._head_bytes = True
        super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._head_bytes = False
            self._arm_head_timer()

    def connection_lost(self, exc) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_deadline)

    def _head_deadline(self) -> None:
        self._head_timer = None
        waiting = self.cycle is None or self.cycle.response_complete
        if not waiting or self.transport.is_closing():
            return  # a request is being served; the timer is armed again when its response ends
        if self._head_bytes:
            message = f"the request head did not arrive within {self.head_timeout_s:g} s (--header-timeout-s)".encode()
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                                 b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(message), message))
        self.transport.close()


async def _within(awaitable, seconds: float):
    """`await awaitable`, raising TimeoutError after `seconds`: Python 3.11's timeout context (no extra task
    per read), `wait_for` before it."""
    if sys.version_info < (3, 11):
        return await asyncio.wait_for(awaitable, seconds)
    async with asyncio.timeout(seconds):
        return await awaitable
