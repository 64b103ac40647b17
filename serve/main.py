"""The service's application factory: the JSON API and the page over one home.

One process owns one application (engine/application.py: the store, the event log, the
taxonomy, the rerank's table) for its lifetime. Every endpoint is `async def` and calls the
(blocking, quick) engine one request at a time, as the command line's commands are: on the
event loop's thread over a home on this machine's disk, on a thread of its own over a
server that may make it wait (serve/enginethread.py). Qdrant Edge holds the interpreter's
lock while it searches, so more threads would add waiting, not speed; processes answer
side by side (serve/workers.py). A search by photo runs its network, and an ingest its
run, in threads of their own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from engine.application import Application
from engine.errors import ConfigError
from engine.settings import API_KEY_ENV, Settings
from ingest.photos import PhotoNetworks
from ingest.runs import Ingester
from serve import errors
from serve.dependencies import Access, Searches
from serve.enginethread import EngineThread
from serve.guard import Guard, TrustedHosts
from serve.routes import ingest, items, page, purchases, search, service, users
from serve.routes.page import STATIC

SEARCH_SLOTS: Final = 4  # photo searches at once: one runs the network, the others wait
LOOPBACK: Final = ("127.0.0.1", "localhost", "::1")  # addresses `serve --host` may bind
LOOPBACK_NAMES: Final = ("127.0.0.1", "localhost", "[::1]")  # as a Host header names them


LOG = logging.getLogger("fashionrec.serve")


def loopback_hosts(host: str) -> list[str] | None:
    """The Host headers a service bound to `host` answers: for a loopback address only
    loopback names (a page whose DNS name was rebound to 127.0.0.1 is refused); None, any
    host, otherwise."""
    return list(LOOPBACK_NAMES) if host in LOOPBACK else None


def create_app(
    settings: Settings,
    *,
    private: bool = False,
    api_key: str | None = None,
    application: Application | None = None,
    hosts: Sequence[str] | None = None,
    background: Callable[[EngineThread], Coroutine[Any, Any, None]] | None = None,
    warm_search: bool = False,
    search_slots: int = SEARCH_SLOTS,
    private_search: bool = False,
    calls_inline: bool | None = None,
) -> FastAPI:
    """The application serving the home (or server) the settings name.

    api_key: None reads FASHIONREC_API_KEY ("" means none); with a key every write needs
    it, and with `private` every read but the page, /health and the docs. An `application`
    given is used as it is (its owner closes it); otherwise the home is opened when the
    service starts and closed when it stops, on its event loop. `hosts`: the Host headers
    answered (None: any; see loopback_hosts). `background`: a task run on the event loop
    while the service runs, given the engine's thread (a worker keeping its copy current:
    serve/workers.py).
    `warm_search`: load the search network as the service starts, in a thread (`/health`
    says when it is ready). `search_slots`: photo searches at once, running or waiting
    (more: 503 with Retry-After); `private_search`: POST /search needs the key too.
    `calls_inline`: run the engine's calls on the event loop (None: over a home on this
    machine's disk only; serve/enginethread.py).
    """
    key = os.environ.get(API_KEY_ENV, "") if api_key is None else api_key
    if private and not key:
        raise ConfigError(f"--private needs an API key: set {API_KEY_ENV}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        held = application or Application.open(settings, serving=True)
        app.state.application = held
        # over the network (a Qdrant server, PostgreSQL) the calls leave the event loop
        local = settings.qdrant_url is None and settings.events_url is None
        inline = local if calls_inline is None else calls_inline
        app.state.engine = engine = EngineThread(inline=inline)
        app.state.ingester = Ingester(held, status_of=errors.status_of)
        if held.networks is None:  # loaded by the first search by photo, or warmed below
            held.networks = PhotoNetworks(on_note=lambda text: LOG.info("search: %s", text))
        app.state.search = Searches(asyncio.Semaphore(search_slots) if search_slots else None)
        if warm_search:
            threading.Thread(target=app.state.search.warm, args=(held,), daemon=True).start()
        task = None if background is None else asyncio.create_task(background(engine))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            await asyncio.to_thread(engine.close)
            if application is None:
                held.close()

    app = FastAPI(
        title="fashionrec",
        summary="Trend-aware fashion recommendations over one store and its event log.",
        version="0.1.0",
        lifespan=lifespan,
        responses=errors.ERRORS,
    )
    app.state.access = Access(key.encode() if key else None, private, private_search)
    if hosts is not None:
        app.add_middleware(TrustedHosts, hosts=list(hosts))
    app.add_middleware(Guard)  # added last, outermost: it logs every request, refused or not
    errors.install(app)
    for routes in (page, service, items, search, users, purchases, ingest):
        app.include_router(routes.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
