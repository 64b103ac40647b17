"""The event log in SQLite, the source of truth: shops, users, purchases, popularity."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Final

from engine.catalog.taxonomy import Taxonomy
from engine.errors import EventLogError
from engine.geo import Location, Region
from engine.helpers import batched
from engine.records import Purchase, Shop, User

SQL_VARIABLES: Final = 500  # ids per `IN (...)` query, well under SQLite's limit
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stores (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, lat REAL NOT NULL, lon REAL NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, gender TEXT NOT NULL,
    trendiness REAL NOT NULL CHECK (trendiness BETWEEN 0 AND 1),
    lat REAL NOT NULL, lon REAL NOT NULL, source TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY, initial_popularity INTEGER);  -- NULL: never drawn (counts as 0)
CREATE TABLE IF NOT EXISTS purchases (
    id INTEGER PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id),
    item_id TEXT NOT NULL, timestamp TEXT NOT NULL, store_id TEXT, source TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS purchases_by_user ON purchases (user_id, timestamp);
CREATE INDEX IF NOT EXISTS purchases_by_item ON purchases (item_id);
"""


class EventLog:
    """An SQLite database beside the vector store; every write is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise EventLogError(f"{path}: cannot open the event log ({exc})") from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside happen, or none do; an SQLite failure becomes one line."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise EventLogError(f"{self.path}: the event log is busy ({exc})") from None
        try:
            yield
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self.db.execute("ROLLBACK")
            raise EventLogError(f"{self.path}: could not write ({exc}); nothing written") from None
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    # meta ------------------------------------------------------------------
    def get(self, key: str) -> str | None:
        """A metadata value."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        """Set a metadata value (inside the caller's transaction, if any)."""
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # taxonomy --------------------------------------------------------------
    def taxonomy(self) -> Taxonomy | None:
        """The taxonomy the catalog was ingested with, if one was recorded."""
        text = self.get("taxonomy")
        return None if text is None else Taxonomy.parse(text, f"{self.path}: the taxonomy")

    def set_taxonomy(self, taxonomy: Taxonomy) -> None:
        """Record the catalog's taxonomy (every later command uses it)."""
        with self.transaction():
            self.put("taxonomy", taxonomy.to_toml())

    # shops -----------------------------------------------------------------
    def shops(self) -> list[Shop]:
        """All shops, by id (their table keeps the name `stores`)."""
        rows = self.db.execute("SELECT id, name, lat, lon FROM stores ORDER BY id")
        return [Shop(i, n, Location(lat, lon)) for i, n, lat, lon in rows]

    def replace_shops(self, shops: Sequence[Shop], region: Region, seed: int) -> None:
        """Replace every shop, with the region users live in and the assignment seed."""
        with self.transaction():
            self.db.execute("DELETE FROM stores")
            self.db.executemany(
                "INSERT INTO stores (id, name, lat, lon) VALUES (?, ?, ?, ?)",
                [(s.id, s.name, s.location.lat, s.location.lon) for s in shops],
            )
            self.put("region", region.text())
            self.put("assign_seed", str(seed))

    def region(self) -> Region | None:
        """The region of the shops and users, if shops exist."""
        text = self.get("region")
        return None if text is None else Region.parse(text)

    # users -----------------------------------------------------------------
    def add_users(self, users: Iterable[User], source: str) -> None:
        """Insert users (call inside a transaction to group with their purchases)."""
        self.db.executemany(
            "INSERT INTO users (id, gender, trendiness, lat, lon, source) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(u.id, u.gender, u.trendiness, u.home.lat, u.home.lon, source) for u in users],
        )

    def user(self, user_id: str) -> User | None:
        """One user, or None."""
        row = self.db.execute(
            "SELECT id, gender, trendiness, lat, lon FROM users WHERE id = ?", (user_id,)
        ).fetchone()
        return None if row is None else User(row[0], row[1], row[2], Location(row[3], row[4]))

    def user_ids(self) -> list[str]:
        """Every user id, sorted."""
        return [r[0] for r in self.db.execute("SELECT id FROM users ORDER BY id")]

    def next_simulated_user(self) -> int:
        """The number the next simulated user (sim-NNNNN) gets."""
        row = self.db.execute(
            "SELECT MAX(CAST(SUBSTR(id, 5) AS INTEGER)) FROM users WHERE id LIKE 'sim-%'"
        ).fetchone()
        return int(row[0] or 0) + 1

    # purchases -------------------------------------------------------------
    def add_purchases(self, purchases: Iterable[Purchase], source: str) -> None:
        """Insert purchases (call inside a transaction)."""
        self.db.executemany(
            "INSERT INTO purchases (user_id, item_id, timestamp, store_id, source) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (p.user_id, p.item_id, p.timestamp.isoformat(), p.store_id, source)
                for p in purchases
            ],
        )

    def purchases(self, user_id: str | None = None) -> Iterator[Purchase]:
        """Purchases in time order, of one user or of everyone."""
        sql = "SELECT user_id, item_id, timestamp, store_id FROM purchases"
        args: tuple[str, ...] = ()
        if user_id is not None:
            sql, args = sql + " WHERE user_id = ?", (user_id,)
        for user, item, timestamp, store in self.db.execute(
            sql + " ORDER BY timestamp, user_id, id", args
        ):
            yield Purchase(user, item, datetime.fromisoformat(timestamp), store)

    def purchase_count(self) -> int:
        """Number of purchases in the log."""
        return int(self.db.execute("SELECT COUNT(*) FROM purchases").fetchone()[0])

    # popularity ------------------------------------------------------------
    def add_items(self, item_ids: Iterable[str]) -> None:
        """Make sure catalog items are known (new ones without an initial popularity)."""
        self.db.executemany(
            "INSERT OR IGNORE INTO items (item_id) VALUES (?)", ((i,) for i in item_ids)
        )

    def set_initial_popularity(self, values: Iterable[tuple[str, int]]) -> None:
        """Set the initial popularity of items."""
        self.db.executemany(
            "INSERT INTO items (item_id, initial_popularity) VALUES (?, ?) "
            "ON CONFLICT (item_id) DO UPDATE SET initial_popularity = excluded.initial_popularity",
            values,
        )

    def items_without_initial_popularity(self) -> list[str]:
        """Items whose initial popularity was never drawn."""
        rows = self.db.execute("SELECT item_id FROM items WHERE initial_popularity IS NULL")
        return [r[0] for r in rows]

    def set_trendiness(self, user_id: str, trendiness: float) -> None:
        """Set a user's trendiness."""
        self.db.execute("UPDATE users SET trendiness = ? WHERE id = ?", (trendiness, user_id))

    def popularity(self, item_ids: Sequence[str] | None = None) -> dict[str, int]:
        """Current popularity (initial + purchases) of the given items, or of all items."""
        sql = (
            "SELECT i.item_id, COALESCE(i.initial_popularity, 0) + "
            "(SELECT COUNT(*) FROM purchases p WHERE p.item_id = i.item_id) FROM items i"
        )
        if item_ids is None:
            return {item: int(value) for item, value in self.db.execute(sql)}
        result: dict[str, int] = {}
        for chunk in batched(item_ids, SQL_VARIABLES):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"{sql} WHERE i.item_id IN ({marks})", chunk)
            result.update({item: int(value) for item, value in rows})
        return result

    def popularity_range(self) -> tuple[int, int]:
        """Catalog-wide (min, max) of the current popularity; (0, 0) for an empty log."""
        row = self.db.execute(
            "SELECT MIN(v), MAX(v) FROM (SELECT COALESCE(i.initial_popularity, 0) + "
            "(SELECT COUNT(*) FROM purchases p WHERE p.item_id = i.item_id) AS v FROM items i)"
        ).fetchone()
        return (int(row[0] or 0), int(row[1] or 0))
