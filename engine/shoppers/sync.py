"""Keeps the event log and the vector store's payloads in step.

Shops and items: every item gets a shop (the manifest's, or a seeded per-category
round-robin of its product). Popularity: the payload carries initial popularity plus
purchases from the log, synced in batches after every command that adds purchases.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

from engine.catalog.taxonomy import deepfashion
from engine.errors import ConfigError, NotFoundError, ShopsError
from engine.geo import DEFAULT_REGION, Region
from engine.helpers import batched, number_or_nan
from engine.records import Shop
from engine.schema import (
    CATEGORY,
    GENDER,
    ITEM_ID,
    MANIFEST,
    PLACEMENT_FIELDS,
    POPULARITY,
    POPULARITY_RANK,
    PRODUCT_ID,
    ROUND_ROBIN,
    STORE_ID,
    STORE_LOCATION,
    STORE_ORIGIN,
    TRENDING,
    TRENDING_RANK,
    point_id,
)
from engine.shoppers.eventlog import SIMULATED, EventLog
from engine.shoppers.normpop import DIGITS, percentile_ranks
from engine.shoppers.shops import assign_shops, generate_shops
from engine.shoppers.simulation import (
    CatalogView,
    Simulation,
    SimulationConfig,
    Trending,
    initial_popularity,
    simulate,
)
from engine.vectorstore.base import Filter, Payload, Range, Record, VectorStore

DEFAULT_SHOPS: Final = 5
WRITE_BATCH: Final = 10_000  # points per payload write
# a stored rank is written again once it is this far from the exact one: a purchase moves
# every rank between the bought item's old and new place by 1/N, too little to be worth
# rewriting them all every time (the bought item itself moves past it)
RANK_TOLERANCE: Final = 0.002
RANK_DRIFT: Final = 0.01  # without the table in memory: how far ranks may drift (update_ranks)
COUNTED_ITEMS: Final = 64  # bought items whose ranks are counted one by one; more: a refresh
RANK_DRIFT_KEY: Final = "rank_drift"  # a store's mark: how far its ranks may have drifted
SYNCED_ANCHOR: Final = "synced_anchor"  # a store's mark: the trend anchor of its last full sync
SYNCED_SEQUENCE: Final = "synced_sequence"  # a store's mark: the last purchase it was told of
RANKED: Final = ((POPULARITY, POPULARITY_RANK), (TRENDING, TRENDING_RANK))
# each popularity, its rank field, and the other popularity that breaks its ties
RANK_PAIRS: Final = ((POPULARITY, POPULARITY_RANK, TRENDING), (TRENDING, TRENDING_RANK, POPULARITY))
Column = NDArray[np.float64]
Ranked = tuple[list[str], dict[str, Column]]


class Marks(Protocol):
    """Where a store's sync marks are kept: the event log for the home's store (its meta),
    memory for a worker's copy (engine/replicas.py)."""

    def get(self, key: str) -> str | None:
        """A mark, or None."""
        ...

    def put(self, key: str, value: str) -> None:
        """Set a mark."""
        ...


class PopularityTable(Protocol):
    """Every item's popularities and stored ranks, held in memory (engine.recommend.columns)."""

    def __len__(self) -> int:
        """How many items it holds."""
        ...

    def popularity_columns(self) -> Ranked:
        """Item ids, and by payload field their values (NaN where a rank is not stored)."""
        ...

    def popularity_values(self, item_ids: Sequence[str] | None = None) -> dict[str, Column]:
        """By payload field, the values of these items (in this order), or of every item."""
        ...


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
    items whose shop is gone: `stores generate --replace`) join, in a seeded order, the
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
            f"purchases refer to the stores {', '.join(gone)}; keep their ids when replacing "
            "stores (--replace moves items, never purchases)"
        )
    stranded = stranded_items(store, new_ids)
    if stranded and not replace:
        shown = ", ".join(list(stranded)[:5]) + (", …" if len(stranded) > 5 else "")
        raise ShopsError(
            f"{sum(stranded.values())} item(s) are in store(s) {shown} that the new stores "
            "lack; run again with --replace to re-place those items in the new stores, or "
            "keep those store ids"
        )
    log.replace_shops(shops, region, seed)
    return place_items(store, log)


