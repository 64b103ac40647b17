"""The popularity payloads kept in step with the event log: every item's all-time and
trending popularity and their percentile ranks (NormPop), synced in batches after every
command that adds purchases, followed by a copy of the store, and repaired in full.
Items the store no longer holds are skipped: the log keeps their purchases as history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

from engine.events.eventlog import EventLog
from engine.helpers import batched, number_or_nan
from engine.popularity.normpop import DIGITS, percentile_ranks
from engine.vectorstore.base import Filter, Payload, Range, VectorStore
from engine.vocabulary.schema import (
    ITEM_ID,
    POPULARITY,
    POPULARITY_RANK,
    TRENDING,
    TRENDING_RANK,
    point_id,
)

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
PopularityColumns = tuple[list[str], dict[str, Column]]


class Marks(Protocol):
    """Where a store's sync marks are kept: the event log for the home's store (its meta),
    memory for a worker's copy (serve/copies.py)."""

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

    def popularity_columns(self) -> PopularityColumns:
        """Item ids, and by payload field their values (NaN where a rank is not stored)."""
        ...

    def popularity_values(self, item_ids: Sequence[str] | None = None) -> dict[str, Column]:
        """By payload field, the values of these items (in this order), or of every item."""
        ...


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
    item's values: as engine.popularity.normpop.percentile_ranks ranks it."""
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
    store: as engine.popularity.normpop.percentile_ranks ranks it among every item."""
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
    """Write each item's percentile rank of each popularity (engine.popularity.normpop: ties
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


def _popularity_columns(store: VectorStore) -> PopularityColumns:
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
