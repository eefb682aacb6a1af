"""What a fault-sweep case is: a command line (or one raw HTTP request to a shared live server), what it
must answer, and what must hold afterwards; and what running it gave."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Request:
    """One raw HTTP/1.1 request to a live server of the sweep: "open" (no token, the default a user starts)
    or "token". `{port}`, `{item}` (an item of its gallery) and `{last}` (another one) in the path and
    header values are filled in when it runs."""
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    server: str = "open"
    complete: bool = True  # False: send half a request head and wait for the server to give up on it


@dataclass
class Case:
    name: str
    args: list[str]  # after `reid-export` (empty for an HTTP case)
    rc: int | tuple[int, ...]  # expected exit code, or HTTP status for an HTTP case (any of a tuple)
    message: str  # expected in stderr + stdout, or in the HTTP answer (case-insensitive)
    category: str  # input | data-loss | runtime-row | disk | honest | image | security | serve
    check: Callable[[], str | None] | None = None  # files (or the server) afterwards; returns a problem or None
    forbid: list[str] = field(default_factory=list)  # must not appear in the output
    http: Request | None = None  # send this to a live server instead of running a command
    timeout_s: float = 600.0  # a command still running then is a problem (a server that should have refused)


@dataclass
class Outcome:
    case: Case
    rc: int
    output: str
    seconds: float
    problems: list[str]

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.output

    @property
    def server_error(self) -> bool:
        return self.case.http is not None and self.rc >= 500