def ensure_shops(store: VectorStore, log: EventLog, seed: int = 42) -> list[Shop]:
    """The log's shops, generating the default ones (and placing items) if there are none."""
    if not log.shops():
        shops = generate_shops(DEFAULT_SHOPS, DEFAULT_REGION, seed)
        set_shops(store, log, shops, DEFAULT_REGION, seed)
    return log.shops()


def sync_popularity(
    store: VectorStore,
    log: EventLog,
    item_ids: Iterable[str] | None = None,
    table: PopularityTable | None = None,
    purchases: int | None = None,
    marks: Marks | None = None,
) -> int:
    """Write the log's current popularity, all-time and trending, into the items'
    payloads, then their percentile ranks; returns items written.

    With no item ids every catalog item is synced (`fashionrec popularity sync`), and so
    it is when the trending scores' anchor moved since the last sync (every score was
    rescaled); the ranks are then written exactly (`sync_ranks`). Otherwise the items
    were bought (`purchases` times, default once each) and their ranks follow
    (`update_ranks`). Items with the same values are written in one operation. The
    catalog-wide range is recorded in the log (meta `popularity_range`). `table`: the
    store's fields held in memory, read instead of the store; `marks`: where the store's
    sync marks are kept (default: the log).
    """
    marks = log if marks is None else marks
    store.ensure_indexes()
    if not _in_step(log, marks):
        item_ids = None
    sequence = log.last_sequence()  # a full sync counts every purchase up to here
    if item_ids is None:
        catalog = [str(r.payload[ITEM_ID]) for r in store.scroll([ITEM_ID])]
        log.add_items(catalog)
        values, trend = log.popularity(catalog), log.trend(catalog)
    else:
        asked = sorted(set(item_ids))
        purchases = len(asked) if purchases is None else purchases
        chosen = in_catalog(store, asked)
        values, trend = log.popularity(chosen), log.trend(chosen)
    groups: dict[tuple[int, float], list[str]] = defaultdict(list)
    for item, value in values.items():
        groups[(value, trend.get(item, 0.0))].append(point_id(item))
    for (value, trending), ids in groups.items():
        for batch in batched(ids, WRITE_BATCH):
            store.set_payload(batch, {POPULARITY: float(value), TRENDING: trending})
    low, high = log.popularity_range()
    log.put("popularity_range", f"{low},{high}")
    marks.put(SYNCED_ANCHOR, log.trend_anchor().isoformat())
    if item_ids is None:
        sync_ranks(store, table)
        marks.put(RANK_DRIFT_KEY, "0")
        marks.put(SYNCED_SEQUENCE, str(sequence))
    else:
        update_ranks(store, marks, sorted(values), purchases or 0, table)
    return len(values)


def in_catalog(store: VectorStore, item_ids: Sequence[str]) -> list[str]:
    """Those of the items the store holds: the log keeps the purchases of deleted items
    (history), and nothing is written to their points, which are gone."""
    held = {
        str(r.id)
        for batch in batched(item_ids, WRITE_BATCH)
        for r in store.retrieve([point_id(i) for i in batch])
    }
    return [i for i in item_ids if point_id(i) in held]


def restore_history(store: VectorStore, log: EventLog) -> int:
    """Give items that come back (ingested again after a delete) the popularity their
    history in the log holds: points are written with none, and only those still at 0
    can lack it. Returns items written; ranks are left to the caller (sync_ranks)."""
    if log.popularity_range()[1] <= 0:
        return 0  # nothing sold nor given a popularity: nothing to restore
    unsold = [
        str(r.payload[ITEM_ID])
        for r in store.scroll([ITEM_ID], Filter(ranges={POPULARITY: Range(lte=0.0)}))
    ]
    held = {item: value for item, value in log.popularity(unsold).items() if value > 0}
    if not held:
        return 0
    trend = log.trend(sorted(held))
    for item, value in held.items():
        store.set_payload(
            [point_id(item)], {POPULARITY: float(value), TRENDING: trend.get(item, 0.0)}
        )
    return len(held)


def catch_up(store: VectorStore, log: EventLog, table: PopularityTable | None, marks: Marks) -> int:
    """Sync the items bought since the store was last told (its SYNCED_SEQUENCE mark: every
    purchase when it has none), whoever recorded them; returns purchases taken in. What a
    worker serving a copy does a few times a second, and any store before it serves."""
    since = int(marks.get(SYNCED_SEQUENCE) or 0)
    new = log.purchases_since(since)
    if not new:
        return 0
    items = sorted({item for _, item, _ in new})
    sync_popularity(store, log, items, table, purchases=len(new), marks=marks)
    marks.put(SYNCED_SEQUENCE, str(new[-1][0]))
    store.optimize()  # index the moved points again (cheap for a few)
    return len(new)


