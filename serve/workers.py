"""`fashionrec serve --workers N`: N processes answer on one port, each on a socket of its own.

Qdrant Edge holds Python's interpreter lock while it searches, so one process answers one
request at a time; processes answer side by side. Over the embedded store each worker
serves a copy of its own (serve/copies.py) and, a few times a second, takes in the
purchases and the catalog's small changes (a price, the stock, a removal) any worker
recorded (the event log numbers both), and adopts a new copy after an ingest. Over a
Qdrant server the workers share the server and need neither.
The supervisor (the command's process) starts them, starts again any that dies, and on
Ctrl-C or SIGTERM stops them and brings the home's store in step with the log.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Final

from engine.application import Application
from engine.errors import FashionrecError, one_line
from engine.popularity.upkeep import catch_up
from engine.settings import Settings
from serve.copies import (
    Copy,
    bring_home_in_step,
    copies_dir,
    expect_workers,
    generation,
    home_writer,
    mark_serving,
    open_copy,
    remove_copies,
    served_everywhere,
)
from serve.enginethread import EngineThread
from serve.restarts import HUNG_S, MAX_FAILURES, Restarts, hung

PARENT_S: Final = 0.5  # how often a worker looks whether its supervisor is still there
BEAT_S: Final = 0.5  # a worker's heartbeat (its loop's turns noted 4 times as often)
FOLLOW_S: Final = 0.25  # how often a worker takes in new purchases and looks for a new copy
STOP_S: Final = 15.0  # how long a worker may take to finish its requests when stopped
LOG = logging.getLogger("fashionrec.serve")


@dataclass(frozen=True)
class Spec:
    """What every worker serves, and how."""

    settings: Settings
    host: str
    port: int
    private: bool
    api_key: str
    hosts: Sequence[str] | None
    private_search: bool = False
    family: int = socket.AF_INET
    address: tuple[Any, ...] = ()  # the bound address (host, port, …)
    hung_s: float = HUNG_S  # a worker whose event loop is silent this long is replaced


class Follower:
    """A worker's application over its copy of the store, kept current."""

    def __init__(self, settings: Settings, worker: int, copy: Copy, app: Application) -> None:
        self.settings, self.worker = settings, worker
        self.copy, self.app = copy, app
        self.refreshing = False
        self.engine: EngineThread | None = None  # the thread the service's calls run on
        app.home_writer = self.writer
        mark_serving(settings.home, worker, copy.generation)

    def follow(self) -> int:
        """Take in the purchases and the catalog's changes (prices, stock, removals)
        recorded since this copy last looked, by any worker."""
        app = self.app
        return catch_up(app.store, app.log, app.columns, app.marks) + app.replay_changes()

    def switch(self, copy: Copy, fresh: Application) -> None:
        """Serve the fresh copy from now on (between two requests), and drop the old one."""
        catch_up(fresh.store, self.app.log, fresh.columns, fresh.marks)
        fresh.replay_changes()
        old_store, old_copy = self.app.adopt(fresh), self.copy
        self.copy = copy
        old_store.close()
        shutil.rmtree(old_copy.path, ignore_errors=True)
        mark_serving(self.settings.home, self.worker, copy.generation)
        LOG.info("worker %d: serving generation %d", self.worker, copy.generation)

    async def refresh(self, engine: EngineThread) -> None:
        """Copy the changed store in a thread, then switch on the engine's thread between
        two requests; requests are answered from the old copy meanwhile."""
        self.refreshing = True
        try:
            made = await asyncio.to_thread(open_copy, self.settings, self.worker, wait=False)
            if made is not None:  # else a writer holds the store: the next look tries again
                await engine(self.switch, *made)
        finally:
            self.refreshing = False

    async def keep_current(self, engine: EngineThread) -> None:
        """Follow the log and the store's generation, on the engine's thread between two
        requests, until cancelled."""
        self.engine = engine
        while True:
            await asyncio.sleep(FOLLOW_S)
            try:
                await engine(self.follow)
                if not self.refreshing and generation(self.settings.home) != self.copy.generation:
                    await self.refresh(engine)
            except FashionrecError as exc:
                LOG.warning("worker %d: %s", self.worker, one_line(exc, 300))
            except Exception:  # the next look tries again; the service goes on meanwhile
                LOG.exception("worker %d: could not keep its copy current", self.worker)

    @contextmanager
    def writer(self) -> Iterator[Application]:
        """The home's store for a change to the catalog; on the engine's thread the new
        copy is served before the next request (the writer reads its own change), else
        (an ingest's thread) every worker serves it, this one at its next look, before
        the change is over: the run's summary comes when every worker has its items."""
        with home_writer(self.settings) as home:
            yield home
        if self.engine is None or self.engine.on_it():
            made = open_copy(self.settings, self.worker, wait=True)
            if made is not None:
                self.switch(*made)
        elif not served_everywhere(self.settings.home, generation(self.settings.home)):
            LOG.warning("worker %d: not every worker serves the change yet", self.worker)


def port_socket(family: int, address: tuple[Any, ...]) -> socket.socket:
    """A socket bound to the address with SO_REUSEPORT: each worker listens on one of its
    own, and the kernel spreads new connections over them. (One socket shared by every
    worker would let whichever worker wakes first accept a whole burst of connections:
    measured, four keep-alive clients landed 3 + 1 on two workers in 6 of 8 trials.)"""
    # IPPROTO_TCP named: asyncio turns Nagle's algorithm off only on sockets that say so
    # (with proto 0 every small answer waited for a delayed ACK: 40 ms, measured)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def _watch_parent(parent: int) -> None:
    """Stop this worker once its supervisor is gone (killed, -9 included: the worker is
    then another process's child), as Ctrl-C would; gone for good after STOP_S."""
    while os.getppid() == parent:
        time.sleep(PARENT_S)
    LOG.warning("the supervisor (pid %d) is gone; this worker stops", parent)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(STOP_S)
    os._exit(1)


