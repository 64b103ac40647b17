"""Who holds the embedded store: the small file a running `fashionrec serve` leaves in its
home ({"url": ..., "pid": ...}), written atomically and removed when the server stops; and
the lock beside it that one server holds for its whole life, whatever its mode (one process
or a supervisor of workers), released by the kernel when it dies."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StoreLockedError


@dataclass(frozen=True)
class Holder:
    """A server holding the store: where it answers and its process id."""

    url: str
    pid: int


def write_holder(path: Path, url: str, pid: int | None = None) -> Holder:
    """Write path atomically (a temporary file beside it, then renamed)."""
    holder = Holder(url, os.getpid() if pid is None else pid)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{holder.pid}.tmp")
    temporary.write_text(json.dumps({"url": holder.url, "pid": holder.pid}), encoding="utf-8")
    os.replace(temporary, path)
    return holder


def remove_holder(path: Path, pid: int | None = None) -> None:
    """Remove path if it names this process (or pid); a file another server wrote stays."""
    mine = os.getpid() if pid is None else pid
    found = _read(path)
    if found is not None and found.pid == mine:
        path.unlink(missing_ok=True)


def _read(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(str(data["url"]), int(data["pid"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def alive(pid: int) -> bool:
    """Whether a process with this id exists."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def read_holder(path: Path) -> Holder | None:
    """The server path names, when the file is readable and its process is alive."""
    found = _read(path)
    return found if found is not None and alive(found.pid) else None


@contextmanager
def serving(path: Path, url: str) -> Iterator[Holder]:
    """Hold the home for one server while the block runs: an exclusive lock on `path`'s
    `.lock` (never waited for), then the holder file; StoreLockedError naming the server
    that holds it instead (a second server would take over its store and its workers'
    copies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(f"{path.name}.lock").open("a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            found = _read(path)
            who = (
                "another fashionrec serve"
                if found is None
                else (f"the server at {found.url} (pid {found.pid})")
            )
            raise StoreLockedError(
                f"{path.parent} is already served by {who}; stop it first, or send the "
                "work to it (--api URL)"
            ) from None
        holder = write_holder(path, url)
        try:
            yield holder
        finally:
            remove_holder(path)
