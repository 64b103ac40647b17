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
        self.allowed_s = 0.0  # how long the running call may take before it counts as hung
        self.turned = time.time()  # the event loop's latest turn (see `turning`)
        # the thread the calls run on (for a thread of its own: once it has run one)
        self.ident: int | None = threading.get_ident() if inline else None
        self.waiting = 0  # calls running or queued on the thread (counted on the loop's)

    async def __call__(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """The call's result, run on the engine's thread (its exception raised here)."""
        return await self.patient(0.0, call, *args, **kwargs)

    async def patient(
        self, allowed_s: float, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """As a call, for one that may rightly run `allowed_s` (a whole purchase log
        imported): the heartbeat goes on meanwhile, so it is not taken for a hung one."""
        timed = functools.partial(self._timed, allowed_s, call, *args, **kwargs)
        if self.pool is None:
            return timed()
        loop = asyncio.get_running_loop()
        self.waiting += 1
        try:
            return await loop.run_in_executor(self.pool, timed)
        finally:
            self.waiting -= 1

    def full(self) -> bool:
        """Whether MAX_WAITING calls are already running or queued (a database that
        makes each wait): a request is better answered 503 now than after them all."""
        return self.waiting >= MAX_WAITING

    def _timed(
        self, allowed_s: float, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        self.ident = threading.get_ident()
        self.began, self.allowed_s = time.time(), allowed_s
        try:
            return call(*args, **kwargs)
        finally:
            self.began, self.allowed_s = None, 0.0

    def on_it(self) -> bool:
        """Whether the caller is the engine's thread."""
        return threading.get_ident() == self.ident

    async def turning(self, every_s: float) -> None:
        """Note each turn of the event loop (every `every_s`) until cancelled."""
        while True:
            self.turned = time.time()
            await asyncio.sleep(every_s)

    def answering_at(self, now: float) -> float:
        """When the worker last answered, for its heartbeat: `now` when idle, else when the
        running call began (past its allowance), and never later than the event loop's
        latest turn (`turning`), but for a patient call that the loop itself runs. A
        heartbeat stamped with it goes silent while one call or the loop is stuck."""
        began, allowed = self.began, self.allowed_s
        if began is None:
            return min(now, self.turned)
        called = min(now, began + allowed)
        if allowed and self.pool is None:  # the loop runs it: its turns wait, rightly
            return called
        return min(called, self.turned)

    def close(self) -> None:
        """Wait for the call running now, then end the thread."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
