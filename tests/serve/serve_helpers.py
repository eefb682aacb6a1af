"""Helpers of the serve tests: a real `reid-export serve` process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, args: list[str], *, env: dict | None = None, headers: dict | None = None):
        self.headers = headers or {}  # of the readiness probe: the token of a server started with one
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 90.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reid_export.cli", "serve", "--port", str(self.port), *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env, text=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.process.stdout.read()}")
            try:
                if httpx.get(self.url + "/readyz", headers=self.headers, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout_s} s")

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait; returns the exit code (SIGKILL if it does not stop)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def output(self) -> str:
        return self.process.stdout.read() if self.process and self.process.poll() is not None else ""


def wait_for_commits(gallery, process: subprocess.Popen, *, after: int, commits: int = 3) -> None:
    """Wait until the gallery's manifest is `commits` generations past `after`, or `process` ended (bounded at
    120 s: a bound on the wait, not a timing assertion), so a test can stop a writer mid-way."""
    import json

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if json.loads((gallery / "gallery.json").read_text())["generation"] >= after + commits:
                return
        except (ValueError, OSError):
            pass  # the manifest is replaced atomically; a read races only with the rename
        time.sleep(0.005)
