"""Where the service's calls into the application run: one at a time (the engine is written
for one caller, as the command line is), on the engine's own thread when the store or the
event log is reached over the network, so that a server that makes a call wait (PostgreSQL
restarting, a Qdrant server slow to answer) stalls the calls behind it and never the event
loop: /health, the heartbeat and every other connection go on. A home wholly on this
machine's disk (Qdrant Edge and a SQLite log: its reads never wait, its writers at most
2 s) runs them on the event loop itself: the same speed when the process is otherwise
idle, and a quarter to a third faster while another thread runs Python (as an ingest's
or the search network's may), as each hand-over of the interpreter's lock then waits
(bench/calls.py, docs/performance.md)."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, ParamSpec, TypeVar

MAX_WAITING: Final = 32  # calls running or queued on the thread before a request is turned away
P = ParamSpec("P")
T = TypeVar("T")


class EngineThread:
    """Runs the application's calls in the order they are made: on a thread of its own, or
    `inline` on the event loop's (made on the loop's thread)."""

    def __init__(self, inline: bool = False) -> None:
        self.pool = None if inline else ThreadPoolExecutor(1, thread_name_prefix="engine")
        self.began: float | None = None  # when the call running now began (time.time())
        # the thread the calls run on (for a thread of its own: once it has run one)
        self.ident: int | None = threading.get_ident() if inline else None
        self.waiting = 0  # calls running or queued on the thread (counted on the loop's)

    async def __call__(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """The call's result, run on the engine's thread (its exception raised here)."""
        if self.pool is None:
            return self._timed(call, *args, **kwargs)
        loop = asyncio.get_running_loop()
        self.waiting += 1
        try:
            return await loop.run_in_executor(
                self.pool, functools.partial(self._timed, call, *args, **kwargs)
            )
        finally:
            self.waiting -= 1

    def full(self) -> bool:
        """Whether MAX_WAITING calls are already running or queued (a database that
        makes each wait): a request is better answered 503 now than after them all."""
        return self.waiting >= MAX_WAITING

    def _timed(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        self.ident = threading.get_ident()
        self.began = time.time()
        try:
            return call(*args, **kwargs)
        finally:
            self.began = None

    def on_it(self) -> bool:
        """Whether the caller is the engine's thread."""
        return threading.get_ident() == self.ident

    def answering_at(self, now: float) -> float:
        """`now` when the thread is idle, else when its running call began: a heartbeat
        stamped with it goes silent while one call runs too long (a hung worker)."""
        began = self.began
        return now if began is None else min(now, began)

    def close(self) -> None:
        """Wait for the call running now, then end the thread."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
