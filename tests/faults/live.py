"""The fault sweep's live servers and raw HTTP: `reid-export serve` subprocesses on loopback, one raw
HTTP/1.1 request per case (any Host, Origin, body or half a request), and the bytes hostile uploads are made of."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEALTH_TIMEOUT_S = 10.0


class Server:
    """`reid-export serve` on a free loopback port; `stop()` sends SIGTERM."""

    def __init__(self, args: list[str], token: str | None = None):
        self.port = free_port()
        self.token = token
        self.items: list[str] = []  # ids of its gallery's items, for the requests that name one
        # short slow-client timeouts, so the cases that stall a head or a body are answered in seconds
        self.args = ["serve", "--port", str(self.port), "--header-timeout-s", "3", "--body-timeout-s", "3", *args,
                     *(["--token", token] if token else [])]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "REID_EXPORT_TOKEN": ""}
        self.process = subprocess.Popen([sys.executable, "-m", "reid_export.cli", *self.args], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server {' '.join(self.args)} exited ({self.process.returncode}):\n"
                                   f"{self.process.stdout.read()}")
            if request(self.port, "GET", "/readyz", auth, timeout_s=2.0)[0] == 200:
                return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server {' '.join(self.args)} not ready after {timeout_s} s")

    def up(self) -> bool:
        return self.process.poll() is None and request(self.port, "GET", "/healthz", {},
                                                       timeout_s=HEALTH_TIMEOUT_S)[0] == 200

    def sources(self) -> set[str]:
        """The `source` names of the gallery's items, as the server lists them."""
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        status, text = request(self.port, "GET", "/v1/gallery?limit=1000", auth)
        if status != 200:
            raise RuntimeError(f"listing the gallery answered {status}: {text[-300:]}")
        return {item["source"] for item in json.loads(text.split("\r\n\r\n", 1)[1])["items"]}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"", *,
            timeout_s: float = 60.0, complete: bool = True) -> tuple[int, str]:
    """One raw request -> (status, the whole answer as text). `Host` defaults to 127.0.0.1:PORT, and
    `Content-Length` to the body's unless `headers` says otherwise (a `Transfer-Encoding`, a lie).
    `complete=False` sends the head without its end and waits for the server to give up on it.
    Status 0: the server closed the connection without an answer; -1: nothing within `timeout_s`."""
    head = {"Host": f"127.0.0.1:{port}", "Connection": "close", **headers}
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in head):
        head["Content-Length"] = str(len(body))
    raw = f"{method} {path} HTTP/1.1\r\n".encode() + b"".join(
        f"{k}: {v}\r\n".encode("latin-1") for k, v in head.items())
    raw += b"\r\n" + body if complete else b"X-Slow: "
    chunks = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            s.sendall(raw)
            while data := s.recv(65536):
                chunks.append(data)
    except TimeoutError:
        return -1, b"".join(chunks).decode("utf-8", "replace")
    except ConnectionError as e:  # reset after an early answer: keep what came
        if not chunks:
            return 0, f"connection {type(e).__name__}"
    text = b"".join(chunks).decode("utf-8", "replace")
    try:
        return int(text.split(" ", 2)[1]), text
    except (IndexError, ValueError):
        return 0, text


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "sweep-boundary-7f3a") -> tuple[bytes, str]:
    """(field, file name or None for a text field, content) -> (body, its Content-Type)."""
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        kind = "Content-Type: application/octet-stream\r\n" if filename is not None else ""
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n{kind}\r\n".encode() + content + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def chunked(body: bytes, size: int = 65536) -> bytes:
    """`body` in HTTP/1.1 chunked transfer encoding."""
    out = b"".join(f"{len(body[i:i + size]):x}\r\n".encode() + body[i:i + size] + b"\r\n"
                   for i in range(0, len(body), size))
    return out + b"0\r\n\r\n"


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels but holds almost nothing: what a decompression bomb's
    header looks like, in a few dozen bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + \
        chunk(b"IEND", b"")


def jpeg(width: int = 64, height: int = 128, seed: int = 0) -> bytes:
    from PIL import Image  # lazy: listing the cases (their names) imports nothing heavy

    out = io.BytesIO()
    Image.new("RGB", (width, height), ((seed * 37) % 256, 90, 160)).save(out, format="JPEG")
    return out.getvalue()
