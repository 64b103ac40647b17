"""The service itself: liveness (open to all) and what the home holds."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from engine.application.documents import plain
from serve import public
from serve.dependencies import Engine, Held, reader, writer

router = APIRouter(tags=["service"])


@router.get("/health")
async def health(request: Request, app: Held) -> dict[str, Any]:
    """200 while the store answers (503 when it does not), with the answering process's id
    (a service with several workers answers from any) and whether search by photo is
    ready (its network loaded)."""
    app.store.vector_dims()
    return {"status": "ok", "worker": os.getpid(), "search": request.app.state.search.state}


@router.get("/catalog", dependencies=[Depends(reader)])
async def catalog(app: Held, run: Engine) -> dict[str, Any]:
    """Counts, vector spaces (size, weights), taxonomy, genders, categories, stores."""
    return public.summary(await run(app.summary))


@router.post("/tune", dependencies=[Depends(writer)])
async def tune(app: Held, space: str | None = None) -> dict[str, Any]:
    """`fashionrec tune`: fit the ranking's weights on the purchase log now and rank by them
    from the next request on, in every worker (422 when the log is too small to fit)."""
    profile: dict[str, Any] = plain(await run_in_threadpool(app.tune, space))
    return profile
