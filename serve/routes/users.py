"""Users: who they are, what they bought, and what to recommend them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from engine.application.documents import plain
from serve.dependencies import Engine, Held, Ranking, reader

router = APIRouter(prefix="/users", tags=["users"], dependencies=[Depends(reader)])


@router.get("")
async def users(
    app: Held, run: Engine, limit: Annotated[int, Query(ge=1, le=5000)] = 200
) -> dict[str, Any]:
    """Some user ids and how many there are."""
    found: dict[str, Any] = plain(await run(app.users, limit))
    return found


@router.get("/{user_id:path}/recommendations")
async def recommendations(user_id: str, app: Held, run: Engine, query: Ranking) -> dict[str, Any]:
    """`recommend --user`: top-k after each purchase and one merged list."""
    document: dict[str, Any] = plain(await run(app.for_user, user_id, query.for_user()))
    return document


@router.get("/{user_id:path}")
async def user(user_id: str, app: Held, run: Engine) -> dict[str, Any]:
    """Gender, trendiness, home and purchases (with store and km from home)."""
    detail: dict[str, Any] = plain(await run(app.user, user_id))
    return detail
