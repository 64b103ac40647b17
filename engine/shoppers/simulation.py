"""Trend-aware purchase simulation (pure, seeded): users with a trendiness buy over a year."""

from __future__ import annotations

import hashlib
import math
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from engine.errors import ConfigError
from engine.events.trending import DAY_S, MAX_EXPONENT
from engine.vocabulary.geo import Location, Region
from engine.vocabulary.records import Purchase, User

UNISEX: Final = "UNISEX"  # an item gender, never a shopper's


@dataclass(frozen=True)
class SimulationConfig:
    """The simulation's knobs, with the public code's defaults."""

    users: int = 15
    max_purchases: int = 3
    seed: int = 42
    p_max: int = 100
    p_threshold: float = 0.15
    start: date = date(2025, 1, 1)
    days: int = 365

    def validate(self) -> SimulationConfig:
        """Raise ConfigError naming the values out of range."""
        if self.users <= 0 or self.max_purchases <= 0 or self.days <= 0:
            raise ConfigError("--users, --max-purchases and --days must be positive")
        if self.p_max < 0 or not 0 < self.p_threshold <= 1:
            raise ConfigError("--p-max must be >= 0 and --p-threshold in (0, 1]")
        return self


def parse_day(text: str, what: str = "--start") -> date:
    """A YYYY-MM-DD date; ConfigError naming the flag otherwise."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a date (YYYY-MM-DD)") from None


@dataclass(frozen=True)
class CatalogView:
    """The catalog as parallel arrays, sorted by item id (so file order never matters)."""

    item_ids: NDArray[np.str_]
    product_ids: NDArray[np.str_]
    genders: NDArray[np.str_]
    store_ids: NDArray[np.str_]  # "" where an item has no store

    @classmethod
    def build(
        cls,
        item_ids: Sequence[str],
        product_ids: Sequence[str],
        genders: Sequence[str],
        store_ids: Sequence[str],
    ) -> CatalogView:
        """Arrays sorted by item id."""
        order = np.argsort(np.asarray(item_ids, dtype=np.str_), kind="stable")
        return cls(
            *(
                np.asarray(a, dtype=np.str_)[order]
                for a in (item_ids, product_ids, genders, store_ids)
            )
        )

    def __len__(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True)
class Simulation:
    """Simulated users, their purchases in time order, and the popularity after them."""

    users: list[User]
    purchases: list[Purchase]
    popularity: NDArray[np.int64]


def initial_popularity(item_id: str, p_max: int, seed: int) -> int:
    """Seeded uniform integer in [0, p_max] for one item, independent of catalog order."""
    digest = hashlib.sha256(f"{seed}:popularity:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (p_max + 1)


@dataclass(frozen=True)
class Trending:
    """Trending mode: the popular set is the top fraction by trending score at the time of
    each purchase. scores: each item's decayed purchase count as of `start` (the
    simulation's first day); each simulated purchase adds 2^((t − start)/half-life)."""

    scores: NDArray[np.float64]
    half_life_days: float


def popular_mask(popularity: NDArray[Any], fraction: float) -> NDArray[np.bool_]:
    """Items in the top `fraction` by popularity (ties at the threshold included)."""
    if len(popularity) == 0:
        return np.zeros(0, dtype=bool)
    k = max(1, math.ceil(fraction * len(popularity)))
    threshold = np.partition(popularity, len(popularity) - k)[len(popularity) - k]
    mask: NDArray[np.bool_] = popularity >= threshold
    return mask


def simulate(
    catalog: CatalogView,
    popularity: NDArray[np.int64],
    region: Region,
    config: SimulationConfig,
    first_user: int = 1,
    shown: Mapping[str, frozenset[str]] | None = None,
    trending: Trending | None = None,
) -> Simulation:
    """`simulate_compact`, with its users and purchases as objects (to write to the log)."""
    return simulate_compact(
        catalog, popularity, region, config, first_user, shown, trending
    ).objects()


@dataclass(frozen=True)
class CompactSimulation:
    """Simulated users and their purchases as arrays (user u's purchases are the slots
    offsets[u] .. offsets[u] + made[u] of `items` and `seconds`, in time order)."""

    catalog: CatalogView
    start: datetime
    first_user: int
    genders: tuple[str, ...]  # the codes of `gender`; "" for a user who never bought
    gender: NDArray[np.int16]
    trendiness: NDArray[np.float64]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    offsets: NDArray[np.int64]
    made: NDArray[np.int64]
    items: NDArray[np.int32]  # catalog rows
    seconds: NDArray[np.int64]  # after `start`
    popularity: NDArray[np.int64]  # after every purchase
    trend: NDArray[np.float64] | None  # trending mode: the scores after every purchase
    prefix: str = "sim"  # of the users' ids: `simulate`'s; an evaluation's are its own

    def __len__(self) -> int:
        return len(self.trendiness)

    @property
    def active(self) -> NDArray[np.intp]:
        """The users who bought something, in simulation order."""
        return np.flatnonzero(self.gender != 0)

    def user_id(self, u: int) -> str:
        """The id of user number u (0-based): `sim-00001` as `simulate` names them."""
        return f"{self.prefix}-{self.first_user + u:05d}"

    def user(self, u: int) -> tuple[User, list[Purchase]]:
        """User number u and their purchases in time order."""
        user_id = self.user_id(u)
        catalog, start = self.catalog, int(self.offsets[u])
        purchases = [
            Purchase(
                user_id,
                str(catalog.item_ids[item]),
                self.start + timedelta(seconds=int(second)),
                str(catalog.store_ids[item]) or None,
            )
            for item, second in zip(
                self.items[start : start + self.made[u]].tolist(),
                self.seconds[start : start + self.made[u]].tolist(),
                strict=True,
            )
        ]
        residence = Location(float(self.lat[u]), float(self.lon[u]))
        user = User(user_id, self.genders[self.gender[u]], float(self.trendiness[u]), residence)
        return user, purchases

    def users(self, rows: NDArray[np.intp] | None = None) -> Iterator[tuple[User, list[Purchase]]]:
        """The users of these rows (default: every active one), one at a time."""
        for u in (self.active if rows is None else rows).tolist():
            yield self.user(u)

    def objects(self) -> Simulation:
        """Every user and purchase as objects, the purchases in the order they were made."""
        users: list[User] = []
        bought: list[Purchase] = []
        keys: list[tuple[int, int, int]] = []  # (second, user, nth): the order they ran in
        for u in self.active.tolist():
            user, purchases = self.user(u)
            users.append(user)
            first = int(self.offsets[u])
            keys += [(int(self.seconds[first + j]), u, j) for j in range(len(purchases))]
            bought += purchases
        order = sorted(range(len(bought)), key=keys.__getitem__)
        return Simulation(users, [bought[i] for i in order], self.popularity)


