"""Writing files so that nothing the user made is lost: the one atomic-write, refuse-overwrite and
output-lock helper every command uses.

* `atomic_path(path)`: a context manager giving a temporary path next to `path`; when the block ends
  without an error the file is fsynced and renamed onto `path` (with the usual 0644-style
  permissions), otherwise it is removed. A crash leaves the old file or the new one, never half.
  Temporary names carry the writer's pid (`.NAME.PID.XXXX.tmp`), so a temp file is only ever removed
  by the process that made it, or once that process is provably gone (`remove_stale_temps`).
* `write_bytes` / `write_text`: the same for data already in memory.
* `refuse_existing(path, overwrite=...)`: the one "already exists; pass --overwrite" rule.
* `output_lock(path, command)`: a lock file `.NAME.lock` naming the pid and command that writes
  `path`; a second writer is refused at start, naming the first. A lock whose process is gone is
  taken over.
* `check_writable_dir(folder)`: an output folder checked before the work starts (kind, permissions).
* `check_free_space(folder, need_bytes)`: a rough free-space estimate, also checked before the work.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import ReidExportError

__all__ = ["ENGINES_DIR", "RUNS_DIR", "atomic_path", "write_bytes", "write_text", "refuse_existing", "output_lock",
           "remove_stale_temps", "remove_empty_folders", "check_writable_dir", "check_free_space", "free_bytes", "format_bytes", "pid_alive"]

ENGINES_DIR = Path("engines")  # default folder for exported artefacts
RUNS_DIR = Path("runs")  # default folder for demo and bench outputs
_FILE_MODE = 0o666  # before the umask, as open() would create a file


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in `path`'s folder; on success it replaces `path` atomically."""
    path = Path(path)
    _make_parent(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        if not tmp.exists():
            raise ReidExportError(f"{path}: nothing was written (internal error: the writer made no file)")
        _fsync(tmp)
        os.chmod(tmp, _FILE_MODE & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        raise ReidExportError(f"{path}: could not write ({e.strerror or e}); check the folder is writable and the "
                              "disk has space, then run the command again") from e
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def refuse_existing(path: str | Path, *, overwrite: bool, option: str = "-o",
                    error: type[ReidExportError] = ReidExportError) -> None:
    """Raise `error` unless `path` is free, or is a file and `overwrite` is set. A folder where a file
    should go is refused either way."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path} is a folder; give a file path to {option} (e.g. {path / ('model' + path.suffix)})")
    if path.exists() and not overwrite:
        raise error(f"{path} already exists; pass --overwrite to replace it, or choose another {option} path")


@contextlib.contextmanager
def output_lock(path: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold `.NAME.lock` next to `path` while the block runs; refuse if a live process holds it."""
    path = Path(path)
    _make_parent(path)
    lock = path.with_name(f".{path.name}.lock")
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "command": command or " ".join(sys.argv),
             "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            held = _read_lock(lock)
            if held and held.get("host") == owner["host"] and not pid_alive(held.get("pid")):
                lock.unlink(missing_ok=True)  # its writer is gone: take the lock over
                continue
            who = (f"pid {held.get('pid')} ({held.get('command')!r}, since {held.get('since')})" if held
                   else "another process")
            raise ReidExportError(f"{path} is being written by {who}; wait for it to finish or choose another "
                                  f"output path (lock file: {lock})") from None
        except OSError as e:
            raise ReidExportError(f"{path}: cannot create the lock file {lock} ({e.strerror}); "
                                  "check the folder is writable") from e
        with os.fdopen(fd, "w") as f:
            json.dump(owner, f)
        break
    try:
        yield lock
    finally:
        if (_read_lock(lock) or {}).get("pid") == owner["pid"]:
            lock.unlink(missing_ok=True)


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove temporary files of `path` left by processes that no longer exist; returns them."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        parts = tmp.name[len(path.name) + 2:].split(".")
        pid = int(parts[0]) if parts and parts[0].isdigit() else None
        if pid is not None and pid != os.getpid() and not pid_alive(pid):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def remove_empty_folders(folders) -> None:
    """Remove each of `folders` that is empty, in the order given (deepest first): the folders a run
    made before it stopped. A folder holding anything (the user's files, another run's) stays."""
    for folder in folders:
        with contextlib.suppress(OSError):
            Path(folder).rmdir()


def check_writable_dir(folder: str | Path, *, what: str = "output folder") -> Path:
    """`folder` (created if missing) must be a writable folder; checked before any work starts."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ReidExportError(f"{what} {folder} is a file, not a folder; choose a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        blocker = next((p for p in folder.parents if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise ReidExportError(f"{what} {folder}: {blocker} is a file, not a folder; choose another path") from None
        raise ReidExportError(f"{what} {folder}: cannot create it ({e.strerror}); choose a writable place") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ReidExportError(f"{what} {folder} is not writable; choose a writable folder or fix its permissions")
    return folder


def free_bytes(folder: str | Path) -> int:
    """Free bytes on the file system that holds `folder` (or its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def check_free_space(folder: str | Path, need_bytes: int, *, what: str = "the output") -> None:
    """Refuse to start when `folder`'s disk has less than `need_bytes` (plus a 10% margin) free."""
    free = free_bytes(folder)
    if free < need_bytes * 1.1:
        raise ReidExportError(f"{what} needs about {format_bytes(need_bytes)} but {folder} has only "
                              f"{format_bytes(free)} free; free some space or choose another place")


def format_bytes(n: float) -> str:
    """1.5 GB, 20 MB, 512 B: decimal units, one decimal below 10."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" and abs(n) < 10 else f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.0f} TB"


def pid_alive(pid) -> bool:
    """Whether a process with this pid exists on this machine (a pid we may not signal counts as alive)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _make_parent(path: Path) -> None:
    if path.parent.exists() and not path.parent.is_dir():
        raise ReidExportError(f"{path}: its folder {path.parent} is a file; choose another output path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReidExportError(f"{path}: cannot create its folder {path.parent} ({e.strerror}); "
                              "choose a writable place") from e


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _read_lock(lock: Path) -> dict | None:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return None
