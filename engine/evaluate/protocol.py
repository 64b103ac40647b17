"""The evaluation protocol: its knobs, the catalog and shoppers it runs on (simulated in
memory, or the log's, walked a chunk of users at a time), and the weight settings it
compares. Nothing is written anywhere."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Final

import numpy as np

from engine.catalog.taxonomy import Taxonomy, deepfashion
from engine.errors import ConfigError, NotFoundError
from engine.geo import Region
from engine.recommend.diversity import check_diversity
from engine.recommend.recommender import Popularity
from engine.recommend.scoring import Weights
from engine.records import Purchase, User
from engine.schema import EVALUATION_FIELDS, GENDER, ITEM_ID, PRODUCT_ID, STORE_ID, popularity_field
from engine.shoppers.eventlog import EventLog
from engine.shoppers.simulation import (
    CatalogView,
    CompactSimulation,
    SimulationConfig,
    Trending,
    initial_popularity,
    simulate_compact,
)
from engine.shoppers.trending import PopularityMode, PopularitySettings
from engine.vectorstore.base import VectorStore

SWEEP: Final = tuple(round(0.1 * i, 1) for i in range(11))
DIVERSITY_SWEEP: Final = (0.0, 0.25, 0.5, 0.75, 1.0)  # MMR λ, for the first backbone


@dataclass(frozen=True)
class Protocol:
    """Every knob of an evaluation run."""

    users: int = 50
    max_purchases: int = 5
    k: int = 5
    seed: int = 42
    backbones: tuple[str, ...] = ("resnet50", "densenet121", "vgg16")
    weights: Weights = field(default_factory=Weights)
    candidates: int = 100
    use_log: bool = False
    diversity_sweep: tuple[float, ...] = DIVERSITY_SWEEP  # MMR λ values; () skips the sweep

    def validate(self) -> Protocol:
        """Raise ConfigError naming the values out of range."""
        if self.users <= 0 or self.max_purchases <= 0:
            raise ConfigError("--users and --max-purchases must be positive")
        for diversity in self.diversity_sweep:
            check_diversity(diversity)
        return self


@dataclass
class StoredItems:
    """The stored catalog's items (payloads by item id), as the evaluation needs them."""

    items: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, store: VectorStore) -> StoredItems:
        """Every item's evaluation fields; NotFoundError for an empty store."""
        items = {str(r.payload[ITEM_ID]): r.payload for r in store.scroll(EVALUATION_FIELDS)}
        if not items:
            raise NotFoundError("the vector store is empty; run `fashionrec ingest PATH` first")
        return cls(items)

    def view(self) -> CatalogView:
        """Parallel arrays for the simulation."""
        ids = sorted(self.items)
        return CatalogView.build(
            ids,
            [str(self.items[i][PRODUCT_ID]) for i in ids],
            [str(self.items[i][GENDER]) for i in ids],
            [str(self.items[i].get(STORE_ID) or "") for i in ids],
        )


Chunk = list[tuple[User, list[Purchase]]]


class Cohort(ABC):
    """The evaluated users with their purchases in time order, walked a chunk at a time (so
    an evaluation never holds them all), and the popularity to rank with."""

    popularity: Popularity

    @property
    @abstractmethod
    def total(self) -> int:
        """How many users `chunks` walks through (some may have nothing to evaluate)."""

    @abstractmethod
    def chunks(self, size: int) -> Iterator[tuple[int, Chunk]]:
        """In order, up to `size` users walked at a time: how many, and those of them with
        purchases (with their purchases)."""

    @abstractmethod
    def find(self, user_id: str) -> tuple[User, list[Purchase]] | None:
        """One user with purchases, or None."""


