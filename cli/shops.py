"""`fashionrec shops` (once `stores`, still accepted): generate or import the shops, and list
them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.common import HomeOption, UrlOption, console, home_of, settings
from engine.shops.shops import generate_shops, read_shops
from engine.vocabulary.geo import DEFAULT_REGION, Region
from engine.vocabulary.records import Shop

app = typer.Typer(help="Shops that sell the catalog, with their coordinates.", no_args_is_help=True)

ReplaceOption = Annotated[
    bool,
    typer.Option(
        "--replace",
        help="Replace shops that items are in: those items move to the new shops "
        "(refused without it; never allowed when purchases name the shops).",
    ),
]


def _print(shops: list[Shop]) -> None:
    table = Table("id", "name", "lat", "lon", title="shops")
    for s in shops:
        table.add_row(s.id, s.name, f"{s.location.lat:.5f}", f"{s.location.lon:.5f}")
    console.print(table)


@app.command("generate")
def generate(
    count: Annotated[int, typer.Option(help="How many shops.")] = 5,
    region: Annotated[
        str, typer.Option(help="LAT_MIN,LAT_MAX,LON_MIN,LON_MAX (default: Greater Paris).")
    ] = DEFAULT_REGION.text(),
    seed: Annotated[int, typer.Option(help="Seed of positions and item assignment.")] = 42,
    replace: ReplaceOption = False,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Generate shops at seeded positions in a region and give every item a shop.

    Shops that items are in are replaced only with --replace (those items move)."""
    area = Region.parse(region)
    shops = generate_shops(count, area, seed)
    from engine.shops.placement import set_shops

    with home_of(settings(home, qdrant_url)) as app:
        placed = set_shops(app.store, app.log, shops, area, seed, replace=replace)
    _print(shops)
    console.print(f"{placed} item(s) placed in a shop (per-category round-robin, seed {seed})")


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="CSV with columns id,lat,lon[,name].")],
    seed: Annotated[int, typer.Option(help="Seed of the item assignment.")] = 42,
    replace: ReplaceOption = False,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Import shops from a CSV and give every item a shop.

    Shops that items are in are replaced only with --replace (those items move)."""
    shops = read_shops(path)
    from engine.shops.placement import set_shops

    with home_of(settings(home, qdrant_url)) as app:
        area = Region.around([s.location for s in shops])
        placed = set_shops(app.store, app.log, shops, area, seed, replace=replace)
    _print(shops)
    console.print(f"{placed} item(s) placed in a shop")


@app.command("list")
def list_(home: HomeOption = None, qdrant_url: UrlOption = None) -> None:
    """List the shops."""
    with home_of(settings(home, qdrant_url)) as app:
        shops = app.log.shops()
    if not shops:
        console.print("no shops: run `fashionrec shops generate`")
        return
    _print(shops)
