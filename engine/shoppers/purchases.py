"""Recording purchases: the one path behind a purchase log's import and the service's
POST /purchases. Every row is checked first and it is all or nothing; each event counts once;
first-time shoppers are created; the touched items' popularity is synced. The cost is in the
rows, never the catalog.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from engine.catalog.taxonomy import deepfashion
from engine.errors import ConfigError, PurchaseLogError
from engine.events.eventlog import EventLog, event_id
from engine.helpers import batched, minmax
from engine.popularity.upkeep import Marks, PopularityTable, sync_popularity
from engine.shoppers.simulation import UNISEX
from engine.vectorstore.base import VectorStore
from engine.vocabulary.geo import DEFAULT_REGION, Location
from engine.vocabulary.records import Purchase, User
from engine.vocabulary.schema import GENDER, ITEM_ID, POPULARITY, STORE_ID, point_id

FUTURE: Final = timedelta(days=1)  # how far ahead of the clock a purchase may be
SHOWN_PROBLEMS: Final = 20  # row problems named in one error; the rest are counted
NOTHING: Final = "; nothing recorded"


@dataclass(frozen=True)
class Row:
    """One purchase to record, as a log's row or a request's element gives it."""

    number: int  # the file's line, or the place in the request
    where: str  # how messages name it: `sales.csv:3`, `purchase 2`
    user_id: str
    item_id: str
    timestamp: datetime  # aware, UTC
    store_id: str | None = None  # None: the item's shop
    gender: str | None = None  # a first-time shopper's, in the shop's words
    trendiness: float | None = None  # a first-time shopper's
    event_id: str = ""  # "": a hash of user, item, time and shop as given


@dataclass(frozen=True)
class ImportSummary:
    """What an import added, and what it found already there."""

    purchases: int  # new purchases recorded
    new_users: int
    items: int  # distinct items of the new purchases
    already: int = 0  # rows whose event the log held before
    repeated: tuple[int, ...] = ()  # rows repeating an earlier row's event in the same file


@dataclass(frozen=True)
class Recorded:
    """What recording added: the new purchases and shoppers, the events the log held
    already, the rows repeating an earlier one, and the touched items' popularity now."""

    purchases: list[Purchase]
    new_users: list[User]
    already: list[str]  # event ids
    repeated: tuple[int, ...]  # row numbers
    popularity: dict[str, int]

    def summary(self) -> ImportSummary:
        """The counts an import reports."""
        items = len({p.item_id for p in self.purchases})
        new = len(self.new_users)
        return ImportSummary(len(self.purchases), new, items, len(self.already), self.repeated)


class NoTimeZone(ValueError):
    """A timestamp without a zone, and none given to read it in."""


def parse_timestamp(text: str, zone: tzinfo | None = None) -> datetime:
    """An ISO 8601 timestamp as aware UTC. One without a zone is read in `zone`, and
    refused (NoTimeZone) when there is none: 10:00 in Paris is not 10:00 in London."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        if zone is None:
            raise NoTimeZone(text)
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def time_zone(name: str) -> tzinfo:
    """A time zone by IANA name (Europe/Paris, UTC); ConfigError otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {name!r}; use an IANA name such as UTC or Europe/Paris"
        ) from None


def raise_problems(problems: Iterable[tuple[int, str]]) -> None:
    """Raise one PurchaseLogError naming the problems by row (the first SHOWN_PROBLEMS,
    then how many more), on one line; nothing is recorded."""
    ordered = [message for _, message in sorted(problems)]
    if not ordered:
        return
    shown = "; ".join(ordered[:SHOWN_PROBLEMS])
    more = len(ordered) - SHOWN_PROBLEMS
    rest = f"; and {more} more problem(s)" if more > 0 else ""
    raise PurchaseLogError(f"{shown}{rest}{NOTHING}")


