"""The blended ranking, live: candidates from every source (engine.recommend.pool) for a
user or an item, over the vector store (the visual neighbours by its filtered search, each
candidate's cosines from its stored vector) and the event log (what sells now, what was
bought together), scored by a ranking profile (engine.recommend.profile).

The evaluation and `tune` rank the same pools over a shelf that holds every vector
(exact); with an exact search the two give the same lists (tested).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final

import numpy as np
from numpy.typing import NDArray

from engine.catalog.taxonomy import Taxonomy
from engine.errors import NotFoundError
from engine.events.eventlog import EventLog
from engine.events.trending import DAY_S
from engine.recommend.params import Params
from engine.recommend.pool import Moment, Pool, pool
from engine.recommend.profile import Profile, ranked
from engine.recommend.recommender import search_filter
from engine.recommend.rerank import Recommendation
from engine.recommend.shelf import Shelf, best_rows
from engine.recommend.tuning import Log
from engine.vectorstore.base import Filter, Query, Scored, VectorStore, point_keys
from engine.vocabulary.geo import Location, distances_km
from engine.vocabulary.records import Purchase, User
from engine.vocabulary.schema import (
    ITEM_ID,
    point_id,
)

EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)  # the live log's seconds count from here
BLENDED: Final = "blended"  # the strategy's name in answers
MINUTE: Final = 60.0


def read_log(
    events: EventLog, shelf: Shelf, taxonomy: Taxonomy, half_life_days: float
) -> tuple[Log, dict[str, int]]:
    """The event log's users and purchases over the shelf (seconds from EPOCH), with the
    items' initial popularity, and each user's code in it."""
    users = events.users()
    initial = {i: float(v) for i, v in events.initial_popularity().items()}
    purchases = events.purchases()
    log = Log.of(users, purchases, shelf, taxonomy, half_life_days * DAY_S, EPOCH, initial)
    return log, {u.id: n for n, u in enumerate(users)}


class StoreLooks:
    """How items look, from the vector store, ids and scores only: neighbours by one
    filtered search from every history item (the best cosine to any), each candidate's
    cosine to each history item by a search restricted to the candidates (exact over so
    few)."""

    def __init__(
        self,
        store: VectorStore,
        shelf: Shelf,
        space: str,
        history: NDArray[np.float32],
        flt: Filter,
        rows_of: Callable[[Scored], NDArray[np.int64]],
    ) -> None:
        self.store, self.shelf, self.space, self.flt = store, shelf, space, flt
        self.history, self.rows_of = history, rows_of

    def neighbours(
        self, history: NDArray[np.int64], allowed: NDArray[np.bool_], n: int
    ) -> NDArray[np.int64]:
        (scored,) = self.store.search_scored([Query(self.history, self.space, n, self.flt)])
        rows = self.rows_of(scored)
        best = np.full(len(self.shelf), -np.inf)
        best[rows[rows >= 0]] = scored.scores[rows >= 0]  # in the best cosine's order
        return best_rows(best, allowed & np.isfinite(best), n)

    def similarity(
        self, history: NDArray[np.int64], rows: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        ids = frozenset(self.shelf.point_ids()[r] for r in rows.tolist())
        queries = [
            Query(v, self.space, limit=max(len(ids), 1), filter=Filter(ids=ids))
            for v in self.history
        ]
        out = np.zeros((len(self.history), len(rows)))
        position = np.full(len(self.shelf), -1)
        position[rows] = np.arange(len(rows))
        for line, scored in enumerate(self.store.search_scored(queries) if ids else []):
            found = self.rows_of(scored)
            known = found >= 0
            out[line, position[found[known]]] = scored.scores[known]
        return out


class Blender:
    """The blended ranking over one store and event log: the shelf read once (again after
    the store changes), the log's purchases read again after each new one."""

    def __init__(self, store: VectorStore, log: EventLog, taxonomy: Taxonomy) -> None:
        self.store, self.log, self.taxonomy = store, log, taxonomy
        self._lock = threading.Lock()
        self._shelves: dict[str, Shelf] = {}
        self._read: dict[str, float] = {}  # when each shelf was read (time.monotonic)
        self._sales: tuple[tuple[int, str, float], Log, dict[str, int]] | None = None
        self._now: tuple[Log, float, Moment] | None = None  # a log, a minute, its sales
        self._keys: tuple[Shelf, dict[tuple[int, int], int]] | None = None  # point key → row
        store.watch(self._changed)

    def _changed(self, ids: Sequence[str]) -> None:
        with self._lock:
            self._shelves.clear()
            self._sales = None

    def _rows_of(self, shelf: Shelf) -> Callable[[Scored], NDArray[np.int64]]:
        """Point keys to the shelf's rows (−1: not on it), the table made once a shelf."""
        with self._lock:
            if self._keys is None or self._keys[0] is not shelf:
                keys = point_keys(shelf.point_ids()).tolist()
                self._keys = (shelf, {(hi, lo): row for row, (hi, lo) in enumerate(keys)})
            table = self._keys[1]

        def rows_of(scored: Scored) -> NDArray[np.int64]:
            found = [table.get((hi, lo), -1) for hi, lo in scored.keys.tolist()]
            return np.array(found, dtype=np.int64)

        return rows_of

    def shelf(self, space: str) -> Shelf:
        """The catalog's fields (no vectors) of the items with a vector of `space`: read
        again after the store tells of a write, or (a Qdrant server others write to, which
        tells nothing) once a minute."""
        now = time.monotonic()
        with self._lock:
            read = self._read.get(space)
            stale = not self.store.exclusive and read is not None and now - read > MINUTE
            if space not in self._shelves or stale:
                self._shelves[space] = Shelf.of_store(
                    self.store, space, self.taxonomy, vectors=False
                )
                self._read[space] = now
            return self._shelves[space]

    def _log(self, shelf: Shelf, space: str, half_life_days: float) -> tuple[Log, dict[str, int]]:
        """The event log's purchases over the shelf, and each user's code in it."""
        sequence = self.log.last_sequence()
        with self._lock:
            held = self._sales
            if held is not None and held[0][1:] == (space, half_life_days):
                if held[0][0] == sequence:
                    return held[1], held[2]
                followed = self._follow(held[1], held[2], held[0][0], shelf)
                if followed is not None:
                    self._sales = ((sequence, space, half_life_days), *followed)
                    return followed
            log, codes = read_log(self.log, shelf, self.taxonomy, half_life_days)
            self._sales = ((sequence, space, half_life_days), log, codes)
            return log, codes

    def _follow(
        self, log: Log, codes: dict[str, int], sequence: int, shelf: Shelf
    ) -> tuple[Log, dict[str, int]] | None:
        """The held log with the purchases numbered after `sequence` (a till's, the
        service's: later than the rest), or None to read the log again."""
        fresh = [p for p in self.log.purchases_after(sequence) if p.item_id in shelf.index]
        known = codes
        trendiness, shown = log.trendiness, log.shown
        newcomers = sorted({p.user_id for p in fresh} - set(codes))
        if newcomers:
            known = {**codes, **{u: len(codes) + n for n, u in enumerate(newcomers)}}
            found = [self.log.user(u) for u in newcomers]
            trendiness = np.concatenate(
                [trendiness, [0.5 if u is None else u.trendiness for u in found]]
            )
            shown = [
                *shown,
                *(frozenset(self.taxonomy.shown_to(u.gender if u else "")) for u in found),
            ]
        extended = log.extended(
            np.array([known[p.user_id] for p in fresh], dtype=np.int64),
            np.array([shelf.index[p.item_id] for p in fresh], dtype=np.int64),
            np.array([(p.timestamp - EPOCH).total_seconds() for p in fresh], dtype=np.float64),
            trendiness,
            shown,
        )
        return None if extended is None else (extended, known)

    def _moment(self, log: Log, when: datetime | None) -> Moment:
        """The sales as of `when`, or as of now: kept for a minute while the log does not
        change (a minute's decay moves no rank and a sale's log by under 0.01 %)."""
        if when is not None:
            return log.moment((when - EPOCH).total_seconds())
        minute = (datetime.now(UTC) - EPOCH).total_seconds() // MINUTE * MINUTE
        with self._lock:
            if self._now is None or self._now[0] is not log or self._now[1] != minute:
                self._now = (log, minute, log.moment(minute))
            return self._now[2]

    def for_user(
        self,
        user: User,
        purchases: Sequence[Purchase],
        params: Params,
        profile: Profile,
        half_life_days: float,
        when: datetime | None = None,
    ) -> list[Recommendation]:
        """A user's list: the pool of their purchases (oldest first) scored by the profile,
        with the sales as of `when` (now); NotFoundError without one, as the rerank."""
        if not purchases:
            raise NotFoundError(f"user {user.id!r} has no purchases to recommend from")
        shelf = self.shelf(params.searched)
        history = [shelf.index[p.item_id] for p in purchases if p.item_id in shelf.index]
        if not history:
            raise NotFoundError(
                f"user {user.id!r} bought only items no longer in the catalog; nothing to "
                "recommend from"
            )
        log, codes = self._log(shelf, params.searched, half_life_days)
        genders = self.taxonomy.shown_to(user.gender)
        return self._ranked(
            shelf,
            log,
            history,
            user.trendiness,
            genders,
            codes.get(user.id),
            user.residence,
            params,
            profile,
            when,
        )

    def for_item(
        self,
        item_id: str,
        params: Params,
        profile: Profile,
        half_life_days: float,
        when: datetime | None = None,
    ) -> list[Recommendation]:
        """An item's list: the pool around it, for a shopper of its gender (or the one
        asked for) and the trendiness asked for."""
        shelf = self.shelf(params.searched)
        row = shelf.index.get(item_id)
        if row is None:
            raise NotFoundError(f"unknown item {item_id!r}")
        log, _ = self._log(shelf, params.searched, half_life_days)
        gender = params.gender or str(shelf.genders[row])
        genders = self.taxonomy.shown_to(gender)
        return self._ranked(
            shelf, log, [row], params.trendiness, genders, None, params.at, params, profile, when
        )

    def _ranked(
        self,
        shelf: Shelf,
        log: Log,
        history: list[int],
        trendiness: float,
        genders: frozenset[str],
        shopper: int | None,
        origin: Location | None,
        params: Params,
        profile: Profile,
        when: datetime | None,
    ) -> list[Recommendation]:
        moment = self._moment(log, when)
        allowed = shelf.allowed(history, genders) & _filtered(shelf, params, origin)
        records = self.store.retrieve(
            [point_id(shelf.item_ids[r]) for r in history], vector=params.searched
        )
        vectors = {str(r.payload.get(ITEM_ID)): r.vector for r in records}
        stored = np.stack([np.asarray(vectors[shelf.item_ids[r]], np.float32) for r in history])
        bought = frozenset(shelf.product_ids[shelf.products[r]] for r in history)
        flt = search_filter(params, genders, bought, origin)
        looks = StoreLooks(self.store, shelf, params.searched, stored, flt, self._rows_of(shelf))
        found = pool(
            shelf, looks, moment, history, trendiness, allowed, shopper, gamma=params.weights.gamma
        )
        relevance = profile.scores(found)
        chosen = ranked(found, relevance, shelf.products, params.k)
        return _recommendations(shelf, moment, found, relevance, chosen, history, origin)


def _filtered(shelf: Shelf, params: Params, origin: Location | None) -> NDArray[np.bool_]:
    """The items the parameters' filters let through (stock, category, price, distance):
    what recommender.search_filter asks of the store, over the shelf's arrays."""
    allowed = np.ones(len(shelf), dtype=bool)
    if params.in_stock and shelf.out_of_stock is not None:
        allowed &= ~shelf.out_of_stock
    if params.category:
        names = shelf.category_names
        code = names.index(params.category) if params.category in names else -1
        allowed &= shelf.categories == code
    if (params.min_price is not None or params.max_price is not None) and shelf.prices is not None:
        with np.errstate(invalid="ignore"):
            low = -np.inf if params.min_price is None else params.min_price
            high = np.inf if params.max_price is None else params.max_price
            allowed &= (shelf.prices >= low) & (shelf.prices <= high)
    if params.max_km is not None and origin is not None and shelf.lat is not None:
        assert shelf.lon is not None
        with np.errstate(invalid="ignore"):
            allowed &= distances_km(origin, shelf.lat, shelf.lon) <= params.max_km
    return allowed


def _recommendations(
    shelf: Shelf,
    moment: Moment,
    found: Pool,
    relevance: NDArray[np.float64],
    chosen: list[int],
    history: list[int],
    origin: Location | None,
) -> list[Recommendation]:
    """The chosen rows as recommendations, with their terms and the sources that brought
    them."""
    position = {row: n for n, row in enumerate(found.rows.tolist())}
    features = found.features
    out = []
    for rank, row in enumerate(chosen, start=1):
        n = position[row]
        km = None
        if origin is not None and shelf.lat is not None and shelf.lon is not None:
            d = float(distances_km(origin, shelf.lat[row : row + 1], shelf.lon[row : row + 1])[0])
            km = None if np.isnan(d) else d
        out.append(
            Recommendation(
                rank=rank,
                item_id=shelf.item_ids[row],
                product_id=shelf.product_ids[shelf.products[row]],
                category=shelf.category_names[shelf.categories[row]],
                gender=str(shelf.genders[row]),
                store_id=shelf.shops[row] if shelf.shops else None,
                distance_km=km,
                visual=float(features[n, 0]),
                popularity=float(moment.sales[row]),
                norm_popularity=float(moment.norm[row]),
                popularity_term=float(features[n, 4]),
                category_sim=float(features[n, 6]),
                relevance=float(relevance[n]),
                query_item=shelf.item_ids[history[int(found.closest[n])]],
                sources=found.named(n),
            )
        )
    return out
