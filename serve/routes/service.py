"""The service itself: liveness (open to all) and what the home holds."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Depends

from engine.application.documents import plain
from serve.dependencies import Held, reader

router = APIRouter(tags=["service"])


@router.get("/health")
async def health(app: Held) -> dict[str, Any]:
    """200 while the store answers (503 when it does not), with the answering process's id
    (a service with several workers answers from any)."""
    app.store.vector_dims()
    return {"status": "ok", "worker": os.getpid()}


@router.get("/catalog", dependencies=[Depends(reader)])
async def catalog(app: Held) -> dict[str, Any]:
    """Counts, vector spaces (size, weights), taxonomy, genders, categories, stores."""
    summary: dict[str, Any] = plain(app.summary())
    return summary