def update_ranks(
    store: VectorStore,
    marks: Marks,
    bought: Sequence[str],
    purchases: int,
    table: PopularityTable | None = None,
) -> int:
    """Bring the ranks in step after `purchases` purchases of the `bought` items (their
    popularity payloads written); returns ranks written.

    The bought items' exact ranks are written: computed from the table in memory when
    there is one, else counted in the store (a few counts on indexed fields each). Each
    purchase moves every other item's rank by at most 1/(N − 1): those are left to drift
    until they may be RANK_DRIFT off, when every rank further than RANK_TOLERANCE from
    its exact value is written (one read of the catalog's popularity fields every
    RANK_DRIFT · N purchases). The drift so far is kept in the store's marks.
    """
    n = store.count() if table is None else len(table)
    drift = marks.get(RANK_DRIFT_KEY)
    moved = float(drift or 0.0) + purchases / max(n - 1, 1)
    if drift is None or moved > RANK_DRIFT or (table is None and len(bought) > COUNTED_ITEMS):
        written = sync_ranks(store, table, RANK_TOLERANCE)
        marks.put(RANK_DRIFT_KEY, str(RANK_TOLERANCE))
        return written
    if table is not None:
        every, mine = table.popularity_values(), table.popularity_values(bought)
        for row, item in enumerate(bought):
            ranks = {
                rank: round(_rank_among(every, mine, row, value_field, other), DIGITS)
                for value_field, rank, other in RANK_PAIRS
            }
            store.set_payload([point_id(item)], ranks)
    else:
        for record in store.retrieve([point_id(i) for i in bought]):
            ranks = {
                rank: round(_counted_rank(store, record.payload, value_field, other, n), DIGITS)
                for value_field, rank, other in RANK_PAIRS
            }
            store.set_payload([record.id], ranks)
    marks.put(RANK_DRIFT_KEY, str(moved))
    return 2 * len(bought)


def _rank_among(
    every: dict[str, Column], mine: dict[str, Column], row: int, value_field: str, other: str
) -> float:
    """One item's percentile rank by `value_field` (ties broken by `other`) among every
    item's values: as engine.shoppers.normpop.percentile_ranks ranks it."""
    values, seconds = every[value_field], every[other]
    n = len(values)
    if n <= 1:
        return 0.5
    value, second = mine[value_field][row], mine[other][row]
    same = values == value
    below = np.count_nonzero(values < value) + np.count_nonzero(same & (seconds < second))
    ties = int(np.count_nonzero(same & (seconds == second)))
    return float((int(below) + (max(ties, 1) - 1) / 2.0) / (n - 1))


def _counted_rank(
    store: VectorStore, payload: Payload, value_field: str, other: str, n: int
) -> float:
    """An item's percentile rank by `value_field` (ties broken by `other`), counted in the
    store: as engine.shoppers.normpop.percentile_ranks ranks it among every item."""
    if n <= 1:
        return 0.5
    value, second = float(payload.get(value_field) or 0.0), float(payload.get(other) or 0.0)
    same = Range(gte=value, lte=value)
    below = store.count(Filter(ranges={value_field: Range(lt=value)}))
    below += store.count(Filter(ranges={value_field: same, other: Range(lt=second)}))
    ties = store.count(Filter(ranges={value_field: same, other: Range(gte=second, lte=second)}))
    return (below + (max(ties, 1) - 1) / 2.0) / (n - 1)


def sync_ranks(
    store: VectorStore, table: PopularityTable | None = None, tolerance: float = 0.0
) -> int:
    """Write each item's percentile rank of each popularity (engine.shoppers.normpop: ties
    broken by the other popularity) where the stored one is missing or further than
    `tolerance` from it; returns ranks written.

    Equal ranks (ties: every unsold item shares one) are written in one operation.
    """
    ids, columns = _popularity_columns(store) if table is None else table.popularity_columns()
    written = 0
    for value_field, rank, other in RANK_PAIRS:
        exact = np.round(percentile_ranks(columns[value_field], columns[other]), DIGITS)
        stale = ~(np.abs(exact - columns[rank]) <= tolerance)  # NaN: none stored
        groups: dict[float, list[str]] = defaultdict(list)
        for row in np.flatnonzero(stale).tolist():
            groups[float(exact[row])].append(point_id(ids[row]))
        for value, points in groups.items():
            for batch in batched(points, WRITE_BATCH):
                store.set_payload(batch, {rank: value})
        written += int(stale.sum())
    return written


