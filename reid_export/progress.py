"""One progress-bar helper so long work looks the same everywhere and `quiet` silences it.

    with progress_bar("decoding 3,368 images", total=3368, enabled=not quiet) as advance:
        ...; advance()             # or advance(n), or advance(1, loss=0.41) to update a `stats` field

`stats` adds a text column formatted from fields (e.g. "loss {task.fields[loss]:.3f}"), `terminal_only`
shows the bar only on a terminal (a log file then gets just the caller's own lines), `transient=False`
leaves the finished bar on screen.
"""

from __future__ import annotations

from contextlib import contextmanager

__all__ = ["progress_bar"]


@contextmanager
def progress_bar(description: str, total: int, *, enabled: bool = True, transient: bool = True,
                 terminal_only: bool = False, stats: str | None = None, fields: dict | None = None):
    """Yields `advance(n=1, **fields)`; a rich bar when enabled, a no-op otherwise."""
    if enabled and terminal_only:
        from rich import get_console

        enabled = get_console().is_terminal
    if not enabled:
        yield lambda n=1, **_: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if stats:
        columns.append(TextColumn(stats))
    with Progress(*columns, TimeRemainingColumn(), transient=transient) as progress:
        task = progress.add_task(description, total=total, **(fields or {}))
        yield lambda n=1, **update: progress.update(task, advance=n, **update)
