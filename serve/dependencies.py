"""What the routes depend on: the application the service holds, its ingest runs, the API key
(an HTTPBearer dependency: writes need it, and reads too with --private) and the ranking
query, read from the query parameters."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from engine.application import Application
from engine.recommend.query import RankingQuery
from ingest.runs import Ingester


@dataclass(frozen=True)
class Access:
    """Who may do what: the API key (None: anyone may write), and whether reads need it."""

    key: bytes | None
    private: bool


async def application_of(request: Request) -> Application:
    """The application the service holds."""
    held: Application = request.app.state.application
    return held


async def ingester_of(request: Request) -> Ingester:
    """The service's ingest runs."""
    held: Ingester = request.app.state.ingester
    return held


Held = Annotated[Application, Depends(application_of)]
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


# the ranking query's fields, as query parameters (engine/recommend/query.py)
Ranking = Annotated[RankingQuery, Query()]
