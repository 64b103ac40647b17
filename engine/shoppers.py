"""The shopper world: keeps the event log and the vector store's payloads in step.

Stores and items: every item gets a store (the manifest's, or a seeded per-category
round-robin of its product). Popularity: the payload carries initial popularity plus
purchases from the log, synced in batches after every command that adds purchases.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from engine.errors import FashionrecError
from engine.eventlog import EventLog
from engine.geo import DEFAULT_REGION, Region
from engine.shops import Store, assign_stores, generate_stores
from engine.simulation import (
    CatalogView,
    Simulation,
    SimulationConfig,
    initial_popularity,
    simulate,
)
from engine.vectorstore.base import Record, VectorStore, point_id

ITEM_FIELDS = (
    "item_id", "product_id", "gender", "category", "store_id", "store_origin", "store_location"
)  # fmt: skip
ROUND_ROBIN = "round-robin"
MANIFEST = "manifest"
DEFAULT_STORES = 5


def catalog_records(store: VectorStore) -> list[Record]:
    """Every item's identity and store fields (no vectors)."""
    records = list(store.scroll(ITEM_FIELDS))
    if not records:
        raise FashionrecError("the vector store is empty; run `fashionrec ingest PATH` first")
    return records


def place_items(store: VectorStore, log: EventLog) -> int:
    """Give every item its store's id and location; returns how many items were (re)written.

    Items with a manifest store keep it. All views of a product share a store: a
    product keeps its store while that store exists; the others join, in a seeded
    order, the least-loaded store of their category (a round-robin from empty).
    Only items whose store or store location changes are written.
    """
    stores = {s.id: s for s in log.stores()}
    if not stores:
        return 0
    records = list(store.scroll(ITEM_FIELDS))
    by_product: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        if r.payload.get("store_origin") != MANIFEST:
            by_product[str(r.payload["product_id"])].append(r)
    chosen: dict[str, str] = {}
    loads: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    waiting: dict[str, list[str]] = defaultdict(list)
    for product, views in by_product.items():
        category = str(views[0].payload["category"])
        current = {str(v.payload.get("store_id")) for v in views}
        if len(current) == 1 and (kept := current.pop()) in stores:
            chosen[product] = kept
            loads[category][kept] += 1
        else:
            waiting[category].append(product)
    chosen |= assign_stores(waiting, list(stores), int(log.get("assign_seed") or 42), loads)

    changes: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in records:
        manifest = r.payload.get("store_origin") == MANIFEST
        store_id = str(r.payload["store_id"]) if manifest else chosen[str(r.payload["product_id"])]
        shop = stores.get(store_id)
        if shop is None:
            continue  # a manifest store the log does not know: it has no location
        if (r.payload.get("store_id"), r.payload.get("store_location")) == (
            store_id,
            shop.location.payload(),
        ):
            continue
        changes[(store_id, MANIFEST if manifest else ROUND_ROBIN)].append(r.id)
    for (store_id, origin), ids in changes.items():
        payload = {
            "store_id": store_id,
            "store_location": stores[store_id].location.payload(),
            "store_origin": origin,
        }
        for start in range(0, len(ids), 10_000):
            store.set_payload(ids[start : start + 10_000], payload)
    return sum(len(ids) for ids in changes.values())


def set_stores(store: VectorStore, log: EventLog, stores: Sequence[Store], region: Region,
               seed: int) -> int:  # fmt: skip
    """Replace the log's stores and re-place the items; refused once purchases exist."""
    if log.purchase_count() and {s.id for s in log.stores()} - {s.id for s in stores}:
        raise FashionrecError(
            "purchases refer to the current stores; keep their ids when replacing stores"
        )
    log.replace_stores(stores, region, seed)
    return place_items(store, log)


def ensure_stores(store: VectorStore, log: EventLog, seed: int = 42) -> list[Store]:
    """The log's stores, generating the default ones (and placing items) if there are none."""
    if not log.stores():
        set_stores(store, log, generate_stores(DEFAULT_STORES, DEFAULT_REGION, seed),
                   DEFAULT_REGION, seed)  # fmt: skip
    return log.stores()


def sync_popularity(
    store: VectorStore, log: EventLog, item_ids: Iterable[str] | None = None
) -> int:
    """Write the log's current popularity into the items' payloads; returns items written.

    With no item ids every catalog item is synced (`fashionrec popularity sync`).
    Items with the same value are written in one operation. The catalog-wide range
    is recorded in the log (meta `popularity_range`).
    """
    if item_ids is None:
        log.add_items(str(r.payload["item_id"]) for r in store.scroll(["item_id"]))
        values = log.popularity()
    else:
        values = log.popularity(sorted(set(item_ids)))
    groups: dict[int, list[str]] = defaultdict(list)
    for item, value in values.items():
        groups[value].append(point_id(item))
    for value, ids in groups.items():
        for start in range(0, len(ids), 10_000):
            store.set_payload(ids[start : start + 10_000], {"popularity": float(value)})
    low, high = log.popularity_range()
    log.put("popularity_range", f"{low},{high}")
    return len(values)


def normalised(value: float, low: float, high: float) -> float:
    """Min–max normalisation onto [0, 1] (0 when the range is empty)."""
    return 0.0 if high <= low else (value - low) / (high - low)


def run_simulation(
    store: VectorStore,
    log: EventLog,
    config: SimulationConfig,
    on_stage: Callable[[str], None] = lambda stage: None,
) -> Simulation:
    """Draw missing initial popularity, simulate users and purchases, log them, sync."""
    records = catalog_records(store)
    ensure_stores(store, log, config.seed)
    if any(r.payload.get("store_id") is None for r in records):
        records = catalog_records(store)  # stores were just placed
    region = log.region() or DEFAULT_REGION
    view = CatalogView.build(
        [str(r.payload["item_id"]) for r in records],
        [str(r.payload["product_id"]) for r in records],
        [str(r.payload["gender"]) for r in records],
        [str(r.payload.get("store_id") or "") for r in records],
    )
    on_stage("drawing initial popularity")
    with log.transaction():
        log.add_items(view.item_ids.tolist())
        missing = log.items_without_initial_popularity()
        log.set_initial_popularity(
            (item, initial_popularity(item, config.p_max, config.seed)) for item in missing
        )
    current = log.popularity()
    popularity = np.array([current[i] for i in view.item_ids.tolist()], dtype=np.int64)
    on_stage("simulating purchases")
    result = simulate(view, popularity, region, config, first_user=log.next_simulated_user())
    with log.transaction():
        log.add_users(result.users, source="simulated")
        log.add_purchases(result.purchases, source="simulated")
    on_stage("syncing popularity")
    sync_popularity(store, log, None if missing else [p.item_id for p in result.purchases])
    return result
