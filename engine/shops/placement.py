"""Items placed in shops: every item gets a shop (the manifest's while it exists, else a
seeded per-category round-robin of its product, all views of a product together), and a
change of shops that would strand items is refused or moves them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Final

from engine.errors import NotFoundError, ShopsError
from engine.events.eventlog import EventLog
from engine.helpers import batched
from engine.shops.shops import assign_shops, generate_shops
from engine.vectorstore.base import Record, VectorStore
from engine.vocabulary.geo import DEFAULT_REGION, Region
from engine.vocabulary.records import Shop
from engine.vocabulary.schema import (
    CATEGORY,
    MANIFEST,
    PLACEMENT_FIELDS,
    PRODUCT_ID,
    ROUND_ROBIN,
    STORE_ID,
    STORE_LOCATION,
    STORE_ORIGIN,
)

DEFAULT_SHOPS: Final = 5
WRITE_BATCH: Final = 10_000  # points per payload write


def catalog_records(store: VectorStore) -> list[Record]:
    """Every item's identity and shop fields (no vectors)."""
    records = list(store.scroll(PLACEMENT_FIELDS))
    if not records:
        raise NotFoundError("the vector store is empty; run `fashionrec ingest PATH` first")
    return records


def place_items(store: VectorStore, log: EventLog) -> int:
    """Give every item its shop's id and location; returns how many items were (re)written.

    Items with a manifest shop keep it while it exists. All views of a product share a
    shop: a product keeps its shop while that shop exists; the others (and manifest
    items whose shop is gone: `shops generate --replace`) join, in a seeded order, the
    least-loaded shop of their category (a round-robin from empty). Only items whose
    shop or shop location changes are written; no item is left naming a shop that does
    not exist.
    """
    shops = {s.id: s for s in log.shops()}
    if not shops:
        return 0
    records = list(store.scroll(PLACEMENT_FIELDS))

    def fixed(r: Record) -> bool:  # a manifest shop that exists
        return r.payload.get(STORE_ORIGIN) == MANIFEST and str(r.payload.get(STORE_ID)) in shops

    by_product: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        if not fixed(r):
            by_product[str(r.payload[PRODUCT_ID])].append(r)
    chosen: dict[str, str] = {}
    loads: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    waiting: dict[str, list[str]] = defaultdict(list)
    for product, views in by_product.items():
        category = str(views[0].payload[CATEGORY])
        current = {str(v.payload.get(STORE_ID)) for v in views}
        if len(current) == 1 and (kept := current.pop()) in shops:
            chosen[product] = kept
            loads[category][kept] += 1
        else:
            waiting[category].append(product)
    chosen |= assign_shops(waiting, list(shops), int(log.get("assign_seed") or 42), loads)

    changes: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in records:
        manifest = fixed(r)
        shop_id = str(r.payload[STORE_ID]) if manifest else chosen[str(r.payload[PRODUCT_ID])]
        shop = shops[shop_id]
        if (r.payload.get(STORE_ID), r.payload.get(STORE_LOCATION)) == (
            shop_id,
            shop.location.payload(),
        ):
            continue
        changes[(shop_id, MANIFEST if manifest else ROUND_ROBIN)].append(r.id)
    for (shop_id, origin), ids in changes.items():
        payload = {
            STORE_ID: shop_id,
            STORE_LOCATION: shops[shop_id].location.payload(),
            STORE_ORIGIN: origin,
        }
        for batch in batched(ids, WRITE_BATCH):
            store.set_payload(batch, payload)
    return sum(len(ids) for ids in changes.values())


def stranded_items(store: VectorStore, keep: Iterable[str]) -> dict[str, int]:
    """Items per shop id for the items whose shop is not among `keep`: those a change of
    shops would leave naming a shop that does not exist."""
    kept = set(keep)
    counts: dict[str, int] = defaultdict(int)
    for r in store.scroll([STORE_ID]):
        shop_id = r.payload.get(STORE_ID)
        if shop_id is not None and str(shop_id) not in kept:
            counts[str(shop_id)] += 1
    return dict(sorted(counts.items()))


def set_shops(
    store: VectorStore,
    log: EventLog,
    shops: Sequence[Shop],
    region: Region,
    seed: int,
    replace: bool = False,
) -> int:
    """Replace the log's shops and re-place the items; returns items (re)written.

    Refused once purchases name shops that would go; refused, unless replace, when items
    are in shops that would go (with replace they join the new shops' round-robin).
    """
    new_ids = {s.id for s in shops}
    gone = sorted({s.id for s in log.shops()} - new_ids)
    if log.purchase_count() and gone:
        raise ShopsError(
            f"purchases refer to the shops {', '.join(gone)}; keep their ids when replacing "
            "shops (--replace moves items, never purchases)"
        )
    stranded = stranded_items(store, new_ids)
    if stranded and not replace:
        shown = ", ".join(list(stranded)[:5]) + (", …" if len(stranded) > 5 else "")
        raise ShopsError(
            f"{sum(stranded.values())} item(s) are in shop(s) {shown} that the new shops "
            "lack; run again with --replace to re-place those items in the new shops, or "
            "keep those shop ids"
        )
    log.replace_shops(shops, region, seed)
    return place_items(store, log)


def ensure_shops(store: VectorStore, log: EventLog, seed: int = 42) -> list[Shop]:
    """The log's shops, generating the default ones (and placing items) if there are none."""
    if not log.shops():
        shops = generate_shops(DEFAULT_SHOPS, DEFAULT_REGION, seed)
        set_shops(store, log, shops, DEFAULT_REGION, seed)
    return log.shops()
