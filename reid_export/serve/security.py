"""Who may talk to the service: the Host and Origin checks a browser needs, CORS, and the token's secrecy.

    guard = BrowserGuard(app, hosts=served_hosts("127.0.0.1", ()), cors_origins=())
    token = read_token_file("secrets/reid-token")      # the first line; a warning when others may read it

* **Host** (DNS rebinding): a page on evil.example whose name is re-pointed at 127.0.0.1 reaches the
  server with `Host: evil.example`. Only the names the server is reached by are answered: loopback
  (localhost, 127.0.0.1, [::1]; any port), the bound address when it is a specific one, and
  `--allowed-hosts` (exact names; `*` for any). Anything else: 421 naming the Host and the flag.
* **Origin** (cross-site writes): a multipart POST is a request any page may send without a preflight. A
  POST, PUT, PATCH or DELETE whose `Origin` is not the server's own (scheme://Host) nor in
  `--cors-origins` is refused with 403; without an `Origin`, so is one a browser marks
  `Sec-Fetch-Site: cross-site`. Clients that are not browsers send neither and are not affected.
* **CORS**: no Access-Control-* header unless `--cors-origins` is set; then those origins get them, and
  their preflights (OPTIONS) are answered (Starlette's CORSMiddleware).
* **The token** never reaches a log line: `TokenFilter` replaces it in uvicorn's records.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import stat
import warnings
from pathlib import Path

from ..errors import ReidExportError

__all__ = ["BrowserGuard", "served_hosts", "check_hosts", "check_origins", "read_token_file", "check_token",
           "TokenFilter", "LOOPBACK_HOSTS", "STATE_CHANGING"]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_WILDCARD_BINDS = ("", "0.0.0.0", "[::]")
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def served_hosts(bind: str, allowed: tuple[str, ...]) -> frozenset[str]:
    """The Host names (without port) the server answers: loopback, a specific bound address, `allowed`."""
    hosts = set(LOOPBACK_HOSTS) | set(check_hosts(allowed))
    bound = _host_name(bind)
    if bound not in _WILDCARD_BINDS:
        hosts.add(bound)
    return frozenset(hosts)


def check_hosts(names: str | tuple[str, ...]) -> tuple[str, ...]:
    """`--allowed-hosts` entries (or one comma-separated text) -> lowercase names (IPv6 in brackets)."""
    out = []
    for raw in _entries(names):
        name = _host_name(str(raw).strip())
        if name != "*" and (not name or any(c in name for c in "/@*, ") or _split_port(name)[1]):
            raise ReidExportError(f"--allowed-hosts: {str(raw)[:80]!r} is not a host name; give names as a browser "
                                  "sends them in Host, without scheme or port (any port is served), e.g. "
                                  "--allowed-hosts reid.example.com,10.0.0.5, or * for any")
        out.append(name)
    return tuple(out)


def check_origins(origins: str | tuple[str, ...]) -> tuple[str, ...]:
    """`--cors-origins` entries (or one comma-separated text) -> lowercase `scheme://host[:port]`."""
    out = []
    for raw in _entries(origins):
        origin = str(raw).strip().lower()
        scheme, sep, rest = origin.partition("://")
        if origin != "*" and (scheme not in _DEFAULT_PORTS or not sep or not rest or any(c in rest for c in "/?#@ ")):
            raise ReidExportError(f"--cors-origins: {str(raw)[:80]!r} is not an origin; give scheme://host[:port] as "
                                  "the page's address bar shows it, without a path, e.g. "
                                  "--cors-origins https://dashboard.example.com, or * for any")
        out.append(_without_default_port(origin))
    return tuple(out)


class BrowserGuard:
    """ASGI middleware: the Host and Origin checks (module docstring), before anything else runs."""

    def __init__(self, app, *, hosts: frozenset[str], cors_origins: tuple[str, ...]):
        self.app, self.hosts, self.cors_origins = app, hosts, frozenset(cors_origins)
        self.any_host = "*" in hosts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await _answer(send, *refusal)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope) -> tuple[int, str] | None:
        """(status, message) when the request must be refused, else None."""
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1").strip().lower()
        if not host:
            return 400, "the request has no Host header; send the name you reach the server by (HTTP/1.1 requires it)"
        name, port = _split_port(host)
        if not self.any_host and (name not in self.hosts or (port and not port[1:].isdigit())):
            return 421, (f"Host {host[:100]!r} is not served here: this server answers "
                         f"{', '.join(sorted(self.hosts))} (any port), which keeps other web pages from reading it "
                         f"through a name that resolves here (DNS rebinding); if you reach it by that name, start it "
                         f"with --allowed-hosts {name[:100] or host[:100]}")
        if scope["method"] not in STATE_CHANGING:
            return None
        origin = headers.get(b"origin", b"").decode("latin-1").strip().lower()
        own = _without_default_port(f"{scope.get('scheme', 'http')}://{host}")
        if origin:
            origin = _without_default_port(origin)
            if origin == own or origin in self.cors_origins or "*" in self.cors_origins:
                return None
            shown = f"origin {origin[:100]!r}"
        elif headers.get(b"sec-fetch-site", b"").strip().lower() == b"cross-site":
            shown = "another site (Sec-Fetch-Site: cross-site)"
        else:
            return None
        return 403, (f"refused a {scope['method']} from {shown}: this server takes changes only from its own page "
                     f"({own}) and from clients that are not browsers; to let that site's pages use the API, start "
                     f"it with --cors-origins {origin[:100] or 'ORIGIN'}")


def read_token_file(path: str | Path) -> str:
    """The token in the first line of `path`; a warning naming chmod 600 when group or others may read it."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        first = path.read_text(encoding="utf-8").splitlines()[:1]
    except FileNotFoundError:
        raise ReidExportError(f"--token-file {path}: no such file; write the token in it (one line) and "
                              f"chmod 600 {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ReidExportError(f"--token-file {path}: cannot be read ({type(e).__name__}); it must be a text file "
                              "holding the token on its first line") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(f"--token-file {path}: group or others may read it (mode {stat.S_IMODE(mode):o}); "
                      f"chmod 600 {path}", stacklevel=2)
    token = first[0].strip() if first else ""
    if not token:
        raise ReidExportError(f"--token-file {path}: the first line is empty; write the token there")
    return check_token(token, f"--token-file {path}")


