"""The embedded store's folder: locked by the one process that has its shard open, and any
failure of the engine or of its files turned into one line (engine/vectorstore/edge/)."""

from __future__ import annotations

import fcntl
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Final, TypeVar

from engine.errors import StoreError, StoreLockedError, one_line

LOCK_FILE: Final = ".lock"  # flock-ed by the EdgeStore that has the shard open

T = TypeVar("T")


@contextmanager
def guard(path: Path, writing: bool = False) -> Iterator[None]:
    """Turn any failure of the engine (or of reading its files) into a one-line StoreError."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        if writing:
            raise StoreError(
                f"the store at {path} could not write ({one_line(exc)}); what was written "
                "before stays, and the same command resumes once the cause is fixed"
            ) from None
        raise StoreError(
            f"the store at {path} could not be read ({one_line(exc)}); check the folder, "
            "or restore a snapshot (`fashionrec snapshot restore`)"
        ) from None


def guarded(method: Callable[..., T]) -> Callable[..., T]:
    """Run a read of the store (an object with a `path`) under guard."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        with guard(self.path):
            return method(self, *args, **kwargs)

    return wrapper


def locked(path: Path) -> StoreLockedError:
    return StoreLockedError(
        f"the store at {path} is held by another fashionrec process (an ingest?); "
        "wait for it to finish, or point FASHIONREC_HOME at another folder"
    )


def open_error(path: Path, exc: Exception) -> StoreError:
    if "WouldBlock" in str(exc):
        return locked(path)
    return StoreError(f"cannot open the store at {path}: {one_line(exc)}")


def take_lock(path: Path) -> IO[bytes] | None:
    """The store's lock, taken; None while another EdgeStore (in any process) holds it.

    Taken before Qdrant Edge touches the shard: its load opens the segments' files before it
    finds the write-ahead log locked, and such a refused open once broke the holder's next
    flush (a service that failed as it stopped, after `fashionrec info` was refused).
    """
    handle = (path / LOCK_FILE).open("a+b")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle
