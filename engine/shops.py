"""Stores: generation in a region, and the seeded per-category round-robin of products."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.geo import Location, Region


@dataclass(frozen=True)
class Store:
    """A shop that sells catalog products."""

    id: str
    name: str
    location: Location


def generate_stores(count: int, region: Region, seed: int = 42) -> list[Store]:
    """`count` stores at seeded uniform positions inside the region."""
    rng = np.random.default_rng([seed, 0])  # a stream of its own: never the simulation's
    lats = rng.uniform(region.lat_min, region.lat_max, count)
    lons = rng.uniform(region.lon_min, region.lon_max, count)
    return [
        Store(f"S{i + 1:02d}", f"Store {i + 1}", Location(round(lat, 6), round(lon, 6)))
        for i, (lat, lon) in enumerate(zip(lats, lons, strict=True))
    ]


def _order_key(seed: int, product_id: str) -> bytes:
    return hashlib.sha256(f"{seed}:{product_id}".encode()).digest()


def assign_stores(
    products: Mapping[str, Sequence[str]],
    stores: Sequence[str],
    seed: int = 42,
    loads: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, str]:
    """Store of each product: per category, a round-robin over the stores in a seeded order.

    products maps a category to its products still without a store. Products are
    taken in the order of a seeded hash of their id (never file order); each goes
    to the store with the fewest products of that category so far (ties: store
    order), which from empty `loads` is exactly a round-robin. All views of a
    product share its store.
    """
    ordered = sorted(stores)
    assignment: dict[str, str] = {}
    for category, ids in products.items():
        load = {s: (loads or {}).get(category, {}).get(s, 0) for s in ordered}
        for product in sorted(set(ids), key=lambda p: _order_key(seed, p)):
            store = min(ordered, key=lambda s: (load[s], ordered.index(s)))
            assignment[product] = store
            load[store] += 1
    return assignment
