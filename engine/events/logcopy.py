"""Copy an event log into an empty one, row for row: how a home's SQLite log moves to
PostgreSQL (`fashionrec migrate --events-to URL`) when several service replicas share it."""

from __future__ import annotations

from typing import Final

from engine.errors import EventLogError
from engine.events.eventlog import EventLog
from engine.helpers import batched

# every table and its columns, parents before the rows that refer to them
TABLES: Final = {
    "meta": ("key", "value"),
    "stores": ("id", "name", "lat", "lon"),
    "users": ("id", "gender", "trendiness", "lat", "lon", "source"),
    "items": ("item_id", "initial_popularity", "trend"),
    "purchases": ("id", "user_id", "item_id", "timestamp", "store_id", "source", "event_id"),
    "jobs": ("id", "kind", "state", "started", "finished", "document"),
}
BATCH: Final = 5_000  # rows per insert


def copy_log(source: EventLog, target: EventLog) -> dict[str, int]:
    """Copy every row of `source` into `target`, in one transaction (all or nothing), with
    the purchases' numbers kept; returns rows per table. EventLogError when the target
    already holds users or purchases (nothing is merged)."""
    held = target.purchase_count() + len(target.user_ids())
    if held:
        raise EventLogError(
            f"{target.name}: already holds users or purchases; give an empty database "
            "(nothing copied)"
        )
    copied: dict[str, int] = {}
    with target.transaction():
        for table, columns in TABLES.items():
            names = ", ".join(columns)
            rows = source.db.execute(f"SELECT {names} FROM {table}").fetchall()
            target.db.execute(f"DELETE FROM {table}")  # meta a first open may have written
            marks = ", ".join("?" * len(columns))
            for batch in batched(rows, BATCH):
                target.db.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", batch)
            copied[table] = len(rows)
        target.db.continue_numbers("purchases")
    return copied