def _heartbeat(path: Path, engine: EngineThread) -> None:
    """Stamp `path` every BEAT_S, from a thread of its own, with the time the worker last
    answered (EngineThread.answering_at): the supervisor replaces a worker whose stamp
    falls behind, its event loop stopped or one call running too long."""
    path.touch()
    while True:
        stamp = engine.answering_at(time.time())
        os.utime(path, (stamp, stamp))
        time.sleep(BEAT_S)


def beat_file(home: Path, worker: int) -> Path:
    """The file a worker's heartbeat touches."""
    return copies_dir(home) / f"worker{worker}.beat"


def _worker(spec: Spec, sock: socket.socket | None, worker: int, parent: int) -> None:
    """One worker process: its application (a copy of its own over the embedded store),
    then the service on its socket (`sock`, shared, or one of its own on the port) until
    stopped, or until its supervisor (`parent`) is gone."""
    import uvicorn

    from serve.main import create_app

    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [w{worker}] %(message)s")
    settings = spec.settings
    follower: Follower | None = None
    if settings.qdrant_url:
        app = Application.open(settings, serving=True)
    else:
        remove_copies(settings.home, worker)  # what a worker that died left
        made = open_copy(settings, worker, wait=True)
        assert made is not None  # waited for the lock
        follower = Follower(settings, worker, *made)
        app = follower.app
    beat = beat_file(settings.home, worker)
    beat.parent.mkdir(parents=True, exist_ok=True)

    async def background(engine: EngineThread) -> None:
        threading.Thread(target=_heartbeat, args=(beat, engine), daemon=True).start()
        if follower is None:
            await engine.turning(BEAT_S / 4)
        else:
            await asyncio.gather(engine.turning(BEAT_S / 4), follower.keep_current(engine))

    try:
        service = create_app(
            settings,
            private=spec.private,
            api_key=spec.api_key,
            application=app,
            hosts=spec.hosts,
            background=background,
            warm_search=True,
            private_search=spec.private_search,
        )
        config = uvicorn.Config(service, access_log=False, log_level="warning")
        config.timeout_graceful_shutdown = int(STOP_S)
        own = port_socket(spec.family, spec.address) if sock is None else sock
        try:
            uvicorn.Server(config).run(sockets=[own])
        finally:
            own.close()
    finally:
        app.close()
        if follower is not None:
            shutil.rmtree(follower.copy.path, ignore_errors=True)


class StartError(FashionrecError):
    """A worker failed at its start too many times in a row: the service stops."""


def _beat(home: Path, worker: int) -> float | None:
    """When the worker's heartbeat last touched its file (None: never)."""
    try:
        return beat_file(home, worker).stat().st_mtime
    except OSError:
        return None


def supervise(spec: Spec, sock: socket.socket, workers: int) -> None:
    """Run `workers` processes until Ctrl-C or SIGTERM, starting again any that dies or
    hangs (serve/restarts.py: StartError after repeated failures at start). `sock`
    (bound, not listening) proves the port free; where SO_REUSEPORT exists it is traded
    for one with that option, which holds the port while each worker listens on a socket
    of its own, else the workers share it."""
    settings = spec.settings
    if not settings.qdrant_url:
        remove_copies(settings.home)
        written = bring_home_in_step(settings)
        if written:
            LOG.info("popularity payloads brought in step with the event log")
        expect_workers(settings.home, workers)
    shared: socket.socket | None = sock
    held: socket.socket | None = None
    if hasattr(socket, "SO_REUSEPORT"):
        spec = replace(spec, family=sock.family, address=sock.getsockname())
        sock.close()
        held, shared = port_socket(spec.family, spec.address), None
    context = multiprocessing.get_context("spawn")
    restarts = Restarts()
    started: dict[int, float] = {}  # when each worker was started (time.time())

    def start(worker: int) -> BaseProcess:
        args = (spec, shared, worker, os.getpid())
        process = context.Process(target=_worker, args=args, daemon=False)
        started[worker] = time.time()
        process.start()
        return process

    # set by Ctrl-C or SIGTERM (a second one changes nothing): a plain flag, as a handler
    # that took a lock could find it held by the very loop it interrupted
    stopping: list[bool] = []
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda signum, frame: stopping.append(True))
    processes: list[BaseProcess | None] = [start(n) for n in range(workers)]
    due: dict[int, float] = {}  # a dead worker's time to start again
    try:
        while not stopping:
            time.sleep(0.5)
            if stopping:
                break
            now = time.time()
            for n, process in enumerate(processes):
                if process is None:
                    if now >= due[n]:
                        processes[n] = start(n)
                    continue
                beat = _beat(spec.settings.home, n)
                if process.is_alive() and hung(started[n], beat, now, spec.hung_s):
                    LOG.warning("worker %d answers nothing for %g s; replacing it", n, spec.hung_s)
                    process.kill()
                    process.join()
                    continue  # died: started again on the next look
                if process.is_alive():
                    continue
                delay = restarts.died(n, now - started[n])
                if delay is None:
                    raise StartError(
                        f"worker {n} failed at its start {MAX_FAILURES} times in a row (last "
                        f"exit code {process.exitcode}); the service stops: see the log above"
                    )
                LOG.warning(
                    "worker %d exited (%s); starting it again in %.1f s",
                    n,
                    process.exitcode,
                    delay,
                )
                processes[n], due[n] = None, now + delay
    finally:
        running = [p for p in processes if p is not None]
        for process in running:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + STOP_S
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        if held is not None:
            held.close()
        if not settings.qdrant_url:
            bring_home_in_step(settings)
            remove_copies(settings.home)