def record(
    store: VectorStore,
    log: EventLog,
    rows: Sequence[Row],
    source: str,
    problems: Iterable[tuple[int, str]] = (),
    table: PopularityTable | None = None,
    marks: Marks | None = None,
    sync: bool = True,
) -> Recorded:
    """Record purchases, all or none (with `problems` already found in the rows, none).

    Each event counts once: rows whose event id the log holds are left out, and so are rows
    repeating an earlier row (both reported). Every item, store and shopper's gender must
    be known. A first-time shopper's gender is the one given, else that of their first item
    that is not UNISEX, else UNISEX (shown unisex items only); their trendiness is the one
    given, else the mean NormPop (after these purchases) of what they bought; their residence is
    the location of the shop of their first purchase (the region's centre without one).
    The bought items' popularity payloads are then synced, unless `sync` is False.
    """
    found = list(problems)
    keyed = [r if r.event_id else replace(r, event_id=event_id(*_identity(r))) for r in rows]
    by_event: dict[str, Row] = {}
    repeated = tuple(r.number for r in keyed if by_event.setdefault(r.event_id, r) is not r)
    known = log.known_events(list(by_event))
    fresh = [r for r in by_event.values() if r.event_id not in known]
    item_ids = sorted({r.item_id for r in fresh})
    payloads = {
        str(rec.payload[ITEM_ID]): rec.payload
        for batch in batched(item_ids, 1000)
        for rec in store.retrieve([point_id(i) for i in batch])
    }
    shops = {s.id: s for s in log.shops()}
    taxonomy = log.taxonomy() or deepfashion()
    genders: dict[str, str] = {}
    for r in fresh:
        if r.item_id not in payloads:
            found.append((r.number, f"{r.where}: unknown item {r.item_id!r}"))
        if r.store_id is not None and r.store_id not in shops:
            found.append((r.number, f"{r.where}: unknown shop {r.store_id!r}"))
        if r.gender is not None:
            gender = taxonomy.gender(r.gender)
            if gender is None:
                known_genders = ", ".join(taxonomy.all_genders)
                found.append(
                    (r.number, f"{r.where}: unknown gender {r.gender!r} (use {known_genders})")
                )
            else:
                genders[r.where] = gender
    raise_problems(found)

    by_user: dict[str, list[Row]] = defaultdict(list)
    for row in sorted(fresh, key=lambda r: (r.timestamp, r.number)):
        by_user[row.user_id].append(row)
    region = log.region() or DEFAULT_REGION
    centre = Location((region.lat_min + region.lat_max) / 2, (region.lon_min + region.lon_max) / 2)
    new_users: list[User] = []
    estimate: list[str] = []
    for user_id, bought in by_user.items():
        if log.user(user_id) is not None:
            continue
        first = bought[0]
        shop_id = first.store_id or payloads[first.item_id].get(STORE_ID)
        residence = shops[str(shop_id)].location if shop_id in shops else centre
        items = [str(payloads[r.item_id][GENDER]) for r in bought]
        personal = next((g for g in items if g != UNISEX), items[0])
        gender = next((genders[r.where] for r in bought if r.where in genders), personal)
        given = next((r.trendiness for r in bought if r.trendiness is not None), None)
        new_users.append(User(user_id, gender, 0.5 if given is None else given, residence))
        if given is None:
            estimate.append(user_id)
    purchases = [
        Purchase(
            r.user_id,
            r.item_id,
            r.timestamp,
            r.store_id or payloads[r.item_id].get(STORE_ID),
            r.event_id,
        )
        for r in fresh
    ]
    with log.transaction():
        log.add_items(item_ids)
        log.add_users(new_users, source=source)
        added = log.add_purchases(purchases, source=source)
        popularity = log.popularity(item_ids)
        low, high = _catalog_range(store, popularity.values())
        for user_id in estimate:
            values = np.array([popularity[r.item_id] for r in by_user[user_id]], dtype=float)
            log.set_trendiness(user_id, round(float(minmax(values, low, high).mean()), 6))
    if sync:  # else the caller follows the log into the store (engine.popularity.upkeep.catch_up)
        sync_popularity(store, log, item_ids, table, purchases=len(added), marks=marks)
        store.optimize()  # index the moved points once there are enough of them
    recorded = {p.event_id for p in added}
    already = sorted(set(by_event) - recorded)
    created = [log.user(u.id) or u for u in new_users]  # with their estimated trendiness
    return Recorded(added, created, already, repeated, popularity)


def _identity(r: Row) -> tuple[str, str, datetime, str | None]:
    """What an event without an id is known by: user, item, time and shop as given."""
    return r.user_id, r.item_id, r.timestamp, r.store_id


def _catalog_range(store: VectorStore, values: Iterable[int]) -> tuple[float, float]:
    """The catalog's all-time popularity range once these values are in: the payloads' range
    (every point is written with popularity 0, then kept in step) widened by the values."""
    new = list(values)
    low, high = store.value_range(POPULARITY) or (0.0, 0.0)
    return min([low, *new]), max([high, *new])