def _popularity_columns(store: VectorStore) -> Ranked:
    """Every item's popularities and stored ranks, read from the store."""
    fields = [ITEM_ID, *(f for pair in RANKED for f in pair)]
    records = list(store.scroll(fields))
    columns = {
        name: np.array([number_or_nan(r.payload.get(name)) for r in records], dtype=np.float64)
        for name in fields[1:]
    }
    for value_field, _ in RANKED:
        columns[value_field] = np.nan_to_num(columns[value_field], nan=0.0)
    return [str(r.payload[ITEM_ID]) for r in records], columns


def _in_step(log: EventLog, marks: Marks) -> bool:
    """Whether the payloads' trending scores refer to the log's anchor (the last full sync
    was made after the anchor last moved)."""
    return marks.get(SYNCED_ANCHOR) == log.trend_anchor().isoformat()


def popularity_in_step(store: VectorStore, log: EventLog, marks: Marks | None = None) -> int:
    """Bring every item's popularity payloads and ranks in step with the log when they may
    lag it (a store of an earlier version, trending scores rescaled since, purchases it was
    not told of): what a long-lived process does once before it serves, so no request pays
    for it. Returns items and purchases taken in (0: none)."""
    marks = log if marks is None else marks
    if not _in_step(log, marks):
        written = sync_popularity(store, log, marks=marks)
    else:
        # ranks further than RANK_TOLERANCE from exact: rewriting every rank a purchase
        # nudged would move most points out of the index (at 100K, a 77 s re-index)
        written = catch_up(store, log, None, marks) + sync_ranks(store, None, RANK_TOLERANCE)
    if written:
        store.optimize()
    return written


def clear_simulation(store: VectorStore, log: EventLog) -> tuple[int, int]:
    """Remove what `simulate` wrote (shoppers, purchases, initial popularity) and bring
    every item's popularity payloads and ranks in step; returns (shoppers, purchases)
    removed."""
    removed = log.clear_simulated()
    if store.vector_dims():
        sync_popularity(store, log)
        store.optimize()
    return removed


def run_simulation(
    store: VectorStore,
    log: EventLog,
    config: SimulationConfig,
    on_stage: Callable[[str], None] = lambda stage: None,
) -> Simulation:
    """Draw missing initial popularity, simulate users and purchases, log them, sync.
    ConfigError for a seed this log was simulated with already (the same shoppers again,
    under other ids, would count their purchases twice)."""
    if config.seed in log.simulated_seeds():
        raise ConfigError(
            f"this home was simulated with seed {config.seed} already; give another --seed, "
            "or remove what was simulated first: `fashionrec simulate --clear`"
        )
    records = catalog_records(store)
    ensure_shops(store, log, config.seed)
    if any(r.payload.get(STORE_ID) is None for r in records):
        records = catalog_records(store)  # shops were just placed
    region = log.region() or DEFAULT_REGION
    view = CatalogView.build(
        [str(r.payload[ITEM_ID]) for r in records],
        [str(r.payload[PRODUCT_ID]) for r in records],
        [str(r.payload[GENDER]) for r in records],
        [str(r.payload.get(STORE_ID) or "") for r in records],
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
    shown = (log.taxonomy() or deepfashion()).genders
    first = log.next_simulated_user()
    trending = None
    chosen = log.popularity_settings()
    if chosen.mode == "trending":
        start = datetime(config.start.year, config.start.month, config.start.day, tzinfo=UTC)
        scores = log.trending_as_of(start)
        trending = Trending(
            np.array([scores.get(i, 0.0) for i in view.item_ids.tolist()]),
            chosen.half_life_days,
        )
    result = simulate(
        view, popularity, region, config, first_user=first, shown=shown, trending=trending
    )
    with log.transaction():
        log.add_users(result.users, source=SIMULATED)
        log.add_purchases(result.purchases, source=SIMULATED)
        log.add_simulated_seed(config.seed)
    on_stage("syncing popularity")
    bought = None if missing else [p.item_id for p in result.purchases]
    sync_popularity(store, log, bought, purchases=len(result.purchases))
    on_stage("indexing")
    store.optimize()  # the payload writes moved points out of the indexed segments
    return result
