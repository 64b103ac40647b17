"""The shoppers of a simulated evaluation, held as arrays: a few dozen bytes per user.

`engine.shoppers.simulation.simulate` returns a User and a Purchase object per user and
purchase, which is right for writing them to the event log but grows by about a kilobyte
per user. The evaluation only walks through them once, a chunk at a time, so this module
runs the same simulation (the same random draws in the same order, hence the same users,
purchases and popularity; a test holds the two together) into flat arrays, and builds the
objects of one chunk of users when the evaluation asks for it.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from engine.geo import Location, Region
from engine.records import Purchase, User
from engine.shoppers.simulation import UNISEX, CatalogView, SimulationConfig, popular_mask


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

    def __len__(self) -> int:
        return len(self.trendiness)

    @property
    def active(self) -> NDArray[np.intp]:
        """The users who bought something, in simulation order."""
        return np.flatnonzero(self.gender != 0)

    def user_id(self, u: int) -> str:
        """The id of user number u (0-based), as `simulate` names it."""
        return f"sim-{self.first_user + u:05d}"

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
        home = Location(float(self.lat[u]), float(self.lon[u]))
        user = User(user_id, self.genders[self.gender[u]], float(self.trendiness[u]), home)
        return user, purchases

    def users(self, rows: NDArray[np.intp] | None = None) -> Iterator[tuple[User, list[Purchase]]]:
        """The users of these rows (default: every active one), one at a time."""
        for u in (self.active if rows is None else rows).tolist():
            yield self.user(u)


def simulate_compact(
    catalog: CatalogView,
    popularity: NDArray[np.int64],
    region: Region,
    config: SimulationConfig,
    first_user: int = 1,
    shown: Mapping[str, frozenset[str]] | None = None,
) -> CompactSimulation:
    """`engine.shoppers.simulation.simulate`, draw for draw, into arrays (see there for the
    protocol). Its memory: about 40 bytes per user and 12 per purchase."""
    rng = np.random.default_rng([config.seed, 2])  # a stream of its own: never the stores'

    popularity = popularity.astype(np.int64, copy=True)
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
            popular = visible[popular_mask(popularity[visible], config.p_threshold)]
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
    )
