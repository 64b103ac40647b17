"""Items: some of the catalog, one item, its photo or the network's input, items like it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, Response

from engine.application.documents import plain
from serve import public
from serve.dependencies import Engine, Held, Ranking, reader, writer
from serve.models import ItemChangesIn

router = APIRouter(prefix="/items", tags=["items"], dependencies=[Depends(reader)])
CACHE = {"Cache-Control": "max-age=300"}


@router.get("")
async def items(
    app: Held,
    run: Engine,
    gender: str | None = None,
    category: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Some items (id, product, gender, category, store, popularity) and how many match."""
    found: dict[str, Any] = plain(await run(app.items, gender, category, limit))
    return found


@router.delete("/{item_id:path}", dependencies=[Depends(writer)])
async def delete(item_id: str, app: Held, run: Engine) -> dict[str, Any]:
    """`items delete ID`: the item leaves the catalog (its purchases stay in the log)."""
    return {"deleted": await run(app.delete_items, [item_id])}


@router.patch("/{item_id:path}", dependencies=[Depends(writer)])
async def update(item_id: str, body: ItemChangesIn, app: Held, run: Engine) -> dict[str, Any]:
    """`items update ID`: in or out of stock, price, name, link; answers the item."""
    return public.item(await run(app.update_item, item_id, body.changes()))


@router.get("/{item_id:path}/similar")
async def similar(item_id: str, app: Held, run: Engine, query: Ranking) -> dict[str, Any]:
    """`recommend --item`: lists of recommendations with every term, the weights used,
    the vectors' provenance and the taxonomy."""
    document: dict[str, Any] = plain(await run(app.similar, item_id, query.params()))
    return document


@router.get("/{item_id:path}/image", response_class=FileResponse)
async def image(
    item_id: str,
    app: Held,
    run: Engine,
    masked: Annotated[
        bool,
        Query(
            description="The 224×224 PNG the CNN saw, made again from the recipe recorded at "
            "ingest: framing, and the mask with the labels it removed (X-Masked: false when "
            "no mask was applied)."
        ),
    ] = False,
) -> Response:
    """The item's photo as stored (JPEG, PNG, …), or with masked=1 the network's input."""
    if masked:
        made = await run(app.network_input, item_id)
        headers = {**CACHE, "X-Masked": "true" if made.masked else "false"}
        return Response(made.png, media_type="image/png", headers=headers)
    photo = await run(app.photo, item_id)
    return FileResponse(photo.path, media_type=photo.media_type, headers=CACHE)


@router.get("/{item_id:path}")
async def item(item_id: str, app: Held, run: Engine) -> dict[str, Any]:
    """The item's payload (no path of this machine: `image_url` serves the photo), current
    popularity and store (id, name, location)."""
    return public.item(await run(app.item, item_id))