def simulate_compact(
    catalog: CatalogView,
    popularity: NDArray[np.int64],
    region: Region,
    config: SimulationConfig,
    first_user: int = 1,
    shown: Mapping[str, frozenset[str]] | None = None,
    trending: Trending | None = None,
) -> CompactSimulation:
    """Simulate `config.users` shoppers after the paper's protocol, fixed as documented,
    into arrays (about 40 bytes per user and 12 per purchase).

    Each user gets t ~ U[0,1], a home in the region and 1..max_purchases purchases at
    seeded times in the period. All purchases run in time order against the moving
    popularity. A user's first purchase is a random product (a random view of it),
    whose gender becomes the user's; when that is an item gender no shopper has (UNISEX),
    the user's gender is drawn among those shown it. `shown` maps a shopper's gender to
    the item genders they buy (default: their own). Each later purchase, among the items
    the user is shown and never a product already bought: with probability t an item
    from the top `p_threshold` fraction by current popularity, otherwise one from the
    rest. Each purchase adds 1 to the item's popularity. With `trending`, "popular" means
    the top fraction by trending score at the time of the purchase.
    """
    rng = np.random.default_rng([config.seed, 2])  # a stream of its own: never the stores'

    popularity = popularity.astype(np.int64, copy=True)
    ranked: NDArray[Any] = popularity
    if trending is not None:
        if config.days > MAX_EXPONENT * trending.half_life_days:
            raise ConfigError("--days is too many half-lives for a trending simulation")
        ranked = trending.scores.astype(np.float64, copy=True)
    half_life_s = DAY_S * (trending.half_life_days if trending else 1.0)
    products, product_of = np.unique(catalog.product_ids, return_inverse=True)
    shown = shown or {}
    pools: dict[str, NDArray[np.intp]] = {}

    def pool_of(gender: str) -> NDArray[np.intp]:
        if gender not in pools:
            genders = sorted(shown.get(gender, {gender}))
            pools[gender] = np.flatnonzero(np.isin(catalog.genders, genders))
        return pools[gender]

    def personal(gender: str) -> str:
        if gender in shown and gender != UNISEX:
            return gender
        drawn = sorted(g for g, vs in shown.items() if gender in vs and g not in (gender, UNISEX))
        return drawn[int(rng.integers(len(drawn)))] if drawn else gender

    start = datetime(config.start.year, config.start.month, config.start.day, tzinfo=UTC)

    n = config.users
    trendiness = np.empty(n, np.float64)
    lat, lon = np.empty(n, np.float64), np.empty(n, np.float64)
    counts = np.empty(n, np.int64)
    event_seconds, event_users = array("q"), array("q")
    for u in range(n):
        trendiness[u] = float(rng.uniform())
        count = int(rng.integers(1, config.max_purchases + 1))
        lat[u] = round(float(rng.uniform(region.lat_min, region.lat_max)), 6)
        lon[u] = round(float(rng.uniform(region.lon_min, region.lon_max)), 6)
        seconds = np.sort(rng.integers(0, config.days * 86_400, count))
        counts[u] = count
        event_seconds.extend(seconds.tolist())
        event_users.extend([u] * count)

    when = np.frombuffer(event_seconds, dtype=np.int64)
    who = np.frombuffer(event_users, dtype=np.int64)
    order = np.lexsort((who, when))  # as sorted((second, user)) orders them
    offsets = np.zeros(n, np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    made = np.zeros(n, np.int64)
    items = np.zeros(len(when), np.int32)
    slots = np.zeros(len(when), np.int64)
    genders: dict[str, int] = {"": 0}
    gender = np.zeros(n, np.int16)
    names = [""]

    for e in order.tolist():
        second, u = int(when[e]), int(who[e])
        first, done = int(offsets[u]), int(made[u])
        if not gender[u]:
            product = int(rng.integers(len(products)))
            views = np.flatnonzero(product_of == product)
            item = int(views[rng.integers(len(views))])
            name = personal(str(catalog.genders[item]))
            if name not in genders:
                genders[name] = len(names)
                names.append(name)
            gender[u] = genders[name]
        else:
            visible = pool_of(names[gender[u]])
            popular = visible[popular_mask(ranked[visible], config.p_threshold)]
            bought = product_of[items[first : first + done]]
            pool = visible[~np.isin(product_of[visible], bought)]
            if len(pool) == 0:
                continue  # the user has bought every product they are shown
            hot = np.isin(pool, popular)
            wants_popular = rng.uniform() < trendiness[u]
            choice = pool[hot] if wants_popular else pool[~hot]
            if len(choice) == 0:
                choice = pool
            item = int(choice[rng.integers(len(choice))])
        popularity[item] += 1
        if trending is not None:
            ranked[item] += 2.0 ** (second / half_life_s)
        items[first + done] = item
        slots[first + done] = second
        made[u] = done + 1

    return CompactSimulation(
        catalog,
        start,
        first_user,
        tuple(names),
        gender,
        trendiness,
        lat,
        lon,
        offsets,
        made,
        items,
        slots,
        popularity,
        None if trending is None else ranked,
    )
