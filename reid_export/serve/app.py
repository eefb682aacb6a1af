"""The FastAPI app: HTTP in front of `ReidService`.

    app = create_app(ServeSettings(model="engines/model.onnx", gallery="runs/gallery"))

Endpoints (OpenAPI at /docs): `POST /v1/embed`, `POST /v1/search`, `GET|POST /v1/gallery`,
`DELETE /v1/gallery/{id}`, `GET /v1/gallery/{id}/image`, `GET /v1/info`, `GET /healthz`, `GET /readyz`,
`GET /metrics`, and the page at `/` (static files under /static).

Every error is JSON `{"error": "..."}` with a 4xx for the request's own fault (a non-image, a corrupt or
empty or tiny upload, a wrong field, a bad k) and a 5xx for a runtime failure, for that request only.
With a token, every endpoint but /healthz and the page shell (/, /static: no data) needs
`Authorization: Bearer TOKEN`; the page sends it with every call. Before that, `security.BrowserGuard`
answers only the Host names served and refuses changes from other origins, and CORS headers go only to
`cors_origins`; bodies are bounded in time and bytes as they arrive (`http_limits.BoundedBody`).
fastapi is imported here only (`pip install "reid-export[serve]"`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from importlib import resources
from pathlib import Path

from ..errors import ReidExportError

try:
    import orjson
except ImportError:  # the standard json module then; same output
    orjson = None
try:
    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.datastructures import UploadFile as StarletteUploadFile
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as e:  # pragma: no cover - exercised by the import test without fastapi
    raise ReidExportError('the Re-ID service needs fastapi, uvicorn and python-multipart: '
                          'pip install "reid-export[serve]"') from e

from .gallery import IMAGE_TYPES, ITEM_ID, GalleryError
from .http_limits import BoundedBody
from .indexing import attribute_codes
from .metrics import Metrics
from .security import BrowserGuard, served_hosts
from .service import MAX_K, ReidService, ServeSettings, readable_attributes
from .uploads import (EXCLUDE_CAMERA_RANGE, FORMAT_SUFFIX, INLINE_PIXELS, UploadError, check_id, decode_checked,
                      read_header)

__all__ = ["create_app", "PUBLIC_PATHS"]

PUBLIC_PATHS = ("/healthz", "/", "/favicon.ico")  # plus /static/*: the page shell, which holds no data
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def create_app(settings: ServeSettings, *, runtime=None) -> FastAPI:
    """The app for `settings`; the runtime, gallery and store open on start-up (lifespan) and close on shutdown.
    `runtime` (not yet activated) replaces the one `settings.model` names (tests)."""
    service = ReidService(settings, runtime=runtime)
    metrics = Metrics(queue_depth=lambda: service.batcher.queued_images if service.batcher else 0,
                      gallery_size=lambda: len(service.gallery) if service.gallery else 0)
    service.on_batch = metrics.observe_batch

    refusal: dict = {}  # a start-up refused for the user's input (a gallery of another model, ...): its error

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            await service.start()
        except ReidExportError as e:
            refusal["error"] = e
            raise
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="reid-export", version="1", lifespan=lifespan,
                  description="Person re-identification: embed crops, search a gallery, manage it.")
    app.state.service, app.state.metrics = service, metrics
    static = Path(str(resources.files("reid_export.serve") / "static"))
    app.mount("/static", StaticFiles(directory=static), name="static")
    _install_middleware(app, settings, metrics, refusal)
    _install_error_handlers(app)
    limits = settings.limits

    async def read_images(files: list[UploadFile]) -> list[tuple]:
        if len(files) > limits.max_files:
            raise UploadError(413, f"{len(files)} images in one request; send at most {limits.max_files}")
        uploads = []
        for f in files:
            data = await f.read(limits.max_bytes + 1)
            image, size, fmt = read_header(data, f.filename, limits)
            if size <= INLINE_PIXELS:  # a crop: decoding it costs less than handing it to a thread
                pixels = decode_checked(image, f.filename, service.contract)
            else:
                pixels = await asyncio.to_thread(decode_checked, image, f.filename, service.contract)
            uploads.append((pixels, data, FORMAT_SUFFIX[fmt], f.filename or ""))
        return uploads

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((static / "index.html").read_text(), headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", summary="The process is up", responses=_errors(400, 421))
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="The model, gallery and inference worker are ready",
             responses={**_errors(400, 401, 421), 503: _READY_503})
    async def readyz():
        ready = service.ready and service.batcher is not None and service.batcher.running
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=True,
             responses={200: _TEXT, **_errors(400, 401, 421)})
    async def metrics_endpoint() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/info", summary="The model (runtime, precision, contract) and the gallery",
             responses=_errors(400, 401, 421))
    async def info() -> dict:
        return service.describe()

    @app.post("/v1/embed", summary="Embeddings (and attributes) of one or more images",
              responses={200: _body(_EMBEDDED), **_errors(*_UPLOAD_ERRORS)})
    async def embed(images: list[UploadFile] = File(..., description="image files (repeat the field)")) -> Response:
        with service.batcher.announce() as ticket:
            uploads = await read_images(images)
            outputs = await _infer(service.embed([u[0] for u in uploads], ticket=ticket))
        codes = attribute_codes(outputs)
        return _json({"items": [{"filename": u[3], "embedding": outputs["embedding"][i].tolist(),
                                 "attributes": readable_attributes(codes[i])} for i, u in enumerate(uploads)],
                      "dim": int(outputs["embedding"].shape[1])})

    @app.post("/v1/search", summary="The gallery items closest to a query image", openapi_extra=_SEARCH_FORM,
              responses={200: _body(_FOUND), **_errors(*_UPLOAD_ERRORS)})
    async def search(request: Request) -> Response:
        # the form is read here rather than through FastAPI's File/Form parameters: their dependency solving and
        # validation took more of the event loop than the rest of the request (README, Serve)
        form = await request.form(max_files=2, max_fields=4)  # more: a 400 naming the limit
        try:
            image = form.get("image")
            if not isinstance(image, StarletteUploadFile):
                raise UploadError(422, "missing field 'image' (a file); this endpoint takes multipart fields "
                                  + _FORM_FIELDS["/v1/search"])
            k = _form_int(form, "k", 10)
            exclude_camera = check_id(_form_int(form, "exclude_camera", None), "exclude_camera", EXCLUDE_CAMERA_RANGE)
            if not 1 <= k <= MAX_K:
                raise UploadError(422, f"k must be between 1 and {MAX_K}, got {k}")
            with service.batcher.announce() as ticket:
                (pixels, _, _, name), = await read_images([image])
                query, results = await _infer(service.search(pixels, k, exclude_camera, ticket=ticket))
        finally:
            await form.close()
        return _json({"query": {"filename": name, "attributes": query.get("attributes")}, "k": k,
                      "exclude_camera": exclude_camera, "results": results})

    @app.get("/v1/gallery", summary="Gallery items, a page at a time",
             responses={200: _body(_PAGE), **_errors(400, 401, 421, 422)})
    async def list_gallery(offset: int = 0, limit: int = 100) -> dict:
        if offset < 0 or not 1 <= limit <= 1000:
            raise UploadError(422, f"offset must be 0 or more and limit 1..1000, got offset {offset}, limit {limit}")
        return service.list_items(offset, limit)

    @app.post("/v1/gallery", summary="Add crops to the gallery", status_code=201,
              responses={201: _body(_ADDED), **_errors(*_UPLOAD_ERRORS)})
    async def add(images: list[UploadFile] = File(..., description="person crops (repeat the field)"),
                  camid: int | None = Form(None, description="camera of all the crops (default: from the name)"),
                  pid: int | None = Form(None, description="person id of all the crops (default: from the name)")):
        with service.batcher.announce() as ticket:
            uploads = await read_images(images)
            items = await _infer(service.add(uploads, camid=camid, pid=pid, ticket=ticket))
        return JSONResponse({"added": items, "gallery_items": len(service.gallery)}, status_code=201)

    @app.delete("/v1/gallery/{item_id}", summary="Remove an item: its embedding and stored crop leave the disk",
                responses=_errors(400, 401, 403, 404, 421, 422))
    async def remove(item_id: str) -> dict:
        _known(service, item_id)
        item = await service.remove(item_id)
        return {"removed": item["id"], "gallery_items": len(service.gallery)}

    @app.get("/v1/gallery/{item_id}/image", summary="The stored crop of an item",
             responses={200: _IMAGE, **_errors(400, 401, 404, 421, 422)})
    async def image(item_id: str) -> Response:
        _known(service, item_id)
        suffix = Path(service.gallery.item(item_id).image).suffix
        data = await asyncio.to_thread(service.gallery.read_image, item_id)  # never through a symlink
        return Response(data, media_type=IMAGE_TYPES.get(suffix, "application/octet-stream"), headers=_NO_STORE)

    return app


# what each upload endpoint takes, for the messages of a missing or wrong field
_FORM_FIELDS = {"/v1/search": "'image' (a file), optional 'k' and 'exclude_camera'",
                "/v1/embed": "'images' (one or more files)",
                "/v1/gallery": "'images' (one or more files), optional 'camid' and 'pid'"}

_SEARCH_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary", "description": "the query crop"},
        "k": {"type": "integer", "default": 10, "minimum": 1, "maximum": MAX_K, "description": f"results wanted, 1..{MAX_K}"},
        "exclude_camera": {"type": "integer", "description": "leave out items of this camera"}}}}}}}

# the answers each route documents in the OpenAPI schema (tests/serve/test_schemathesis.py checks them live)
_ERROR_WHY = {400: "a malformed request: multipart that cannot be parsed, too many parts, a Host not served",
              401: "missing or wrong token (servers started with one)",
              403: "a state-changing request from another origin",
              404: "no such gallery item",
              408: "the request body stalled for longer than --body-timeout-s",
              413: "too many bytes, pixels or images",
              415: "content that is not an accepted image type",
              421: "a Host this server does not serve (DNS rebinding)",
              422: "a missing or wrong field, or an empty, corrupt or tiny image",
              503: "the service is starting or stopping"}
_UPLOAD_ERRORS = (400, 401, 403, 408, 413, 415, 421, 422, 503)
_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_TEXT = {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}
_IMAGE = {"description": "the crop as stored", "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                                           for t in sorted(set(IMAGE_TYPES.values()))}}
_READY_503 = {"description": "not ready yet", "content": {"application/json": {"schema": {
    "type": "object", "required": ["ready"], "properties": {"ready": {"type": "boolean"}}}}}}
_INT_OR_NULL = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
_ITEM = {"type": "object", "required": ["id", "pid", "camid", "source", "image_url"], "properties": {
    "id": {"type": "string", "pattern": "^[0-9a-f]{16}$"}, "pid": _INT_OR_NULL, "camid": _INT_OR_NULL,
    "source": {"type": "string"}, "image_url": {"type": "string"}}}
_HIT = {**_ITEM, "required": ["rank", "distance", *_ITEM["required"]],
        "properties": {**_ITEM["properties"], "rank": {"type": "integer", "minimum": 1},
                       "distance": {"type": "number"}}}
_EMBEDDED = {"type": "object", "required": ["items", "dim"], "properties": {"dim": {"type": "integer"}, "items": {
    "type": "array", "items": {"type": "object", "required": ["filename", "embedding"], "properties": {
        "filename": {"type": "string"}, "embedding": {"type": "array", "items": {"type": "number"}}}}}}}
_FOUND = {"type": "object", "required": ["query", "k", "results"], "properties": {
    "k": {"type": "integer"}, "exclude_camera": _INT_OR_NULL, "results": {"type": "array", "items": _HIT}}}
_PAGE = {"type": "object", "required": ["total", "offset", "items"], "properties": {
    "total": {"type": "integer"}, "offset": {"type": "integer"}, "items": {"type": "array", "items": _ITEM}}}
_ADDED = {"type": "object", "required": ["added", "gallery_items"], "properties": {
    "added": {"type": "array", "items": _ITEM}, "gallery_items": {"type": "integer"}}}


def _errors(*codes: int) -> dict:
    """OpenAPI `responses` for these error statuses: JSON `{"error": "..."}`."""
    return {code: {"description": _ERROR_WHY[code], "content": {"application/json": {"schema": _ERROR}}}
            for code in codes}


def _body(schema: dict) -> dict:
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _form_int(form, name: str, default):
    value = form.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise UploadError(422, f"field {name!r} must be a number, not a file")
    try:
        return int(value)
    except ValueError:
        raise UploadError(422, f"field {name!r}: {value[:20]!r} is not a whole number") from None


def _json(content: dict) -> Response:
    """A JSON answer encoded once (orjson when installed): the hot endpoints skip FastAPI's response
    validation and encoding passes, which cost more than the search itself on a 2-core machine."""
    return Response(_dumps(content), media_type="application/json")


def _dumps(content) -> bytes:
    if orjson is not None:
        return orjson.dumps(content)
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


async def _infer(awaitable):
    """A runtime failure becomes a 500 for this request; a service not (yet) running a 503."""
    try:
        return await awaitable
    except (UploadError, GalleryError):
        raise
    except ReidExportError as e:
        if "not running" in str(e):
            raise UploadError(503, str(e)) from None
        raise UploadError(500, f"inference failed: {e}") from None
    except Exception as e:  # noqa: BLE001 - a backend's own exception types
        raise UploadError(500, f"inference failed ({type(e).__name__}: {e})") from None


def _known(service: ReidService, item_id: str) -> None:
    if not ITEM_ID.match(item_id) or item_id not in service.gallery:
        raise UploadError(404, f"no gallery item {item_id[:40]!r}; ids are 16 hex digits, as returned by "
                          "/v1/search and /v1/gallery")


def _install_middleware(app: FastAPI, settings: ServeSettings, metrics: Metrics, refusal: dict) -> None:
    """Outermost first: the Host and Origin checks, CORS (only with --cors-origins), then `_Guard`."""
    max_body = settings.limits.max_bytes * settings.limits.max_files + (1 << 20)
    app.add_middleware(_Guard, token=settings.token, max_body=max_body, body_timeout_s=settings.body_timeout_s,
                       metrics=metrics, refusal=refusal)
    if settings.cors_origins:  # preflights carry no token: answered here, before `_Guard` asks for one
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BrowserGuard, hosts=served_hosts(settings.host, settings.allowed_hosts),
                       cors_origins=settings.cors_origins)


class _Guard:
    """Token check, request-size and body-time checks, in-flight gauge and per-endpoint metrics, as a plain ASGI
    middleware (Starlette's `@app.middleware("http")` runs every request through an extra task and stream). A
    start-up refused for the user's input is reported to the server as its one-line reason, not a traceback."""

    def __init__(self, app, *, token: str | None, max_body: int, body_timeout_s: float, metrics: Metrics,
                 refusal: dict):
        self.app, self.token, self.max_body, self.metrics, self.refusal = app, token, max_body, metrics, refusal
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            async def send_reason(message) -> None:
                if message["type"] == "lifespan.startup.failed" and "error" in self.refusal:
                    message = {**message, "message": f"start-up refused: {self.refusal['error']}"}
                await send(message)

            await self.app(scope, receive, send_reason)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        path = scope["path"]
        headers = dict(scope["headers"])
        if self.token and not (path in PUBLIC_PATHS or path.startswith("/static/")):
            scheme, _, value = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), self.token.encode()):
                response = JSONResponse({"error": "missing or wrong token: send the header 'Authorization: Bearer "
                                         "TOKEN' (the server's token: --token-file, $REID_EXPORT_TOKEN or --token)"},
                                        status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                self.metrics.observe_request("unauthorized", 401, time.perf_counter() - t0)
                return
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body:
            response = JSONResponse({"error": f"request body of {int(length)} bytes is over the limit of "
                                     f"{self.max_body} bytes; send fewer or smaller images (the server's "
                                     "--max-upload-mb)"}, status_code=413, headers={"Connection": "close"})
            await response(scope, receive, send)
            self.metrics.observe_request("other", 413, time.perf_counter() - t0)
            return
        status, started = 500, False
        body = BoundedBody(receive, max_bytes=self.max_body, timeout_s=self.body_timeout_s)

        async def send_status(message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                if body.refusal is not None:  # the app's answer to a body it did not get: ours goes instead
                    return
                status, started = message["status"], True
            elif not started:
                return
            await send(message)

        self.metrics.in_flight.inc()
        try:
            try:
                await self.app(scope, body, send_status)
            except Exception:
                if body.refusal is None or started:
                    raise  # (with a refusal, the app only failed to read what never came)
            if body.refusal is not None and not started:
                status = body.refusal[0]
                await JSONResponse({"error": body.refusal[1]}, status_code=status,
                                   headers={"Connection": "close"})(scope, receive, send)
        finally:  # an exception still counts, as the 500 the outermost handler answers
            self.metrics.in_flight.dec()
            route = scope.get("route")
            self.metrics.observe_request(getattr(route, "path", "other"), status, time.perf_counter() - t0)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(GalleryError)
    async def gallery_error(request: Request, exc: GalleryError):
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            if err.get("type") == "missing":
                problems.append(f"missing field {where!r}")
            else:
                problems.append(f"field {where!r}: {err.get('msg')}")
        fields = _FORM_FIELDS.get(request.url.path)
        hint = f"; this endpoint takes multipart fields {fields}" if fields else ""
        return JSONResponse({"error": "; ".join(problems) + hint}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = _multipart_problem(exc, request.url.path) if exc.status_code == 400 else str(exc.detail)
        return JSONResponse({"error": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server is still up"},
                            status_code=500)


# what python-multipart and Starlette say of a multipart body they cannot read, and what to do about it
_MULTIPART_FIXES = {
    "Maximum header size exceeded": "a part's header line is over 4224 bytes: usually a filename that long; "
                                    "send file names of at most a few hundred characters",
    "Maximum header count exceeded": "a part carries more than 8 header lines; send Content-Disposition and "
                                     "Content-Type only",
    "Missing boundary in multipart.": "the Content-Type multipart/form-data has no boundary=...; let the HTTP "
                                      "client write a multipart body and its header (curl -F, requests' files=)",
    'The Content-Disposition header field "name" must be provided.': "a part has no name in its "
                                                                     "Content-Disposition (form-data; name=...)",
}


def _multipart_problem(exc, path: str) -> str:
    """A 400 from the form parser, with what is wrong and what the endpoint takes; other 400s as they are."""
    detail, cause = str(exc.detail), exc.__cause__ or exc.__context__  # Starlette raises it inside its `except`
    if type(cause).__name__ != "MultiPartException":
        return detail
    said = str(cause.__cause__) if cause.__cause__ is not None else detail  # python-multipart's own words
    fix = _MULTIPART_FIXES.get(said) or _MULTIPART_FIXES.get(detail)
    fields = _FORM_FIELDS.get(path)
    return (f"the multipart body cannot be read: {said.rstrip('.')}" + (f"; {fix}" if fix else "")
            + (f"; this endpoint takes multipart fields {fields}" if fields else ""))