class SimulatedCohort(Cohort):
    """Simulated users, held as arrays (`engine.shoppers.simulation.CompactSimulation`)."""

    def __init__(self, simulation: CompactSimulation) -> None:
        self.simulation = simulation
        self.rows = simulation.active
        ids = simulation.catalog.item_ids.tolist()
        ranked = simulation.popularity if simulation.trend is None else simulation.trend
        self.popularity = _popularity(dict(zip(ids, ranked.tolist(), strict=True)))

    @property
    def total(self) -> int:
        return len(self.rows)

    def chunks(self, size: int) -> Iterator[tuple[int, Chunk]]:
        for start in range(0, len(self.rows), size):
            rows = self.rows[start : start + size]
            yield len(rows), list(self.simulation.users(rows))

    def find(self, user_id: str) -> tuple[User, list[Purchase]] | None:
        prefix, _, number = user_id.partition("-")
        if prefix != "sim" or not number.isdigit():
            return None
        u = int(number) - self.simulation.first_user
        if not 0 <= u < len(self.simulation) or self.simulation.user_id(u) != user_id:
            return None
        found = self.simulation.user(u)
        return found if found[1] else None


class LoggedCohort(Cohort):
    """The event log's users, read a chunk at a time."""

    def __init__(self, log: EventLog, user_ids: list[str], popularity: Popularity) -> None:
        self.log, self.user_ids, self.popularity = log, user_ids, popularity

    @property
    def total(self) -> int:
        return len(self.user_ids)

    def chunks(self, size: int) -> Iterator[tuple[int, Chunk]]:
        for start in range(0, len(self.user_ids), size):
            ids = self.user_ids[start : start + size]
            yield len(ids), [found for found in map(self.find, ids) if found is not None]

    def find(self, user_id: str) -> tuple[User, list[Purchase]] | None:
        user = self.log.user(user_id)
        if user is None:
            return None
        purchases = list(self.log.purchases(user_id))
        return (user, purchases) if purchases else None


def simulated_cohort(
    items: StoredItems,
    protocol: Protocol,
    region: Region,
    taxonomy: Taxonomy | None = None,
    popularity: PopularitySettings | None = None,
) -> SimulatedCohort:
    """Simulate the protocol's users in memory (the log and the store are not touched);
    the taxonomy says which item genders each shopper gender buys. In trending mode the
    popular set, and the popularity the systems rank on, are the trending scores (from
    nothing sold: the simulation's period starts the trend)."""
    view = items.view()
    config = SimulationConfig(
        users=protocol.users, max_purchases=protocol.max_purchases, seed=protocol.seed
    )
    ids = view.item_ids.tolist()
    start = np.array([initial_popularity(i, config.p_max, config.seed) for i in ids], np.int64)
    shown = (taxonomy or deepfashion()).genders
    trending = None
    if popularity is not None and popularity.mode == "trending":
        trending = Trending(np.zeros(len(ids)), popularity.half_life_days)
    simulation = simulate_compact(view, start, region, config, shown=shown, trending=trending)
    return SimulatedCohort(simulation)


def logged_cohort(
    items: StoredItems, log: EventLog, mode: PopularityMode = "all-time"
) -> LoggedCohort:
    """The users and purchases of the event log, with the catalog's current popularity
    (all-time or trending)."""
    user_ids = log.user_ids()
    if not user_ids:
        raise NotFoundError("the event log has no users; run `fashionrec simulate` first")
    field = popularity_field(mode)
    values = {i: float(p.get(field, 0.0)) for i, p in items.items.items()}
    return LoggedCohort(log, user_ids, _popularity(values))


def _popularity(values: dict[str, Any]) -> Popularity:
    popularity = {k: float(v) for k, v in values.items()}
    return Popularity(popularity, min(popularity.values()), max(popularity.values()))


def ablation_weights(weights: Weights) -> dict[str, Weights]:
    """The full model and each term switched off."""
    return {
        "full": weights,
        "no popularity": replace(weights, popularity=0.0),
        "no visual": replace(weights, visual=0.0),
        "no category": replace(weights, category=0.0),
    }


def sweep_weights(w_p: float) -> Weights:
    """The sweep: w_v = 1 − w_p, no category term (the paper's two-term model)."""
    return Weights(visual=round(1.0 - w_p, 6), popularity=w_p, category=0.0)
