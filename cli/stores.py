"""`fashionrec stores`: generate or import the stores, and list them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.common import HomeOption, UrlOption, console, fail, settings, world
from engine.csvrows import csv_rows
from engine.geo import DEFAULT_REGION, Location, Region
from engine.shops import Store, generate_stores

app = typer.Typer(
    help="Stores that sell the catalog, with their coordinates.", no_args_is_help=True
)


def _print(stores: list[Store]) -> None:
    table = Table("id", "name", "lat", "lon", title="stores")
    for s in stores:
        table.add_row(s.id, s.name, f"{s.location.lat:.5f}", f"{s.location.lon:.5f}")
    console.print(table)


@app.command("generate")
def generate(
    count: Annotated[int, typer.Option(help="How many stores.")] = 5,
    region: Annotated[
        str, typer.Option(help="LAT_MIN,LAT_MAX,LON_MIN,LON_MAX (default: Greater Paris).")
    ] = DEFAULT_REGION.text(),
    seed: Annotated[int, typer.Option(help="Seed of positions and item assignment.")] = 42,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Generate stores at seeded positions in a region and give every item a store."""
    if not 1 <= count <= 10_000:
        raise fail(f"--count must be between 1 and 10000, got {count}")
    area = Region.parse(region)
    stores = generate_stores(count, area, seed)
    from engine.shoppers import set_stores

    with world(settings(home, qdrant_url)) as (store, log):
        placed = set_stores(store, log, stores, area, seed)
    _print(stores)
    console.print(f"{placed} item(s) placed in a store (per-category round-robin, seed {seed})")


def read_stores(path: Path) -> list[Store]:
    """Stores from a CSV with columns id,lat,lon[,name]; one-line errors naming the row."""
    if not path.is_file():
        raise fail(f"{path}: no such file")
    stores: list[Store] = []
    for number, row in csv_rows(path, ("id", "lat", "lon"), ("name",)):
        if row is None:
            raise fail(f"{path}:{number}: wrong number of fields")
        try:
            lat, lon = float(row["lat"]), float(row["lon"])
        except ValueError:
            raise fail(f"{path}:{number}: lat/lon are not numbers") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise fail(f"{path}:{number}: lat/lon out of range")
        store_id = row["id"].strip()
        if not store_id or any(s.id == store_id for s in stores):
            raise fail(f"{path}:{number}: empty or duplicate store id {store_id!r}")
        name = (row.get("name") or "").strip() or store_id
        stores.append(Store(store_id, name, Location(lat, lon)))
    if not stores:
        raise fail(f"{path}: no stores")
    return stores


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="CSV with columns id,lat,lon[,name].")],
    seed: Annotated[int, typer.Option(help="Seed of the item assignment.")] = 42,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Import stores from a CSV and give every item a store."""
    stores = read_stores(path)
    from engine.shoppers import set_stores

    with world(settings(home, qdrant_url)) as (store, log):
        placed = set_stores(store, log, stores, Region.around([s.location for s in stores]), seed)
    _print(stores)
    console.print(f"{placed} item(s) placed in a store")


@app.command("list")
def list_(home: HomeOption = None, qdrant_url: UrlOption = None) -> None:
    """List the stores."""
    with world(settings(home, qdrant_url)) as (_, log):
        stores = log.stores()
    if not stores:
        console.print("no stores: run `fashionrec stores generate`")
        return
    _print(stores)
