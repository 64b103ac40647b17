"""Purchases: posted live by a till, or a whole purchase log imported; both through the one
recording path (first-time shoppers created, each event once, popularity synced at once)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from engine.application.documents import plain
from engine.errors import ConfigError
from engine.shoppers.purchaselog import parse_log
from engine.shoppers.purchases import time_zone
from serve.dependencies import Engine, Held, writer
from serve.models import parse_purchases, purchases_body_schema

SOURCE: Final = "api"  # what the event log records as the source of purchases posted here
IMPORT_S: Final = 600.0  # a whole log may take this long (600K rows: 25 s) before it is hung

router = APIRouter(prefix="/purchases", tags=["users"], dependencies=[Depends(writer)])


@router.post("", status_code=201, openapi_extra={"requestBody": purchases_body_schema()})
async def purchases(request: Request, app: Held, run: Engine) -> dict[str, Any]:
    """Record one purchase or a list (application/json), all or nothing; a first-time
    shopper is created (gender from the item unless given); popularity is synced at once."""
    try:
        data = json.loads(await request.body())
    except ValueError as exc:
        raise ConfigError(f"the body is not JSON ({exc})") from None
    done = await run(app.record_purchases, parse_purchases(data), SOURCE)
    return {
        "recorded": plain(done.purchases),
        "already": done.already,
        "new_users": plain(done.new_users),
        "popularity": {k: float(v) for k, v in done.popularity.items()},
    }


@router.post(
    "/import",
    status_code=201,
    openapi_extra={
        "requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}, "required": True}
    },
)
async def purchases_import(
    request: Request,
    app: Held,
    run: Engine,
    name: Annotated[str, Query(description="The file's name, for messages.")] = "upload.csv",
    timezone: Annotated[
        str | None, Query(description="Read times without a zone in this one.")
    ] = None,
) -> dict[str, Any]:
    """`purchases import`: a whole CSV log (text/csv body), all rows or none; unknown
    users are created; rows already in the log or repeated are counted, left out.
    Up to 64 MB."""
    zone = None if timezone is None else time_zone(timezone)
    body = await request.body()
    # up to 64 MB of CSV read in a thread: the event loop goes on answering meanwhile
    parsed = await run_in_threadpool(parse_log, Path(Path(name).name), body, zone)
    done = await run.patient(IMPORT_S, app.import_parsed, parsed)
    summary: dict[str, Any] = plain(done)
    return summary