def check_token(token: str, source: str) -> str:
    """A token must be printable ASCII without spaces: what an `Authorization: Bearer` header carries."""
    if not token or not all("!" <= c <= "~" for c in token):
        raise ReidExportError(f"{source}: the token must be printable ASCII without spaces (it travels in the "
                              "header 'Authorization: Bearer TOKEN'); make one with "
                              "`python -c \"import secrets; print(secrets.token_urlsafe(32))\"`")
    return token


class TokenFilter(logging.Filter):
    """Replaces the token in a log record's message (an access-log line of `/path?token=...`, an error that
    quotes a header), so no log shows it."""

    def __init__(self, token: str):
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, "[token]"), ()
        return True


def _entries(values: str | tuple[str, ...]) -> list[str]:
    if isinstance(values, str):
        return [v for v in values.split(",") if v.strip()]
    return list(values)


def _host_name(host: str) -> str:
    """A bind address or allowed name as the Host header spells it: lowercase, IPv6 in brackets."""
    host = host.strip().lower()
    try:
        if ipaddress.ip_address(host.strip("[]")).version == 6:
            return f"[{host.strip('[]')}]"
    except ValueError:
        pass
    return host


def _split_port(host: str) -> tuple[str, str]:
    """'name:8000' -> ('name', ':8000'); '[::1]:8000' -> ('[::1]', ':8000'); 'name' -> ('name', '')."""
    if host.startswith("["):
        end = host.find("]") + 1
        return (host[:end], host[end:]) if end else (host, "")
    name, sep, port = host.rpartition(":")
    return (name, sep + port) if sep else (host, "")


def _without_default_port(origin: str) -> str:
    """'http://name:80' -> 'http://name', as browsers write an Origin."""
    scheme = origin.partition("://")[0]
    default = _DEFAULT_PORTS.get(scheme)
    return origin[: -len(default)] if default and origin.endswith(default) else origin


async def _answer(send, status: int, message: str) -> None:
    """A JSON refusal, sent before the app runs; the connection closes after it."""
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
