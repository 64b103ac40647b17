"""Shops: generated in a region or read from a CSV, and the seeded round-robin of products."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import numpy as np

from engine.csvrows import csv_rows
from engine.errors import ShopsError
from engine.vocabulary.geo import Location, Region
from engine.vocabulary.records import Shop

CSV_REQUIRED: Final = ("id", "lat", "lon")
CSV_OPTIONAL: Final = ("name",)
MAX_GENERATED: Final = 10_000


def generate_shops(count: int, region: Region, seed: int = 42) -> list[Shop]:
    """`count` shops at seeded uniform positions inside the region."""
    if not 1 <= count <= MAX_GENERATED:
        raise ShopsError(f"--count must be between 1 and {MAX_GENERATED}, got {count}")
    rng = np.random.default_rng([seed, 0])  # a stream of its own: never the simulation's
    lats = rng.uniform(region.lat_min, region.lat_max, count)
    lons = rng.uniform(region.lon_min, region.lon_max, count)
    return [
        Shop(f"S{i + 1:02d}", f"Shop {i + 1}", Location(round(lat, 6), round(lon, 6)))
        for i, (lat, lon) in enumerate(zip(lats, lons, strict=True))
    ]


def read_shops(path: Path) -> list[Shop]:
    """Shops from a CSV with columns id,lat,lon[,name]; ShopsError naming the row."""
    if not path.is_file():
        raise ShopsError(f"{path}: no such file")
    shops: list[Shop] = []
    for number, row in csv_rows(path, CSV_REQUIRED, CSV_OPTIONAL, ShopsError):
        if row is None:
            raise ShopsError(f"{path}:{number}: wrong number of fields")
        try:
            lat, lon = float(row["lat"]), float(row["lon"])
        except ValueError:
            raise ShopsError(f"{path}:{number}: lat/lon are not numbers") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ShopsError(f"{path}:{number}: lat/lon out of range")
        shop_id = row["id"].strip()
        if not shop_id or any(s.id == shop_id for s in shops):
            raise ShopsError(f"{path}:{number}: empty or duplicate shop id {shop_id!r}")
        name = (row.get("name") or "").strip() or shop_id
        shops.append(Shop(shop_id, name, Location(lat, lon)))
    if not shops:
        raise ShopsError(f"{path}: no shops")
    return shops


def write_shops(shops: Sequence[Shop], path: Path) -> None:
    """Write shops as the CSV `read_shops` reads (id,lat,lon,name), atomically."""
    partial = path.with_name(path.name + ".part")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow([*CSV_REQUIRED, *CSV_OPTIONAL])
            for s in shops:
                writer.writerow([s.id, repr(s.location.lat), repr(s.location.lon), s.name])
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ShopsError(f"{path}: cannot write the shops ({exc.strerror or exc})") from None


def _order_key(seed: int, product_id: str) -> bytes:
    return hashlib.sha256(f"{seed}:{product_id}".encode()).digest()


def assign_shops(
    products: Mapping[str, Sequence[str]],
    shops: Sequence[str],
    seed: int = 42,
    loads: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, str]:
    """Shop of each product: per category, a round-robin over the shops in a seeded order.

    products maps a category to its products still without a shop. Products are
    taken in the order of a seeded hash of their id (never file order); each goes
    to the shop with the fewest products of that category so far (ties: shop
    order), which from empty `loads` is exactly a round-robin. All views of a
    product share its shop.
    """
    ordered = sorted(shops)
    assignment: dict[str, str] = {}
    for category, ids in products.items():
        load = {s: (loads or {}).get(category, {}).get(s, 0) for s in ordered}
        for product in sorted(set(ids), key=lambda p: _order_key(seed, p)):
            shop = min(ordered, key=lambda s: (load[s], ordered.index(s)))
            assignment[product] = shop
            load[shop] += 1
    return assignment
