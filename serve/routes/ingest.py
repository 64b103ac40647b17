"""Ingest jobs: a catalog on this machine's files embedded in the background while the
service goes on serving (`fashionrec ingest --api URL`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from engine.errors import NotFoundError
from ingest.job import IngestJob
from serve.dependencies import Engine, Ingests, reader, writer
from serve.models import IngestIn

router = APIRouter(prefix="/ingest", tags=["ingest"])


@router.post("", status_code=202, dependencies=[Depends(writer)])
async def ingest(body: IngestIn, runs: Ingests, run: Engine) -> dict[str, Any]:
    """`ingest PATH`: embed a catalog on this machine's files, in the background; the
    answer's `url` follows it. 409 while another ingest runs."""
    started = await run(runs.start, IngestJob.from_json(body.model_dump()))
    return {**started.to_json(), "url": f"/ingest/{started.id}"}


@router.get("/{run_id}", dependencies=[Depends(reader)])
async def ingest_state(run_id: str, runs: Ingests, run: Engine) -> dict[str, Any]:
    """An ingest's stage, items done of the total, and its outcome or error."""
    found = await run(runs.report, run_id)
    if found is None:
        raise NotFoundError(f"unknown ingest {run_id!r}")
    return found
