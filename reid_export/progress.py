"""One progress-bar helper so long work looks the same everywhere and `quiet` silences it.

    with progress_bar("decoding 3,368 images", total=3368, enabled=not quiet) as advance:
        ...; advance()             # or advance(n), or advance(1, loss=0.41) to update a `stats` field

On a terminal it is a rich bar. When stdout is not a terminal (a log file, CI, a pipe) it prints plain
lines instead: one every `PLAIN_EVERY_S` seconds with the count, the rate and the time left, and one
when the work ends, so a log shows that work is moving and how long it will take. `stats` adds a text
column formatted from fields (e.g. "loss {task.fields[loss]:.3f}"), in the plain lines too;
`transient=False` leaves the finished bar on screen.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from types import SimpleNamespace

__all__ = ["progress_bar", "PLAIN_EVERY_S"]

PLAIN_EVERY_S = 10.0  # seconds between two plain progress lines when stdout is not a terminal


@contextmanager
def progress_bar(description: str, total: int, *, enabled: bool = True, transient: bool = True,
                 stats: str | None = None, fields: dict | None = None, plain_every_s: float = PLAIN_EVERY_S):
    """Yields `advance(n=1, **fields)`; a rich bar on a terminal, plain lines elsewhere, a no-op if not enabled."""
    if not enabled:
        yield lambda n=1, **_: None
        return
    from rich import get_console

    if not get_console().is_terminal:
        lines = _PlainLines(description, total, stats, dict(fields or {}), plain_every_s)
        yield lines.advance
        lines.finish()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if stats:
        columns.append(TextColumn(stats))
    with Progress(*columns, TimeRemainingColumn(), transient=transient) as progress:
        task = progress.add_task(description, total=total, **(fields or {}))
        yield lambda n=1, **update: progress.update(task, advance=n, **update)


# -- helpers ---------------------------------------------------------------------------------------


class _PlainLines:
    """Progress as printed lines: `description: done/total (pct%)  rate/s  ETA s  stats`."""

    def __init__(self, description: str, total: int, stats: str | None, fields: dict, every_s: float):
        self.description, self.total, self.stats, self.fields, self.every_s = description, total, stats, fields, every_s
        self.done = 0
        self.started = self.last = time.perf_counter()

    def advance(self, n: int = 1, **fields) -> None:
        self.done += n
        self.fields.update(fields)
        now = time.perf_counter()
        if now - self.last >= self.every_s and self.done < self.total:
            self.last = now
            rate = self.done / (now - self.started)
            eta = f"ETA {(self.total - self.done) / rate:.0f} s" if rate > 0 else "ETA ?"
            print(f"{self.description}: {self.done}/{self.total} ({100 * self.done / max(self.total, 1):.0f}%)  "
                  f"{rate:.1f}/s  {eta}{self._stats()}", flush=True)

    def finish(self) -> None:
        seconds = time.perf_counter() - self.started
        rate = f"  {self.done / seconds:.1f}/s" if seconds > 0 else ""
        print(f"{self.description}: {self.done}/{self.total} done in {seconds:.1f} s{rate}{self._stats()}", flush=True)

    def _stats(self) -> str:
        if not self.stats:
            return ""
        try:
            return "  " + self.stats.format(task=SimpleNamespace(fields=self.fields))
        except (KeyError, ValueError, TypeError):  # a field not set yet
            return ""
