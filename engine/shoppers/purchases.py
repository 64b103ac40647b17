"""Purchase logs as CSV: validated all-or-nothing import, and export."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from engine.catalog.taxonomy import Taxonomy, deepfashion
from engine.csvrows import csv_rows
from engine.errors import ConfigError, PurchaseLogError
from engine.geo import DEFAULT_REGION, Location
from engine.helpers import batched, minmax
from engine.records import Purchase, User
from engine.schema import GENDER, ITEM_ID, STORE_ID, point_id
from engine.shoppers.eventlog import EventLog, event_id
from engine.shoppers.simulation import UNISEX
from engine.shoppers.sync import sync_popularity
from engine.vectorstore.base import VectorStore

REQUIRED: Final = ("user_id", "item_id", "timestamp")
OPTIONAL: Final = ("store_id", "gender", "trendiness", "event_id")
EXPORT_COLUMNS: Final = (*REQUIRED, *OPTIONAL)
FUTURE: Final = timedelta(days=1)  # how far ahead of the clock a purchase may be


@dataclass(frozen=True)
class Row:
    """One validated row of a purchase log."""

    number: int
    user_id: str
    item_id: str
    timestamp: datetime
    store_id: str | None
    gender: str | None
    trendiness: float | None
    event_id: str  # the column's, else a hash of user, item, time and store as given


@dataclass(frozen=True)
class ImportSummary:
    """What an import added, and what it found already there."""

    purchases: int  # new purchases recorded
    new_users: int
    items: int  # distinct items of the new purchases
    already: int = 0  # rows whose event the log held before
    repeated: tuple[int, ...] = ()  # rows repeating an earlier row's event in the same file


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


def _timestamp(text: str, where: str, zone: tzinfo | None, now: datetime) -> datetime | str:
    """A row's time, or the problem with it."""
    try:
        value = parse_timestamp(text, zone)
    except NoTimeZone:
        return (
            f"{where}: timestamp {text!r} has no time zone; add one (2025-06-01T10:00:00Z, "
            "+02:00) or give --timezone ZONE"
        )
    except ValueError:
        return f"{where}: bad timestamp {text!r} (use ISO 8601)"
    if value > now + FUTURE:
        return f"{where}: timestamp {text!r} is in the future"
    return value


def _rows(
    path: Path,
    problems: list[tuple[int, str]],
    taxonomy: Taxonomy,
    data: bytes | None,
    zone: tzinfo | None,
) -> Iterator[Row]:
    now = datetime.now(UTC)
    rows = csv_rows(path, REQUIRED, OPTIONAL, PurchaseLogError, "; nothing imported", data)
    for number, raw in rows:
        where = f"{path}:{number}"
        if raw is None:
            problems.append((number, f"{where}: wrong number of fields"))
            continue
        user, item = raw["user_id"].strip(), raw["item_id"].strip()
        if not user or not item:
            problems.append((number, f"{where}: empty user_id or item_id"))
            continue
        timestamp = _timestamp(raw["timestamp"], where, zone, now)
        if isinstance(timestamp, str):
            problems.append((number, timestamp))
            continue
        gender_text = (raw.get("gender") or "").strip()
        gender = taxonomy.gender(gender_text) if gender_text else None
        if gender_text and gender is None:
            known = ", ".join(taxonomy.all_genders)
            problems.append((number, f"{where}: unknown gender {gender_text!r} (use {known})"))
            continue
        trend_text = (raw.get("trendiness") or "").strip()
        try:
            trendiness = float(trend_text) if trend_text else None
        except ValueError:
            trendiness = -1.0
        if trendiness is not None and not 0.0 <= trendiness <= 1.0:
            problems.append(
                (number, f"{where}: trendiness {trend_text!r} is not a number in [0, 1]")
            )
            continue
        store = (raw.get("store_id") or "").strip() or None
        key = (raw.get("event_id") or "").strip() or event_id(user, item, timestamp, store)
        yield Row(number, user, item, timestamp, store, gender, trendiness, key)


def read_rows(
    path: Path,
    taxonomy: Taxonomy | None = None,
    data: bytes | None = None,
    zone: tzinfo | None = None,
) -> list[Row]:
    """Every row of a purchase CSV (the file at path, or `data` read from one so named),
    validated (genders by the taxonomy; times without a zone read in `zone`);
    PurchaseLogError naming the bad rows (see raise_problems)."""
    problems: list[tuple[int, str]] = []
    rows = _checked_rows(path, taxonomy, data, zone, problems)
    raise_problems(problems)
    return rows


def _checked_rows(
    path: Path,
    taxonomy: Taxonomy | None,
    data: bytes | None,
    zone: tzinfo | None,
    problems: list[tuple[int, str]],
) -> list[Row]:
    """The rows that pass; the others' problems appended to `problems`."""
    if data is None and not path.is_file():
        raise PurchaseLogError(f"{path}: no such file")
    return list(_rows(path, problems, taxonomy or deepfashion(), data, zone))


SHOWN_PROBLEMS: Final = 20  # row problems named in one error; the rest are counted


def raise_problems(problems: list[tuple[int, str]]) -> None:
    """Raise one PurchaseLogError naming the problems by row (the first SHOWN_PROBLEMS,
    then how many more), on one line; nothing is imported."""
    if not problems:
        return
    ordered = [message for _, message in sorted(problems)]
    shown = "; ".join(ordered[:SHOWN_PROBLEMS])
    more = len(ordered) - SHOWN_PROBLEMS
    rest = f"; and {more} more problem(s)" if more > 0 else ""
    raise PurchaseLogError(f"{shown}{rest}; nothing imported")


