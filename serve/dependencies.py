"""What the routes depend on: the application the service holds, its ingest runs, the API key
(an HTTPBearer dependency: writes need it, and reads too with --private) and the ranking's
query parameters, read into the engine's Params."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from engine.application import Application
from engine.recommend.recommender import Params
from engine.recommend.scoring import preset_normalise, preset_weights
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


async def ranking(
    k: Annotated[int, Query(le=100, description="Recommendations per list.")] = 5,
    space: Annotated[
        str | None,
        Query(
            description="Vector space to search: a backbone's or a compact space (default: "
            "the store's default space, else resnet50)."
        ),
    ] = None,
    backbone: Annotated[
        str | None, Query(deprecated=True, description="The former name of `space`.")
    ] = None,
    candidates: Annotated[int, Query(le=1000, description="ANN candidates.")] = 100,
    preset: Annotated[str, Query(description="default (0.6/0.2/0.2) or paper.")] = "default",
    w_visual: Annotated[float | None, Query(description="w_v, visual similarity.")] = None,
    w_popularity: Annotated[float | None, Query(description="w_p, popularity.")] = None,
    w_category: Annotated[float | None, Query(description="w_c, category similarity.")] = None,
    gamma: Annotated[float | None, Query(description="γ of 1 − |NormPop − t|^γ.")] = None,
    w_distance: Annotated[float, Query(description="w_d of w_d·exp(−d/scale).")] = 0.0,
    distance_scale_km: Annotated[float, Query(description="scale of the distance term.")] = 5.0,
    max_km: Annotated[float | None, Query(description="Only stores within this many km.")] = None,
    rerank: Annotated[str, Query(description="client (numpy) or server (in Qdrant).")] = "client",
    diversity: Annotated[
        float, Query(description="λ of maximal marginal relevance; 0 ranks by relevance.")
    ] = 0.0,
    popularity: Annotated[
        str | None, Query(description="all-time or trending (default: the store's mode).")
    ] = None,
    normalise: Annotated[
        str | None,
        Query(description="NormPop: rank or minmax (default: rank; the paper preset: minmax)."),
    ] = None,
    category: Annotated[str | None, Query(description="Only items of this category.")] = None,
    min_price: Annotated[float | None, Query(description="Only items priced at least.")] = None,
    max_price: Annotated[float | None, Query(description="Only items priced at most.")] = None,
    in_stock: Annotated[
        bool, Query(description="Leave out items marked out of stock (false: list them).")
    ] = True,
) -> Params:
    """The options `recommend` takes, as query parameters (the engine validates them; the
    application fills in the home's defaults)."""
    weights = preset_weights(
        preset,
        visual=w_visual,
        popularity=w_popularity,
        category=w_category,
        gamma=gamma,
        distance=w_distance,
        distance_scale_km=distance_scale_km,
    )
    return Params(
        space=space or backbone,
        k=k,
        candidates=candidates,
        weights=weights,
        max_km=max_km,
        rerank=rerank,  # type: ignore[arg-type]  # validated below
        diversity=diversity,
        popularity=popularity,  # type: ignore[arg-type]  # validated below
        normalise=preset_normalise(preset, normalise),
        category=category,
        min_price=min_price,
        max_price=max_price,
        in_stock=in_stock,
    ).validate()


Ranking = Annotated[Params, Depends(ranking)]
