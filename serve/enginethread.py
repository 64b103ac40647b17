"""The engine's own thread: every call a request makes into the application runs there, one
at a time (the engine is written for one caller, as the command line is), so the event loop
only reads and writes connections. A database that makes a call wait (PostgreSQL
restarting, a busy SQLite file) stalls the calls behind it, never the loop: /health, the
heartbeat and every other connection go on."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class EngineThread:
    """One thread that runs the application's calls in the order they are made."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="engine")
        self.began: float | None = None  # when the call running now began (time.time())
        self.ident: int | None = None  # the thread's id, once it has run a call

    async def __call__(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """The call's result, run on the engine's thread (its exception raised here)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.pool, functools.partial(self._timed, call, *args, **kwargs)
        )

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
        self.pool.shutdown(wait=True, cancel_futures=True)