def import_purchases(
    store: VectorStore,
    log: EventLog,
    path: Path,
    data: bytes | None = None,
    zone: tzinfo | None = None,
) -> ImportSummary:
    """Import a purchase log (the file at path, or `data` read from one so named): all rows
    or none; unknown users are created. Each event counts once: rows whose event id the
    log holds are left out, and so are rows repeating an earlier row of the file (both
    counted in the summary). Times without a zone are read in `zone`.

    A new user's gender is the gender column, else that of their first item that is not
    UNISEX, else UNISEX (such a user is shown unisex items only); their trendiness is
    the column, or else estimated as the mean normalised popularity (after this import)
    of what they bought; their home is the location of the store of their first purchase
    (the region's centre when it has none). Genders are the recorded taxonomy's.
    """
    problems: list[tuple[int, str]] = []
    rows = _checked_rows(path, log.taxonomy(), data, zone, problems)
    if not rows and not problems:
        raise PurchaseLogError(f"{path}: no purchases, only the header; nothing imported")
    by_event: dict[str, Row] = {}
    repeated = tuple(r.number for r in rows if by_event.setdefault(r.event_id, r) is not r)
    known = log.known_events(list(by_event))
    rows = [r for r in by_event.values() if r.event_id not in known]
    item_ids = sorted({r.item_id for r in rows})
    found = {
        str(rec.payload[ITEM_ID]): rec.payload
        for batch in batched(item_ids, 1000)
        for rec in store.retrieve([point_id(i) for i in batch])
    }
    shops = {s.id: s for s in log.shops()}
    problems += [
        (r.number, f"{path}:{r.number}: unknown item {r.item_id!r}")
        for r in rows
        if r.item_id not in found
    ]
    problems += [
        (r.number, f"{path}:{r.number}: unknown store {r.store_id!r}")
        for r in rows
        if r.store_id is not None and r.store_id not in shops
    ]
    raise_problems(problems)

    by_user: dict[str, list[Row]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r.timestamp, r.number)):
        by_user[row.user_id].append(row)
    region = log.region() or DEFAULT_REGION
    centre = Location((region.lat_min + region.lat_max) / 2, (region.lon_min + region.lon_max) / 2)
    new_users: list[User] = []
    estimate: list[str] = []
    for user_id, bought in by_user.items():
        if log.user(user_id) is not None:
            continue
        first = bought[0]
        shop_id = first.store_id or found[first.item_id].get(STORE_ID)
        home = shops[str(shop_id)].location if shop_id in shops else centre
        genders = [str(found[r.item_id][GENDER]) for r in bought]
        personal = next((g for g in genders if g != UNISEX), genders[0])
        gender = next((r.gender for r in bought if r.gender), None) or personal
        given = next((r.trendiness for r in bought if r.trendiness is not None), None)
        new_users.append(User(user_id, gender, 0.5 if given is None else given, home))
        if given is None:
            estimate.append(user_id)
    purchases = [
        Purchase(
            r.user_id,
            r.item_id,
            r.timestamp,
            r.store_id or found[r.item_id].get(STORE_ID),
            r.event_id,
        )
        for r in rows
    ]
    with log.transaction():
        log.add_items(str(rec.payload[ITEM_ID]) for rec in store.scroll([ITEM_ID]))
        log.add_users(new_users, source="imported")
        log.add_purchases(purchases, source=f"import:{path.name}")
        low, high = log.popularity_range()
        popularity = log.popularity(item_ids)
        for user_id in estimate:
            values = np.array([popularity[r.item_id] for r in by_user[user_id]], dtype=float)
            log.set_trendiness(user_id, round(float(minmax(values, low, high).mean()), 6))
    sync_popularity(store, log, item_ids)
    return ImportSummary(len(purchases), len(new_users), len(item_ids), len(known), repeated)


def check_export_path(path: Path) -> None:
    """PurchaseLogError unless `path` names a file that can be written in a folder that
    exists (checked before anything is opened)."""
    folder = path.parent
    if path.is_dir():
        raise PurchaseLogError(f"{path}: is a folder; give the name of a CSV file to write")
    if not folder.is_dir():
        raise PurchaseLogError(
            f"{path}: the folder {folder} does not exist; create it or choose another path"
        )


def export_purchases(log: EventLog, path: Path) -> int:
    """Write every purchase, with its user's gender and trendiness; returns the row count.

    The file is written beside its final name and renamed when complete: a folder that
    does not exist, or a write that fails, raises PurchaseLogError and leaves nothing.
    """
    check_export_path(path)
    users: dict[str, User] = {}
    count = 0
    tmp = path.with_name(path.name + ".part")
    try:
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(EXPORT_COLUMNS)
            for p in log.purchases():
                user = users.get(p.user_id) or log.user(p.user_id)
                assert user is not None  # purchases reference users (foreign key)
                users[p.user_id] = user
                row = [p.user_id, p.item_id, p.timestamp.isoformat(), p.store_id or ""]
                writer.writerow([*row, user.gender, user.trendiness, p.event_id])
                count += 1
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        reason = exc.strerror or str(exc)
        raise PurchaseLogError(
            f"{path}: cannot write the purchases ({reason}); nothing written"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)  # Ctrl-C: no half-written file is left behind
        raise
    return count
