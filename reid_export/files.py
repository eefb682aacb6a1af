"""Writing files so that nothing the user made is lost: the one atomic-write, refuse-overwrite and
output-lock helper every command uses.

* `atomic_path(path)`: a context manager giving a temporary path next to `path`; when the block ends
  without an error the file is fsynced and renamed onto `path` (with the usual 0644-style
  permissions), otherwise it is removed. A crash leaves the old file or the new one, never half.
  Temporary names carry the writer's pid (`.NAME.PID.XXXX.tmp`), so a temp file is only ever removed
  by the process that made it, or once that process is provably gone (`remove_stale_temps`).
* `write_bytes` / `write_text`: the same for data already in memory.
* `refuse_existing(path, overwrite=...)`: the one "already exists; pass --overwrite" rule, with
  `refuse_replacing` (--overwrite replaces only the command's own kind of output) and
  `refuse_own_input` (an output is never one of the command's inputs, nor a folder holding one).
* `output_lock(path, command)`: a private (0600) lock file `.NAME.lock` naming the pid and command that
  writes `path`; a second writer is refused at start, naming the first. A lock whose process is gone is
  taken over; one that is not a reid-export lock (garbage, truncated) is named with the command that
  clears it.
* `redact_command(argv)`: a command line fit to store or show: the values of secret options (--token,
  anything named *token*, *secret*, *password*, *key*) and the passwords of URLs become `***`.
* `check_writable_dir(folder)`: an output folder checked before the work starts (kind, permissions).
* `check_free_space(folder, need_bytes)`: a rough free-space estimate, also checked before the work.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import ReidExportError

__all__ = ["ENGINES_DIR", "RUNS_DIR", "atomic_path", "write_bytes", "write_text", "refuse_existing", "refuse_replacing",
           "refuse_own_input", "output_lock", "redact_command", "redact_url",
           "remove_stale_temps", "remove_empty_folders", "check_writable_dir", "check_free_space", "free_bytes", "format_bytes", "pid_alive"]

ENGINES_DIR = Path("engines")  # default folder for exported artefacts
RUNS_DIR = Path("runs")  # default folder for demo and bench outputs
_FILE_MODE = 0o666  # before the umask, as open() would create a file
_PRIVATE_MODE = 0o600  # files that name the user's command line: readable by their owner only
_SECRET_OPTION = re.compile(r"token|secret|passw|key", re.IGNORECASE)  # an option whose value is never shown
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s?#]*)@")  # to the last @
REDACTED = "***"


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
                    error: type[ReidExportError] = ReidExportError, inputs=(),
                    own: Callable[[Path], bool] | None = None, kind: str = "") -> None:
    """Raise `error` unless `path` is free, or is a file and `overwrite` is set. A folder where a file
    should go is refused either way; so is a path that is one of the command's `inputs`, and, with
    `overwrite`, an existing file that `own(path)` does not recognise as `kind` (what the command makes)."""
    path = Path(path)
    refuse_own_input(path, inputs, option=option, error=error)
    if path.is_dir():
        raise error(f"{path} is a folder; give a file path to {option} (e.g. {path / ('model' + path.suffix)})")
    if path.exists() and not overwrite:
        raise error(f"{path} already exists; pass --overwrite to replace it, or choose another {option} path")
    if own is not None:
        refuse_replacing(path, own=own, kind=kind, option=option, error=error)


def refuse_replacing(path: str | Path, *, own: Callable[[Path], bool], kind: str, option: str = "-o",
                     error: type[ReidExportError] = ReidExportError, why: str = "") -> None:
    """`--overwrite` replaces only what the command made: an existing `path` that `own(path)` does not
    recognise as `kind` is refused, naming it (`why`: what is wrong with it); nothing is touched."""
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not own(path):
        raise error(f"{option} {path} exists but is not {kind}{f' ({why})' if why else ''}; --overwrite only "
                    f"replaces {kind}, so nothing was changed: choose another {option} path, or move {path} "
                    "away yourself")


def refuse_own_input(out: str | Path, inputs, *, option: str = "-o",
                     error: type[ReidExportError] = ReidExportError) -> None:
    """Refuse an output that is, or (a folder) contains, one of the command's `inputs` (paths; None skipped):
    replacing it would delete what the command reads."""
    out_real = Path(out).resolve()
    for given in inputs:
        if given is None:
            continue
        real = Path(given).resolve()
        if real == out_real or out_real in real.parents:
            how = "is" if real == out_real else "contains"
            raise error(f"{option} {out} {how} the input {given}; writing there would replace what the command "
                        f"reads: choose an {option} path outside it")


@contextlib.contextmanager
def output_lock(path: str | Path, command: str | list[str] | None = None) -> Iterator[Path]:
    """Hold `.NAME.lock` next to `path` while the block runs; refuse if a live process holds it. The lock
    (mode 0600) records this process's pid, user, host and `command` (default: sys.argv), secrets redacted."""
    path = Path(path)
    _make_parent(path)
    lock = path.with_name(f".{path.name}.lock")
    owner = {"pid": os.getpid(), "user": _user(), "host": socket.gethostname(),
             "command": redact_command(sys.argv if command is None else command),
             "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):
        try:
            _create_lock(lock, owner)
        except FileExistsError:
            held = _read_lock(lock)
            if held is None:
                raise ReidExportError(f"{path}: lock file {lock} is unreadable (not written by reid-export, or "
                                      f"truncated); if no reid-export is writing {path}, delete it: "
                                      f"rm {shlex.quote(str(lock))}") from None
            if held.get("host") == owner["host"] and not pid_alive(held["pid"]):
                lock.unlink(missing_ok=True)  # its writer is gone: take the lock over
                continue
            raise ReidExportError(f"{path} is being written by {_describe_owner(held, owner['host'])}; wait for it "
                                  f"to finish or choose another output path (lock file: {lock})") from None
        except OSError as e:
            raise ReidExportError(f"{path}: cannot create the lock file {lock} ({e.strerror}); "
                                  "check the folder is writable") from e
        break
    try:
        yield lock
    finally:
        if (_read_lock(lock) or {}).get("pid") == owner["pid"]:
            lock.unlink(missing_ok=True)


def redact_command(argv: str | list[str]) -> str:
    """`argv` (a list, or one string split as a shell would) as one line with every secret replaced by `***`:
    the value of an option whose name holds token, secret, password or key (`--token S`, `--token=S`,
    `api_key=S`; not `--token-file PATH`), and the password of a URL (`http://user:S@host` ->
    `http://user:***@host`)."""
    if isinstance(argv, str):
        try:
            argv = shlex.split(argv)
        except ValueError:  # unbalanced quotes: redact word by word
            argv = argv.split()
    out, hide_next = [], False
    for arg in map(str, argv):
        name, eq, _ = arg.partition("=")
        if hide_next:  # the value of `--token VALUE`, even one that starts with a dash
            out.append(REDACTED)
            hide_next = False
            continue
        if eq and _is_secret_option(name):
            out.append(f"{name}={REDACTED}")
        else:
            out.append(redact_url(arg))
        hide_next = arg.startswith("-") and not eq and _is_secret_option(arg)
    return " ".join(out)


def redact_url(text: str) -> str:
    """`text` with the credentials of every URL in it replaced: `http://user:pass@host` -> `http://user:***@host`,
    and a user part alone, often a token (`https://TOKEN@host`), -> `https://***@host`."""
    def hide(m: re.Match) -> str:
        user, colon, _ = m["userinfo"].partition(":")
        return f"{m['scheme']}{user}:{REDACTED}@" if colon else f"{m['scheme']}{REDACTED}@"
    return _URL_USERINFO.sub(hide, str(text))


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


def _is_secret_option(name: str) -> bool:
    """--token, --api-key, db_password: yes; a file or path that holds one (--token-file): no, nor a URL."""
    return bool(_SECRET_OPTION.search(name)) and "://" not in name and not name.lower().endswith(("file", "path"))


def _create_lock(lock: Path, owner: dict) -> None:
    """Create `lock` holding `owner`, or raise FileExistsError. The JSON is written to a private temporary
    file first and hard-linked into place, so a lock is never seen empty or half-written; where the file
    system has no hard links, the lock is created directly (O_EXCL)."""
    tmp = lock.with_name(f"{lock.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    _write_private(tmp, owner)
    try:
        os.link(tmp, lock)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (some network and FAT file systems)
        _write_private(lock, owner)
    finally:
        tmp.unlink(missing_ok=True)


def _write_private(path: Path, data: dict) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE_MODE)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)


def _read_lock(lock: Path) -> dict | None:
    """The owner a reid-export lock names, or None for anything else (garbage, empty, truncated, foreign)."""
    try:
        held = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(held, dict) or not isinstance(held.get("pid"), int) or isinstance(held["pid"], bool):
        return None
    return held


def _describe_owner(held: dict, host: str) -> str:
    """pid, user, host (when not this one), command (redacted, as an older lock may hold a secret) and since."""
    who = f"pid {held['pid']}"
    if held.get("user"):
        who += f" of user {held['user']}"
    if held.get("host") != host:
        who += f" on host {held.get('host')}"
    return f"{who} ({redact_command(str(held.get('command') or '?'))!r}, since {held.get('since')})"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry (containers)
        return str(os.getuid()) if hasattr(os, "getuid") else ""
