"""Switching a running server to another model and gallery without dropping a request.

    app = Switchable(create_app(settings), settings)        # what `reid-export serve` runs under uvicorn
    # POST /v1/admin/switch {"model": "engines/model-v2.onnx", "gallery": "runs/gallery-v2"} (the token needed)

`Switchable` is a plain ASGI app in front of the service's app. A switch builds a whole new app for the new
model and gallery (`create_app`) and runs its start-up fully (runtime, instances, gallery, vector store,
batcher) while the old one keeps answering; then one reference is swapped: every request that arrives after
it goes to the new app, every request in flight finishes on the old one. When the last of those has been
answered (or after `DRAIN_SECONDS`), the old app shuts down as on SIGTERM: queued inference drained, runtime,
gallery and store closed. A switch that fails to start (a gallery of another model, a missing file) changes
nothing and is answered 422 with the reason. One switch at a time (another gets 409).

The endpoint is off unless the server has a token (`--token-file`, `$REID_EXPORT_TOKEN`): it can point the
server at any model and gallery its user may read (docs/security.md). The Host and Origin checks of
`security.BrowserGuard` apply to it as to every endpoint. Prometheus counters restart with the new app.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from dataclasses import replace
from pathlib import Path

from ..errors import ReidExportError
from .app import create_app
from .security import BrowserGuard, served_hosts
from .service import ServeSettings

__all__ = ["Switchable", "SWITCH_PATH", "DRAIN_SECONDS"]

SWITCH_PATH = "/v1/admin/switch"
DRAIN_SECONDS = 30.0  # longest wait for the old app's requests in flight before it shuts down anyway
_MAX_BODY = 64 * 1024  # a switch request is a small JSON object


class Switchable:
    """ASGI: routes requests to the current app; `POST /v1/admin/switch` replaces it (module docstring)."""

    def __init__(self, app, settings: ServeSettings):
        self.settings = settings
        self.current = _Served(app, settings)
        self._switching = asyncio.Lock()
        self._retired: set[asyncio.Task] = set()  # old apps draining
        self._admin = BrowserGuard(self._switch_endpoint, hosts=served_hosts(settings.host, settings.allowed_hosts),
                                   cors_origins=settings.cors_origins)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "http" and scope["path"] == SWITCH_PATH:
            await self._admin(scope, receive, send)
            return
        served = self.current  # read once: this request runs on this app to its end
        served.in_flight += 1
        try:
            await served.app(scope, receive, send)
        finally:
            served.in_flight -= 1
            if served.in_flight == 0:
                served.idle.set()

    # -- the switch --------------------------------------------------------------------------
    async def switch(self, model: str, gallery: str | Path) -> dict:
        """Start an app for `model` and `gallery`, swap it in, retire the old one; returns the new /v1/info."""
        if self._switching.locked():
            raise _Refused(409, "a switch is already in progress; wait for its answer and try again")
        async with self._switching:
            settings = replace(self.current.settings, model=str(model), gallery=str(gallery), token_file=None)
            if settings.store != "embedded" and settings.milvus_uri:
                raise _Refused(422, "this server's --milvus-uri names one collection, which a new gallery would "
                                    "replace while the old model still answers from it; restart the server with "
                                    "the new --model and --gallery instead")
            fresh = _Served(create_app(settings), settings)
            try:
                await fresh.start()
            except ReidExportError as e:
                raise _Refused(422, f"switch refused, still serving {self.current.settings.model}: {e}") from None
            old, self.current = self.current, fresh  # the one reference every new request reads
            task = asyncio.create_task(old.retire())
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)
            info = fresh.app.state.service.describe()
            return {"switched": True, "gallery": str(gallery), "previous_model": old.settings.model, **info}

    async def _switch_endpoint(self, scope, receive, send) -> None:
        try:
            if scope["method"] != "POST":
                raise _Refused(405, f"{SWITCH_PATH} takes POST with a JSON body {{\"model\": ..., \"gallery\": ...}}")
            token = self.settings.token
            if not token:
                raise _Refused(403, f"{SWITCH_PATH} is off: this server has no token, and switching the model is "
                                    "for its administrator; start it with --token-file PATH (or $REID_EXPORT_TOKEN)")
            headers = dict(scope["headers"])
            scheme, _, value = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
                raise _Refused(401, "missing or wrong token: send the header 'Authorization: Bearer TOKEN'")
            body = await _read_json(receive)
            answer, status = await self.switch(body["model"], body["gallery"]), 200
        except _Refused as e:
            answer, status = {"error": e.message}, e.status
        await _send_json(send, status, answer)

    # -- start-up and shutdown (uvicorn's lifespan) -------------------------------------------
    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.current.start()
                except _StartFailed as e:
                    await send({"type": "lifespan.startup.failed", "message": e.message})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                async with self._switching:  # a switch under way finishes first
                    await asyncio.gather(*self._retired, return_exceptions=True)
                    await self.current.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


class _Served:
    """One app, its settings, its requests in flight, and its lifespan driven as uvicorn would drive it."""

    def __init__(self, app, settings: ServeSettings):
        self.app, self.settings = app, settings
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self._inbox: asyncio.Queue = asyncio.Queue()
        self._outbox: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self._task = asyncio.create_task(self.app(scope, self._inbox.get, self._outbox.put))
        await self._inbox.put({"type": "lifespan.startup"})
        answer = await self._outbox.get()
        if answer["type"] == "lifespan.startup.failed":
            await asyncio.gather(self._task, return_exceptions=True)  # the service closed what it opened
            raise _StartFailed(answer.get("message", "start-up failed"))

    async def retire(self) -> None:
        """Wait for the requests in flight (at most DRAIN_SECONDS), then shut down."""
        if self.in_flight:
            self.idle.clear()  # set again by the last request to finish (Switchable.__call__)
        try:
            await asyncio.wait_for(self.idle.wait(), DRAIN_SECONDS)
        except asyncio.TimeoutError:
            pass
        await self.stop()

    async def stop(self) -> None:
        if self._task is None or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._outbox.get()
        await asyncio.gather(self._task, return_exceptions=True)


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class _StartFailed(ReidExportError):
    def __init__(self, message: str):
        super().__init__(message.removeprefix("start-up refused: "))
        self.message = message


async def _read_json(receive) -> dict:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > _MAX_BODY:
            raise _Refused(413, f"a switch request is a small JSON object; this body is over {_MAX_BODY} bytes")
        if not message.get("more_body"):
            break
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) and data[k] for k in ("model", "gallery")):
            raise ValueError
    except ValueError:
        raise _Refused(422, 'the body must be JSON {"model": "PATH or RUNTIME=PATH", "gallery": "GALLERY folder"}, '
                            "both non-empty strings, as `reid-export serve --model --gallery` takes them") from None
    return data


async def _send_json(send, status: int, content: dict) -> None:
    body = json.dumps(content).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})
