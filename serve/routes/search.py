"""Search by photo: `POST /search` with a photo as the body (JPEG, PNG or WebP), the same
ranking parameters as `recommend`; `fashionrec recommend --image PATH` over HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from engine.application.documents import plain
from engine.errors import ConfigError
from serve.dependencies import Held, Ranking, search_slot, searcher

router = APIRouter(tags=["search"])


@router.post("/search", dependencies=[Depends(searcher)])
async def search(request: Request, app: Held, query: Ranking) -> dict[str, Any]:
    """Items like the photo sent as the body: every term of each, as `recommend --image`.
    415 for a body that is not an image type, 422 for one that does not decode, 503 (with
    Retry-After) while as many searches as the service takes at once run or wait."""
    photo = await request.body()
    if not photo:
        raise ConfigError("send the photo as the request body (Content-Type: image/jpeg)")
    params = query.params()
    async with search_slot(request):
        # the network runs off the event loop: other requests go on meanwhile
        found = await run_in_threadpool(app.search_photo, photo, params, "the uploaded photo")
    document: dict[str, Any] = plain(found)
    return document
