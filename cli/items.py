"""`fashionrec items`: a shop's catalog day to day — items that sell out, change price, or go."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.common import ApiOption, HomeOption, UrlOption, console, home_of, settings
from engine.application.documents import plain
from engine.catalog.items import ItemChanges

app = typer.Typer(help="Change or remove catalog items.", no_args_is_help=True)


@app.command("delete")
def delete_command(
    item_ids: Annotated[list[str], typer.Argument(help="Item ids.", metavar="ID...")],
    api: ApiOption = None,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Remove items from the catalog, all or none; their purchases stay in the log."""
    if api is not None:
        from cli.remote import remote_delete

        removed = remote_delete(api, item_ids)
    else:
        with home_of(settings(home, qdrant_url)) as held:
            removed = held.delete_items(item_ids)
    console.print(f"deleted {removed} item(s)")


@app.command("update")
def update_command(
    item_id: Annotated[str, typer.Argument(help="Item id.", metavar="ID")],
    in_stock: Annotated[
        bool | None,
        typer.Option(
            "--in-stock/--out-of-stock",
            help="In stock, or out of stock (left out of recommendations).",
            show_default=False,
        ),
    ] = None,
    price: Annotated[float | None, typer.Option(help="Its price.")] = None,
    name: Annotated[str | None, typer.Option(help="Its name in the shop.")] = None,
    url: Annotated[str | None, typer.Option(help="Its product page (http or https).")] = None,
    api: ApiOption = None,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Mark an item in or out of stock, or give it a price, name or link."""
    changes = ItemChanges(in_stock, price, name, url)
    if api is not None:
        from cli.remote import remote_update

        changes.payload()  # a mistake stops here, in the same words as without --api
        asked = {"in_stock": in_stock, "price": price, "name": name, "url": url}
        payload = remote_update(api, item_id, {k: v for k, v in asked.items() if v is not None})
        payload = dict(payload.get("payload") or {})
    else:
        with home_of(settings(home, qdrant_url)) as held:
            payload = held.update_item(item_id, changes).payload
    shown = {k: payload.get(k) for k in ("name", "price", "url", "in_stock")}
    console.print(f"{item_id}: {json.dumps(plain(shown))}")
