"""Search by photo: `POST /search` with a photo as the body (JPEG, PNG or WebP), the same
ranking parameters as `recommend`; `fashionrec recommend --image PATH` over HTTP."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from engine.application.documents import plain
from engine.errors import ConfigError
from engine.vocabulary.geo import Location
from serve.dependencies import Held, Ranking, reader

router = APIRouter(tags=["search"])


@router.post("/search", dependencies=[Depends(reader)])
async def search(
    request: Request,
    app: Held,
    params: Ranking,
    trendiness: Annotated[float, Query(description="t of the query.")] = 0.5,
    gender: Annotated[str | None, Query(description="Only items shown to this gender.")] = None,
    lat: Annotated[float | None, Query(description="Where distances start.")] = None,
    lon: Annotated[float | None, Query(description="(with lat)")] = None,
) -> dict[str, Any]:
    """Items like the photo sent as the body: every term of each, as `recommend --image`.
    415 for a body that is not an image type, 422 for one that does not decode."""
    photo = await request.body()
    if not photo:
        raise ConfigError("send the photo as the request body (Content-Type: image/jpeg)")
    if (lat is None) != (lon is None):
        raise ConfigError("give both lat and lon, or neither")
    at = None if lat is None else Location.parse(f"{lat},{lon}", "lat,lon")
    asked = replace(params, trendiness=trendiness, gender=gender, at=at)
    # the network runs off the event loop: other requests go on meanwhile
    found = await run_in_threadpool(app.search_photo, photo, asked, "the uploaded photo")
    document: dict[str, Any] = plain(found)
    return document
