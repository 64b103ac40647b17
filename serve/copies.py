"""Copies of the embedded store for worker processes (`fashionrec serve --workers N`).

Qdrant Edge opens a shard folder in one process only, so each worker serves from a copy of
its own under `<home>/copies/`, made from the home's store while no one writes it (a
shared lock on the store's own lock file, which a writer holds alone). An ingest changes
the home's store through `home_writer`: it opens the store, brings it in step with the log,
lets the ingest happen, counts a new generation and closes it; every worker then copies it
again and switches (engine.application.Application.adopt). Purchases and the catalog's
small changes (a price, the stock, a removal: engine.events.changes) never change the
home's store while workers serve: each worker follows the event log into its own copy, and
the home's store catches up when it is next opened or the service stops.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from engine.application import Application
from engine.errors import StoreLockedError
from engine.events.changes import APPLIED
from engine.events.eventlog import EventLog
from engine.popularity.upkeep import (
    RANK_DRIFT_KEY,
    SYNCED_ANCHOR,
    SYNCED_SEQUENCE,
    popularity_in_step,
)
from engine.settings import Settings
from engine.vectorstore.edge import LOCK_FILE, EdgeStore
from engine.vectorstore.edge.files import copy_tree

COPIES_DIR: Final = "copies"
GENERATION_FILE: Final = "generation"  # how many times the home's store has changed
WORKERS_FILE: Final = "workers"  # how many workers serve copies
SERVING_SUFFIX: Final = ".serving"  # worker<N>.serving: the generation that worker serves
SERVED_WAIT_S: Final = 120.0  # how long a change waits for every worker to serve it
MARKS: Final = (SYNCED_ANCHOR, SYNCED_SEQUENCE, RANK_DRIFT_KEY, APPLIED)
WRITER_WAIT_S: Final = 30.0  # how long a change waits for copies being made (or an ingest)


class CopyMarks:
    """A copy's sync marks, in memory: the home store's (kept in the log) when copied."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def put(self, key: str, value: str) -> None:
        self.values[key] = value


@dataclass(frozen=True)
class Copy:
    """A worker's copy of the home's store: its folder, the generation it was made from,
    and its sync marks."""

    path: Path
    generation: int
    marks: CopyMarks


def copies_dir(home: Path) -> Path:
    """Where the workers' copies live."""
    return home / COPIES_DIR


def generation(home: Path) -> int:
    """The home store's generation (0: never changed under workers)."""
    try:
        return int((copies_dir(home) / GENERATION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0


def _next_generation(home: Path) -> None:
    folder = copies_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    _replace_text(folder / GENERATION_FILE, str(generation(home) + 1))


def expect_workers(home: Path, workers: int) -> None:
    """Record how many workers serve copies (the supervisor, before it starts them)."""
    folder = copies_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    _replace_text(folder / WORKERS_FILE, str(workers))


def mark_serving(home: Path, worker: int, generation: int) -> None:
    """Record the generation a worker's copy is of, once the worker serves it."""
    _replace_text(copies_dir(home) / f"worker{worker}{SERVING_SUFFIX}", str(generation))


def served_everywhere(home: Path, wanted: int, timeout_s: float = SERVED_WAIT_S) -> bool:
    """Wait until every worker serves a copy of generation `wanted` or later (False when
    `timeout_s` passes first): what a change made from a thread waits for before it says
    it is done, so that no worker answers without it afterwards."""
    folder = copies_dir(home)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            workers = int((folder / WORKERS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return True  # no supervisor recorded workers: nothing to wait for
        served = []
        for worker in range(workers):
            try:
                text = (folder / f"worker{worker}{SERVING_SUFFIX}").read_text(encoding="utf-8")
                served.append(int(text))
            except (OSError, ValueError):
                served.append(-1)  # starting: not serving yet
        if min(served, default=wanted) >= wanted:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _replace_text(path: Path, text: str) -> None:
    """Write a small file whole (a reader sees the old text or the new, never half)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def make_copy(settings: Settings, worker: int, *, wait: bool) -> Copy | None:
    """Copy the home's store for a worker; None (without `wait`) while a writer holds it."""
    store = settings.store_path
    with (store / LOCK_FILE).open("a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return None
        made = generation(settings.home)
        target = copies_dir(settings.home) / f"worker{worker}-g{made}-{uuid.uuid4().hex[:8]}"
        copy_tree(store, target, ignore=shutil.ignore_patterns(LOCK_FILE))  # holes kept
        log = EventLog(settings.event_log)
        try:
            marks = {key: value for key in MARKS if (value := log.get(key)) is not None}
        finally:
            log.close()
    return Copy(target, made, CopyMarks(marks))


def open_copy(settings: Settings, worker: int, *, wait: bool) -> tuple[Copy, Application] | None:
    """A fresh copy and an application serving it (its popularity in step with the log and
    its table read); None while a writer holds the home's store (without `wait`)."""
    made = make_copy(settings, worker, wait=wait)
    if made is None:
        return None
    try:
        app = Application.open(settings, serving=True, store=EdgeStore(made.path), marks=made.marks)
    except BaseException:
        shutil.rmtree(made.path, ignore_errors=True)
        raise
    return made, app


def remove_copies(home: Path, worker: int | None = None) -> None:
    """Remove a worker's copies (None: every copy and the generation count)."""
    folder = copies_dir(home)
    if worker is None:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for path in folder.glob(f"worker{worker}-*"):
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def home_writer(settings: Settings) -> Iterator[Application]:
    """The home's store, held alone (waiting for copies being made, or a running ingest,
    up to WRITER_WAIT_S) and in step with the log; a new generation once it closes."""
    try:
        store = EdgeStore(settings.store_path, wait_s=WRITER_WAIT_S)
    except StoreLockedError:
        raise StoreLockedError(
            f"the store at {settings.store_path} is being changed by another request (an "
            "ingest?); try again when it finishes"
        ) from None
    app = Application.open(settings, store=store)
    try:
        if store.vector_dims():
            popularity_in_step(store, app.log)
        yield app
    finally:
        try:
            _next_generation(settings.home)  # under the store's lock: no bump is lost
        finally:
            app.close()


def bring_home_in_step(settings: Settings) -> int:
    """Sync the home store's popularity with the log (what workers took into their copies
    only); returns items and purchases taken in."""
    app = Application.open(settings, store=EdgeStore(settings.store_path, wait_s=WRITER_WAIT_S))
    try:
        return popularity_in_step(app.store, app.log) if app.store.vector_dims() else 0
    finally:
        app.close()
