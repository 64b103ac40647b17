"""The event log (SQLite, or PostgreSQL through engine/events/database.py), the source of
truth: shops, users, purchases, initial popularity, trending scores.

Every purchase has an event id (given, else a hash of user, item, time and store) that the
log holds once: importing a file twice adds nothing. Each item keeps its trending score
(engine/events/trending.py), moved by every purchase as it is written.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from engine.catalog.taxonomy import Taxonomy
from engine.errors import EventLogError
from engine.events.database import BUSY_S, SqliteDatabase, connect
from engine.events.trending import (
    DEFAULT_ANCHOR,
    PopularitySettings,
    as_of,
    midnight,
    needs_new_anchor,
    trend_sums,
    weight,
)
from engine.helpers import batched
from engine.vocabulary.geo import Location, Region
from engine.vocabulary.records import Purchase, Shop, User

SIMULATED: Final = "simulated"  # the source of what `simulate` writes
SQL_VARIABLES: Final = 500  # ids per `IN (...)` query, well under SQLite's limit
# Logs written before event ids and trending scores get their columns (and values) on open.
EVENTS_INDEX: Final = "CREATE UNIQUE INDEX IF NOT EXISTS purchases_by_event ON purchases (event_id)"


def event_id(user_id: str, item_id: str, timestamp: datetime, store_id: str | None) -> str:
    """The id of a purchase that came without one: a hash of what it is."""
    moment = timestamp.astimezone(UTC).isoformat()
    text = "\x1f".join((user_id, item_id, moment, store_id or ""))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class EventLog:
    """The log in a SQLite file (the default) or a PostgreSQL database (a URL), through
    engine/events/database.py; every write is one transaction, one writer at a time."""

    def __init__(self, where: Path | str, busy_s: float = BUSY_S) -> None:
        self.where = where  # the file or URL it was opened with (a URL may hold a password)
        self.db = connect(where, busy_s)
        self.name = self.db.name
        try:
            if isinstance(self.db, SqliteDatabase) and not self.db.fresh:
                self._upgrade(self.db)
            if isinstance(self.db, SqliteDatabase):  # PostgreSQL's table has it built in
                self.db.execute(EVENTS_INDEX)
        except self.db.errors as exc:
            self.db.close()
            raise EventLogError(f"{self.name}: cannot open the event log ({exc})") from None

    def _upgrade(self, db: SqliteDatabase) -> None:
        """Give a log of an earlier version its event ids and trending scores."""
        items, purchases = db.columns("items"), db.columns("purchases")
        if "event_id" in purchases and "trend" in items:
            return
        with self.transaction():
            if "trend" not in items:
                self.db.execute("ALTER TABLE items ADD COLUMN trend REAL NOT NULL DEFAULT 0")
            if "event_id" not in purchases:
                self.db.execute("ALTER TABLE purchases ADD COLUMN event_id TEXT")
            rows = self.db.execute(
                "SELECT id, user_id, item_id, timestamp, store_id FROM purchases ORDER BY id"
            ).fetchall()
            seen: Counter[str] = Counter()
            ids = []
            for number, user, item, timestamp, store in rows:
                key = event_id(user, item, datetime.fromisoformat(timestamp), store)
                seen[key] += 1  # rows recorded twice before ids existed stay, told apart
                ids.append((key if seen[key] == 1 else f"{key}-{seen[key]}", number))
            self.db.executemany("UPDATE purchases SET event_id = ? WHERE id = ?", ids)
            self.db.execute(EVENTS_INDEX)
            self._recompute_trend(self.popularity_settings().half_life_days)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside happen, or none do; a database failure becomes one line."""
        self.db.begin()
        try:
            yield
            self.db.commit()
        except self.db.errors as exc:
            self.db.rollback()
            raise EventLogError(f"{self.name}: could not write ({exc}); nothing written") from None
        except BaseException:
            self.db.rollback()
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
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # taxonomy --------------------------------------------------------------
    def taxonomy(self) -> Taxonomy | None:
        """The taxonomy the catalog was ingested with, if one was recorded."""
        text = self.get("taxonomy")
        return None if text is None else Taxonomy.parse(text, f"{self.name}: the taxonomy")

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
            [
                (u.id, u.gender, u.trendiness, u.residence.lat, u.residence.lon, source)
                for u in users
            ],
        )

    def user(self, user_id: str) -> User | None:
        """One user, or None."""
        row = self.db.execute(
            "SELECT id, gender, trendiness, lat, lon FROM users WHERE id = ?", (user_id,)
        ).fetchone()
        return None if row is None else User(row[0], row[1], row[2], Location(row[3], row[4]))

    def users(self) -> list[User]:
        """Every user, by id."""
        rows = self.db.execute("SELECT id, gender, trendiness, lat, lon FROM users ORDER BY id")
        return [User(r[0], r[1], r[2], Location(r[3], r[4])) for r in rows]

    def user_ids(self) -> list[str]:
        """Every user id, sorted."""
        return [r[0] for r in self.db.execute("SELECT id FROM users ORDER BY id")]

    def simulated_seeds(self) -> list[int]:
        """The seeds `simulate` has run with in this log, in order."""
        text = self.get("simulated_seeds") or ""
        return [int(seed) for seed in text.split(",") if seed]

    def add_simulated_seed(self, seed: int) -> None:
        """Record a simulation's seed (inside its transaction)."""
        self.put("simulated_seeds", ",".join(map(str, [*self.simulated_seeds(), seed])))

    def purchases_by_source(self) -> dict[str, int]:
        """Purchases per source: `simulated`, `import:<file>`, `api`, …"""
        rows = self.db.execute("SELECT source, COUNT(*) FROM purchases GROUP BY source")
        return {str(source): int(count) for source, count in rows}

    def clear_simulated(self) -> tuple[int, int]:
        """Remove the simulated purchases, the simulated shoppers left without any, every
        drawn initial popularity and the record of simulated seeds, and score the trend
        again from the purchases left; returns (shoppers, purchases) removed. A simulated
        shopper with real purchases (a till's, an import's) stays with them."""
        with self.transaction():
            purchases = self.db.execute(
                "DELETE FROM purchases WHERE source = ?", (SIMULATED,)
            ).rowcount
            users = self.db.execute(
                "DELETE FROM users WHERE source = ? AND NOT EXISTS "
                "(SELECT 1 FROM purchases p WHERE p.user_id = users.id)",
                (SIMULATED,),
            ).rowcount
            self.db.execute("UPDATE items SET initial_popularity = NULL")
            self.db.execute("DELETE FROM meta WHERE key = 'simulated_seeds'")
            self._recompute_trend(self.popularity_settings().half_life_days)
        return users, purchases

    def next_simulated_user(self) -> int:
        """The number the next simulated user (sim-NNNNN) gets."""
        rows = self.db.execute("SELECT id FROM users WHERE id LIKE 'sim-%'")
        numbers = [int(r[0][4:]) for r in rows if r[0][4:].isdigit()]
        return max(numbers, default=0) + 1

    # purchases -------------------------------------------------------------
    def add_purchases(self, purchases: Iterable[Purchase], source: str) -> list[Purchase]:
        """Insert the purchases the log does not hold yet (by event id; call inside a
        transaction) and move their items' trending scores; returns those inserted, each
        with its event id."""
        fresh: dict[str, Purchase] = {}
        for p in purchases:
            key = p.event_id or event_id(p.user_id, p.item_id, p.timestamp, p.store_id)
            fresh.setdefault(key, replace(p, event_id=key))
        for known in self.known_events(list(fresh)):
            del fresh[known]
        added = list(fresh.values())
        self.db.executemany(
            "INSERT INTO purchases (user_id, item_id, timestamp, store_id, source, event_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (p.user_id, p.item_id, p.timestamp.isoformat(), p.store_id, source, p.event_id)
                for p in added
            ],
        )
        self._add_trend(added)
        return added

    def known_events(self, event_ids: Sequence[str]) -> set[str]:
        """The given event ids that the log holds."""
        found: set[str] = set()
        for chunk in batched(event_ids, SQL_VARIABLES):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                f"SELECT event_id FROM purchases WHERE event_id IN ({marks})", chunk
            )
            found.update(r[0] for r in rows)
        return found

    def purchases(self, user_id: str | None = None) -> Iterator[Purchase]:
        """Purchases in time order, of one user or of everyone."""
        sql = "SELECT user_id, item_id, timestamp, store_id, event_id FROM purchases"
        args: tuple[str, ...] = ()
        if user_id is not None:
            sql, args = sql + " WHERE user_id = ?", (user_id,)
        for user, item, timestamp, store, key in self.db.execute(
            sql + " ORDER BY timestamp, user_id, id", args
        ):
            yield Purchase(user, item, datetime.fromisoformat(timestamp), store, key or "")

    def last_sequence(self) -> int:
        """The number of the newest purchase (0: none): numbers grow as purchases commit."""
        return int(self.db.execute("SELECT MAX(id) FROM purchases").fetchone()[0] or 0)

    def purchases_after(self, sequence: int) -> list[Purchase]:
        """Every purchase numbered after `sequence`, in the order they were numbered."""
        rows = self.db.execute(
            "SELECT user_id, item_id, timestamp, store_id, event_id FROM purchases "
            "WHERE id > ? ORDER BY id",
            (sequence,),
        )
        return [
            Purchase(user, item, datetime.fromisoformat(when), store, key or "")
            for user, item, when, store, key in rows
        ]

    def purchases_since(self, sequence: int) -> list[tuple[int, str, str]]:
        """(number, item id, event id) of every purchase numbered after `sequence`, in order:
        what a process following the log has not seen yet."""
        rows = self.db.execute(
            "SELECT id, item_id, event_id FROM purchases WHERE id > ? ORDER BY id", (sequence,)
        )
        return [(int(n), str(item), str(key)) for n, item, key in rows]

    def purchase_count(self) -> int:
        """Number of purchases in the log."""
        return int(self.db.execute("SELECT COUNT(*) FROM purchases").fetchone()[0])

    # popularity ------------------------------------------------------------
    def add_items(self, item_ids: Iterable[str]) -> None:
        """Make sure catalog items are known (new ones without an initial popularity)."""
        self.db.executemany(
            "INSERT INTO items (item_id) VALUES (?) ON CONFLICT (item_id) DO NOTHING",
            ((i,) for i in item_ids),
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
        return {item: int(value) for item, value in self._per_item(sql, "i.item_id", item_ids)}

    def _per_item(
        self, sql: str, column: str, item_ids: Sequence[str] | None
    ) -> Iterator[tuple[str, float]]:
        """The rows of `sql`, for every item or those whose `column` is one of item_ids
        (asked in chunks, under SQLite's limit on variables)."""
        if item_ids is None:
            yield from self.db.execute(sql)
            return
        for chunk in batched(item_ids, SQL_VARIABLES):
            marks = ",".join("?" * len(chunk))
            yield from self.db.execute(f"{sql} WHERE {column} IN ({marks})", chunk)

    def initial_popularity(self) -> dict[str, int]:
        """Every item's initial popularity (0 where never drawn)."""
        rows = self.db.execute("SELECT item_id, COALESCE(initial_popularity, 0) FROM items")
        return {item: int(value) for item, value in rows}

    def purchases_as_of(self, when: datetime) -> dict[str, int]:
        """Purchases per item up to a time (items never bought are absent)."""
        rows = self.db.execute(
            "SELECT item_id, COUNT(*) FROM purchases WHERE timestamp <= ? GROUP BY item_id",
            (when.astimezone(UTC).isoformat(),),
        )
        return {item: int(count) for item, count in rows}

    def popularity_range(self) -> tuple[int, int]:
        """Catalog-wide (min, max) of the current popularity; (0, 0) for an empty log."""
        row = self.db.execute(
            "SELECT MIN(v), MAX(v) FROM (SELECT COALESCE(i.initial_popularity, 0) + "
            "(SELECT COUNT(*) FROM purchases p WHERE p.item_id = i.item_id) AS v FROM items i) AS c"
        ).fetchone()
        return (int(row[0] or 0), int(row[1] or 0))

    # trending ------------------------------------------------------------------
    def popularity_settings(self) -> PopularitySettings:
        """The popularity mode in force and the half-life (defaults: all-time, 14 days)."""
        mode = self.get("popularity_mode") or "all-time"
        half_life = self.get("half_life_days")
        return PopularitySettings(
            mode,  # type: ignore[arg-type]  # written validated
            float(half_life) if half_life else PopularitySettings().half_life_days,
        )

    def set_popularity_settings(self, settings: PopularitySettings) -> None:
        """Set the mode and half-life; a new half-life recomputes every trending score."""
        settings.validate()
        with self.transaction():
            if settings.half_life_days != self.popularity_settings().half_life_days:
                self._recompute_trend(settings.half_life_days)
            self.put("popularity_mode", settings.mode)
            self.put("half_life_days", repr(settings.half_life_days))

    def trend_anchor(self) -> datetime:
        """The time the stored trending scores refer to."""
        text = self.get("trend_anchor")
        return DEFAULT_ANCHOR if text is None else datetime.fromisoformat(text)

    def trend_scale(self, when: datetime, half_life_days: float | None = None) -> float:
        """What turns a stored trending score into the decayed purchase count as of a time
        (after the last purchase): the score a person reads. The half-life is the log's
        unless given (as the log's settings, read already)."""
        if half_life_days is None:
            half_life_days = self.popularity_settings().half_life_days
        return as_of(1.0, when, self.trend_anchor(), half_life_days)

    def trend(self, item_ids: Sequence[str] | None = None) -> dict[str, float]:
        """Stored trending scores (referred to the anchor: they rank as the decayed ones
        do, at any time after the last purchase), of the given items or of all."""
        sql = "SELECT item_id, trend FROM items"
        return {item: float(value) for item, value in self._per_item(sql, "item_id", item_ids)}

    def trend_range(self) -> tuple[float, float]:
        """Catalog-wide (min, max) of the stored trending scores; (0, 0) for an empty log."""
        row = self.db.execute("SELECT MIN(trend), MAX(trend) FROM items").fetchone()
        return (float(row[0] or 0.0), float(row[1] or 0.0))

    def trending_as_of(
        self, when: datetime, half_life_days: float | None = None
    ) -> dict[str, float]:
        """Every item's decayed purchase count as of a time, counting purchases up to then
        (the stored scores when `when` is after the last purchase, else a scan of the log)."""
        stored = self.popularity_settings().half_life_days
        half_life = stored if half_life_days is None else half_life_days
        anchor = self.trend_anchor()
        last = self.db.execute("SELECT MAX(timestamp) FROM purchases").fetchone()[0]
        if half_life == stored and (last is None or datetime.fromisoformat(last) <= when):
            return {i: as_of(v, when, anchor, half_life) for i, v in self.trend().items()}
        scores: dict[str, float] = dict.fromkeys(self.trend(), 0.0)
        rows = self.db.execute(
            "SELECT item_id, timestamp FROM purchases WHERE timestamp <= ?",
            (when.astimezone(UTC).isoformat(),),
        )
        for item, timestamp in rows:
            moment = datetime.fromisoformat(timestamp)
            scores[item] = scores.get(item, 0.0) + weight(moment, when, half_life)
        return scores

    def _add_trend(self, purchases: Sequence[Purchase]) -> None:
        if not purchases:
            return
        half_life = self.popularity_settings().half_life_days
        if self.get("trend_anchor") is None:  # the first purchases: scores start near 1
            self.put("trend_anchor", midnight(min(p.timestamp for p in purchases)))
        latest = max(p.timestamp for p in purchases)
        if needs_new_anchor(latest, self.trend_anchor(), half_life):
            factor = weight(self.trend_anchor(), latest, half_life)
            self.db.execute("UPDATE items SET trend = trend * ?", (factor,))
            self.put("trend_anchor", latest.astimezone(UTC).isoformat())
        added = trend_sums(purchases, self.trend_anchor(), half_life)
        self.add_items(added)
        self.db.executemany(
            "UPDATE items SET trend = trend + ? WHERE item_id = ?",
            [(value, item) for item, value in added.items()],
        )

    def _recompute_trend(self, half_life_days: float) -> None:
        """Every trending score from the purchases (inside a transaction)."""
        self.db.execute("UPDATE items SET trend = 0")
        purchases = [
            Purchase(u, i, datetime.fromisoformat(t), s)
            for u, i, t, s in self.db.execute(
                "SELECT user_id, item_id, timestamp, store_id FROM purchases"
            )
        ]
        first = min((p.timestamp for p in purchases), default=DEFAULT_ANCHOR)
        self.put("trend_anchor", midnight(first))
        if purchases:
            latest = max(p.timestamp for p in purchases)
            if needs_new_anchor(latest, self.trend_anchor(), half_life_days):
                self.put("trend_anchor", latest.astimezone(UTC).isoformat())
        scores = trend_sums(purchases, self.trend_anchor(), half_life_days)
        self.add_items(scores)
        self.db.executemany(
            "UPDATE items SET trend = ? WHERE item_id = ?",
            [(value, item) for item, value in scores.items()],
        )
