"""`reid-export serve`: the app under uvicorn, with safe defaults.

* Binds 127.0.0.1 unless told otherwise; a non-loopback address without a token is refused.
* The token comes from `--token-file` (its first line), the environment variable `REID_EXPORT_TOKEN`, or
  `--token` (which other users see in the process list); no log line shows it (`security.TokenFilter`).
* Browsers: only the Host names it serves are answered, and changes only from its own origin
  (`security.py`; `--allowed-hosts`, `--cors-origins`).
* Slow clients: a request head must arrive within `--header-timeout-s`, each piece of a body within
  `--body-timeout-s`; past `--max-connections` open connections, requests get 503 (`http_limits.py`).
* SIGTERM / SIGINT: uvicorn stops accepting connections and lets in-flight requests finish
  (up to `GRACEFUL_SECONDS`); then the app's shutdown drains queued inference and closes the gallery
  (every gallery write is committed before its request is answered, so nothing is left pending).
* No access log by default (uvicorn's took 0.2 ms of the event loop per request, a tenth of what a search
  costs it on 2 cores; `--access-log` turns it on): a line per request with client address, method, path
  and status; never a body, so image bytes are never logged. Start-up, errors and shutdown are logged
  either way, and `/metrics` counts every request.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from dataclasses import replace

from ..errors import ReidExportError
from .http_limits import head_timeout_protocol
from .security import TokenFilter, check_token
from .service import ServeSettings

__all__ = ["serve", "check_bind", "TOKEN_ENV", "GRACEFUL_SECONDS"]

TOKEN_ENV = "REID_EXPORT_TOKEN"
GRACEFUL_SECONDS = 30  # how long SIGTERM waits for in-flight requests


def check_bind(host: str, token: str | None) -> None:
    """Refuse to bind a non-loopback address without a token."""
    if token or _is_loopback(host):
        return
    raise ReidExportError(f"refusing to serve on {host} without a token: anyone who can reach it could read and "
                          f"change the gallery (personal data). Pass --token-file PATH (or set {TOKEN_ENV}), "
                          "or bind 127.0.0.1")


def serve(settings: ServeSettings, *, log_level: str = "info", access_log: bool = False) -> None:
    """Run the service until SIGTERM/SIGINT."""
    try:
        import uvicorn
    except ImportError as e:
        raise ReidExportError('reid-export serve needs uvicorn: pip install "reid-export[serve]"') from e
    from .app import create_app  # lazy: fastapi
    from .switch import Switchable  # lazy: fastapi (through the app)

    token = settings.token or os.environ.get(TOKEN_ENV) or None
    if token != settings.token:
        settings = replace(settings, token=check_token(token, f"${TOKEN_ENV}"))
    check_bind(settings.host, token)
    app = Switchable(create_app(settings), settings)  # POST /v1/admin/switch: another model, no downtime
    # limit_concurrency counts the connection asking too: N + 1 serves N connections at once
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level, access_log=access_log,
                            timeout_graceful_shutdown=GRACEFUL_SECONDS, server_header=False,
                            http=head_timeout_protocol(settings.header_timeout_s),
                            limit_concurrency=settings.max_connections + 1)
    if token:  # after Config, which sets uvicorn's logging up
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).addFilter(TokenFilter(token))
    uvicorn.Server(config).run()  # a failed start-up exits with uvicorn's status 3


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except (OSError, ValueError):
            return False
