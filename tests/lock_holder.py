"""A real second process holding an output lock, for the tests of what other writers are told."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

_SCRIPT = """
import sys, time
from reid_export.files import output_lock
with output_lock(sys.argv[1], sys.argv[2:]):
    print("held", flush=True)
    time.sleep(60)
"""


@contextlib.contextmanager
def holding_lock(out: Path, *command: str) -> Iterator[subprocess.Popen]:
    """A subprocess holding the lock of `out`, recorded as started with `command`; killed when the block ends."""
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(out), *command], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()
