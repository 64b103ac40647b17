"""Purchase logs as CSV: rows read and checked, imported through the one recording path
(engine/shoppers/purchases.py), and every purchase exported (re-importable)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Final

from engine.csvrows import csv_rows
from engine.errors import PurchaseLogError
from engine.events.eventlog import EventLog
from engine.popularity.upkeep import Marks, PopularityTable
from engine.shoppers.purchases import (
    FUTURE,
    NOTHING,
    ImportSummary,
    NoTimeZone,
    Row,
    parse_timestamp,
    raise_problems,
    record,
)
from engine.vectorstore.base import VectorStore
from engine.vocabulary.records import User

REQUIRED: Final = ("user_id", "item_id", "timestamp")
OPTIONAL: Final = ("store_id", "gender", "trendiness", "event_id")
EXPORT_COLUMNS: Final = (*REQUIRED, *OPTIONAL)


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
    path: Path, problems: list[tuple[int, str]], data: bytes | None, zone: tzinfo | None
) -> Iterator[Row]:
    now = datetime.now(UTC)
    for number, raw in csv_rows(path, REQUIRED, OPTIONAL, PurchaseLogError, NOTHING, data):
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
        yield Row(
            number,
            where,
            user,
            item,
            timestamp,
            store_id=(raw.get("store_id") or "").strip() or None,
            gender=(raw.get("gender") or "").strip() or None,
            trendiness=trendiness,
            event_id=(raw.get("event_id") or "").strip(),
        )


def read_rows(
    path: Path,
    data: bytes | None = None,
    zone: tzinfo | None = None,
    problems: list[tuple[int, str]] | None = None,
) -> list[Row]:
    """Every row of a purchase CSV (the file at path, or `data` read from one so named) that
    reads well (times without a zone read in `zone`). The others' problems go to `problems`;
    without that list, PurchaseLogError names them (see raise_problems)."""
    if data is None and not path.is_file():
        raise PurchaseLogError(f"{path}: no such file")
    found: list[tuple[int, str]] = [] if problems is None else problems
    rows = list(_rows(path, found, data, zone))
    if problems is None:
        raise_problems(found)
    return rows


def import_purchases(
    store: VectorStore,
    log: EventLog,
    path: Path,
    data: bytes | None = None,
    zone: tzinfo | None = None,
    *,
    table: PopularityTable | None = None,
    marks: Marks | None = None,
    sync: bool = True,
) -> ImportSummary:
    """Import a purchase log (the file at path, or `data` read from one so named): all rows
    or none, through the one recording path (engine.shoppers.purchases.record, which takes
    `table`, `marks` and `sync`): unknown users are created, each event counts once. Times
    without a zone are read in `zone`."""
    parsed = parse_log(path, data, zone)
    return import_parsed(store, log, parsed, table=table, marks=marks, sync=sync)


@dataclass(frozen=True)
class ParsedLog:
    """A purchase log's rows as read, and the rows that could not be (number, why)."""

    path: Path
    rows: list[Row]
    problems: list[tuple[int, str]]


def parse_log(path: Path, data: bytes | None = None, zone: tzinfo | None = None) -> ParsedLog:
    """Read a purchase log (the file, or `data` read from one so named), touching neither
    the store nor the event log: a service parses a big upload off its event loop."""
    problems: list[tuple[int, str]] = []
    rows = read_rows(path, data, zone, problems)
    if not rows and not problems:
        raise PurchaseLogError(f"{path}: no purchases, only the header{NOTHING}")
    return ParsedLog(path, rows, problems)


def import_parsed(
    store: VectorStore,
    log: EventLog,
    parsed: ParsedLog,
    *,
    table: PopularityTable | None = None,
    marks: Marks | None = None,
    sync: bool = True,
) -> ImportSummary:
    """Record a parsed log, all rows or none (as import_purchases)."""
    source = f"import:{parsed.path.name}"
    done = record(store, log, parsed.rows, source, list(parsed.problems), table, marks, sync)
    return done.summary()


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
