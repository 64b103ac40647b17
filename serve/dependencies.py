"""What the routes depend on: the application the service holds, its ingest runs, the API key
(an HTTPBearer dependency: writes need it, and reads too with --private) and the ranking
query, read from the query parameters."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from engine.application import Application
from engine.errors import FashionrecError, one_line
from engine.recommend.query import RankingQuery
from ingest.runs import Ingester
from serve.enginethread import EngineThread

LOG = logging.getLogger("fashionrec.serve")


@dataclass(frozen=True)
class Access:
    """Who may do what: the API key (None: anyone may write), whether reads need it, and
    whether a search by photo does (a network runs for each)."""

    key: bytes | None
    private: bool
    private_search: bool = False


class Searches:
    """Searches by photo: how many may run or wait at once (None: no bound), and whether
    the network is loaded (`warm`, in a thread as the service starts)."""

    def __init__(self, slots: asyncio.Semaphore | None) -> None:
        self.slots = slots
        self.state = "loaded by the first search"

    def warm(self, app: Application) -> None:
        """Load the search network now; its state says how that went."""
        self.state = "loading"
        try:
            backbone = app.warm_search()
            self.state = "ready" if backbone else "loaded by the first search"
        except FashionrecError as exc:
            self.state = f"unavailable: {one_line(exc)}"
        except Exception:  # the service goes on; a search says what fails
            LOG.exception("search: the network did not load")
            self.state = "unavailable: the server log has the details"


async def application_of(request: Request) -> Application:
    """The application the service holds."""
    held: Application = request.app.state.application
    return held


async def engine_of(request: Request) -> EngineThread:
    """The thread the application's calls run on (serve/enginethread.py); 503 with
    Retry-After while as many calls as it takes are running or queued there."""
    held: EngineThread = request.app.state.engine
    if held.full():
        raise HTTPException(
            503,
            f"the service is busy ({held.waiting} requests waiting, for the event log or the "
            "store to answer); try again in a second",
            headers={"Retry-After": "1"},
        )
    return held


async def ingester_of(request: Request) -> Ingester:
    """The service's ingest runs."""
    held: Ingester = request.app.state.ingester
    return held


Held = Annotated[Application, Depends(application_of)]
Engine = Annotated[EngineThread, Depends(engine_of)]
Ingests = Annotated[Ingester, Depends(ingester_of)]

bearer = HTTPBearer(
    auto_error=False,
    description="The service's API key ($FASHIONREC_API_KEY): writes need it, and so do reads "
    "when the service runs with --private.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _check(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    """401 without a bearer key, 403 with a wrong one (compared in constant time)."""
    access: Access = request.app.state.access
    if access.key is None:
        return
    if credentials is None or not credentials.credentials.strip():
        raise HTTPException(
            401,
            f"{request.method} {request.url.path} needs Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(credentials.credentials.strip().encode(), access.key):
        raise HTTPException(403, "wrong API key")


async def writer(request: Request, credentials: Credentials) -> None:
    """A write: the API key, when the service has one."""
    _check(request, credentials)


async def reader(request: Request, credentials: Credentials) -> None:
    """A read: the API key too, when the service runs with --private."""
    access: Access = request.app.state.access
    if access.private:
        _check(request, credentials)


async def searcher(request: Request, credentials: Credentials) -> None:
    """A search by photo: a read, and the key too where the operator asks for it."""
    access: Access = request.app.state.access
    if access.private or access.private_search:
        _check(request, credentials)


@asynccontextmanager
async def search_slot(request: Request) -> AsyncIterator[None]:
    """A place among the searches by photo running or waiting; 503 with Retry-After when
    every place is taken (a network runs for each: the service stays answering)."""
    searches: Searches = request.app.state.search
    if searches.slots is None:
        yield
        return
    if searches.slots.locked():
        raise HTTPException(
            503,
            "too many searches by photo at once; try again in a second",
            headers={"Retry-After": "1"},
        )
    async with searches.slots:
        yield


# the ranking query's fields, as query parameters (engine/recommend/query.py)
Ranking = Annotated[RankingQuery, Query()]
