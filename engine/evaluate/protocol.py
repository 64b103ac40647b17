"""The evaluation protocol: its knobs, the catalog and shoppers it runs on (simulated in
memory, or the log's, walked a chunk of users at a time), and the weight settings it
compares. Nothing is written anywhere."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import numpy as np

from engine.catalog.taxonomy import Taxonomy, deepfashion
from engine.errors import ConfigError, NotFoundError
from engine.events.eventlog import EventLog
from engine.events.trending import (
    DAY_S,
    DEFAULT_HALF_LIFE_DAYS,
    PopularityMode,
    PopularitySettings,
)
from engine.helpers import choice
from engine.popularity.normpop import Normalise
from engine.recommend.diversity import check_diversity
from engine.recommend.rerank import Popularity
from engine.recommend.scoring import Weights
from engine.shoppers.simulation import (
    CatalogView,
    CompactSimulation,
    SimulationConfig,
    Trending,
    initial_popularity,
    simulate_compact,
)
from engine.shoppers.taste import Styles, simulate_taste, style_attributes, vector_clusters
from engine.vectorstore.base import VectorStore
from engine.vocabulary.geo import Region
from engine.vocabulary.records import Purchase, User
from engine.vocabulary.schema import (
    ATTRIBUTES,
    EVALUATION_FIELDS,
    GENDER,
    ITEM_ID,
    PRODUCT_ID,
    STORE_ID,
    point_id,
    popularity_field,
)

Shoppers = Literal["paper", "taste"]
SHOPPERS: Final[dict[str, Shoppers]] = {"paper": "paper", "taste": "taste"}
AUTO: Final = "auto"  # the time split's date: the window before the last purchase
EVALUATED: Final = "eval"  # the ids of an evaluation's simulated shoppers: eval-00001, …
SWEEP: Final = tuple(round(0.1 * i, 1) for i in range(11))
DIVERSITY_SWEEP: Final = (0.0, 0.25, 0.5, 0.75, 1.0)  # MMR λ, for the first backbone


def shoppers_named(text: str) -> Shoppers:
    """Which shoppers, by name; ConfigError listing the names otherwise."""
    choice(Shoppers, text, "--shoppers")
    return SHOPPERS[text]


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
    normalise: Normalise = "rank"  # how NormPop is made of the popularity
    shoppers: Shoppers = "paper"  # the paper's simulation, or shoppers with taste
    holdout: int = 1  # leave-last-out: purchases held out per shopper; 0 skips it
    holdout_k: int = 10  # its list length (hit rate@k, nDCG@k, recall@k)
    split: str | None = None  # a time split instead: "auto" or YYYY-MM-DD (see blended.py)
    window_days: float = 14.0  # its targets: each shopper's purchases this long after it

    def validate(self) -> Protocol:
        """Raise ConfigError naming the values out of range."""
        if self.users <= 0 or self.max_purchases <= 0:
            raise ConfigError("--users and --max-purchases must be positive")
        for diversity in self.diversity_sweep:
            check_diversity(diversity)
        choice(Normalise, self.normalise, "--normalise")
        choice(Shoppers, self.shoppers, "--shoppers")
        if self.holdout < 0 or self.holdout_k <= 0:
            raise ConfigError("--holdout must be 0 or more and --holdout-k positive")
        if self.split not in (None, AUTO):
            try:
                datetime.fromisoformat(self.split)
            except ValueError:
                raise ConfigError(
                    f"--split-date must be auto or a date (YYYY-MM-DD), got {self.split!r}"
                ) from None
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
    mode: PopularityMode  # which popularity the systems rank on
    half_life_s: float  # trending's half-life

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

    @property
    @abstractmethod
    def end(self) -> datetime:
        """When the popularity the systems rank on stands: after the last purchase."""

    def other(self, normalise: Normalise, when: datetime) -> tuple[PopularityMode, Popularity]:
        """The popularity mode the systems do not rank on, as of `when` (Table 3 shows
        both): its name and its values, the ranked mode's breaking their ties."""
        all_time, trending = self.as_of(when)
        if self.mode == "all-time":
            return "trending", Popularity.of_values(trending, normalise, all_time)
        return "all-time", Popularity.of_values(all_time, normalise, trending)

    @abstractmethod
    def initial_popularity(self) -> dict[str, float]:
        """Each item's popularity before any purchase (drawn, or given), by item id."""

    @abstractmethod
    def as_of(self, when: datetime) -> tuple[dict[str, float], dict[str, float]]:
        """Every item's all-time and trending popularity from the purchases before `when`."""


class SimulatedCohort(Cohort):
    """Simulated users, held as arrays (`engine.shoppers.simulation.CompactSimulation`),
    ranked on the popularity of `mode` after the simulation."""

    def __init__(
        self,
        simulation: CompactSimulation,
        normalise: Normalise = "rank",
        mode: PopularityMode | None = None,
        half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    ) -> None:
        self.simulation = simulation
        self.rows = simulation.active
        self.half_life_s = half_life_days * DAY_S
        ids = simulation.catalog.item_ids.tolist()
        trending = simulation.trend is not None and mode != "all-time"
        self.mode: PopularityMode = "trending" if trending else "all-time"
        counts = dict(zip(ids, simulation.popularity.astype(float).tolist(), strict=True))
        if simulation.trend is not None:
            # the simulation refers its scores to its start: as of its last purchase they
            # are decayed purchase counts, which the metrics read (novelty, popularity)
            last = float(simulation.seconds.max(initial=0.0))
            now = simulation.trend * 2.0 ** (-last / self.half_life_s)
            trend = dict(zip(ids, now.tolist(), strict=True))
            ranked, other = (trend, counts) if trending else (counts, trend)
            self.popularity = Popularity.of_values(ranked, normalise, other)
        else:
            self.popularity = Popularity.of_values(counts, normalise)
        made = np.zeros(len(simulation.items), dtype=bool)
        for u in self.rows.tolist():
            first = int(simulation.offsets[u])
            made[first : first + int(simulation.made[u])] = True
        self.bought, self.seconds = simulation.items[made], simulation.seconds[made]
        sold = np.bincount(self.bought, minlength=len(ids))
        self.initial = simulation.popularity - sold

    @property
    def total(self) -> int:
        return len(self.rows)

    def chunks(self, size: int) -> Iterator[tuple[int, Chunk]]:
        for start in range(0, len(self.rows), size):
            rows = self.rows[start : start + size]
            yield len(rows), list(self.simulation.users(rows))

    def find(self, user_id: str) -> tuple[User, list[Purchase]] | None:
        prefix, _, number = user_id.partition("-")
        if prefix != self.simulation.prefix or not number.isdigit():
            return None
        u = int(number) - self.simulation.first_user
        if not 0 <= u < len(self.simulation) or self.simulation.user_id(u) != user_id:
            return None
        found = self.simulation.user(u)
        return found if found[1] else None

    @property
    def end(self) -> datetime:
        last = float(self.seconds.max(initial=0.0))
        return self.simulation.start + timedelta(seconds=last + 1.0)

    def initial_popularity(self) -> dict[str, float]:
        ids = self.simulation.catalog.item_ids.tolist()
        return dict(zip(ids, self.initial.astype(float).tolist(), strict=True))

    def as_of(self, when: datetime) -> tuple[dict[str, float], dict[str, float]]:
        second = (when - self.simulation.start).total_seconds()
        before = self.seconds < second
        n = len(self.initial)
        counts = np.bincount(self.bought[before], minlength=n)
        decay = 2.0 ** ((self.seconds[before] - second) / self.half_life_s)
        trend = np.bincount(self.bought[before], weights=decay, minlength=n)
        ids = self.simulation.catalog.item_ids.tolist()
        all_time = (self.initial + counts).astype(np.float64)
        return (
            dict(zip(ids, all_time.tolist(), strict=True)),
            dict(zip(ids, trend.tolist(), strict=True)),
        )


class LoggedCohort(Cohort):
    """The event log's users, read a chunk at a time."""

    def __init__(
        self,
        log: EventLog,
        user_ids: list[str],
        popularity: Popularity,
        mode: PopularityMode = "all-time",
    ) -> None:
        self.log, self.user_ids, self.popularity, self.mode = log, user_ids, popularity, mode
        self.half_life_s = log.popularity_settings().half_life_days * DAY_S

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

    @property
    def end(self) -> datetime:
        return datetime.now(UTC)

    def initial_popularity(self) -> dict[str, float]:
        return {i: float(v) for i, v in self.log.initial_popularity().items()}

    def as_of(self, when: datetime) -> tuple[dict[str, float], dict[str, float]]:
        just_before = when - timedelta(microseconds=1)
        initial = self.log.initial_popularity()
        counts = self.log.purchases_as_of(just_before)
        all_time = {i: float(v + counts.get(i, 0)) for i, v in initial.items()}
        return all_time, self.log.trending_as_of(just_before)


def simulated_cohort(
    items: StoredItems,
    protocol: Protocol,
    region: Region,
    taxonomy: Taxonomy | None = None,
    popularity: PopularitySettings | None = None,
    styles: Styles | None = None,
) -> SimulatedCohort:
    """Simulate the protocol's users in memory (the log and the store are not touched);
    the taxonomy says which item genders each shopper gender buys.

    The paper's shoppers: in trending mode the popular set, and the popularity the systems
    rank on, are the trending scores (from nothing sold: the simulation's period starts the
    trend). Shoppers with taste (`styles`: the items' hidden style values) follow what
    sells at the moment or their style (engine.shoppers.taste); the systems rank on the
    popularity of the mode in force."""
    view = items.view()
    config = SimulationConfig(
        users=protocol.users, max_purchases=protocol.max_purchases, seed=protocol.seed
    )
    ids = view.item_ids.tolist()
    start = np.array([initial_popularity(i, config.p_max, config.seed) for i in ids], np.int64)
    shown = (taxonomy or deepfashion()).genders
    settings = popularity or PopularitySettings()
    if protocol.shoppers == "taste":
        if styles is None:
            raise ConfigError("taste shoppers need the items' style attributes")
        simulation = simulate_taste(
            view, styles, start, region, config, shown, settings.half_life_days
        )
    else:
        trending = None
        if settings.mode == "trending":
            trending = Trending(np.zeros(len(ids)), settings.half_life_days)
        simulation = simulate_compact(view, start, region, config, shown=shown, trending=trending)
    named = replace(simulation, prefix=EVALUATED)  # never the ids of the log's shoppers
    return SimulatedCohort(named, protocol.normalise, settings.mode, settings.half_life_days)


def logged_cohort(
    items: StoredItems,
    log: EventLog,
    mode: PopularityMode = "all-time",
    normalise: Normalise = "rank",
) -> LoggedCohort:
    """The users and purchases of the event log, with the catalog's current popularity
    (all-time or trending) normalised as asked."""
    user_ids = log.user_ids()
    if not user_ids:
        raise NotFoundError("the event log has no users; run `fashionrec simulate` first")
    scale = {"all-time": 1.0, "trending": log.trend_scale(datetime.now(UTC))}
    values, other = (
        {i: float(p.get(popularity_field(m)) or 0.0) * scale[m] for i, p in items.items.items()}
        for m in (mode, "all-time" if mode == "trending" else "trending")
    )
    return LoggedCohort(log, user_ids, Popularity.of_values(values, normalise, other), mode)


def shopper_styles(store: VectorStore, items: StoredItems, evaluated: str, seed: int) -> Styles:
    """The hidden styles of taste shoppers: the items' colour family, usage and season
    (a manifest's columns), else clusters of another space's vectors than the evaluated
    one; ConfigError when the catalog has neither."""
    view = items.view()
    ids = view.item_ids.tolist()
    found = style_attributes([dict(items.items[i].get(ATTRIBUTES) or {}) for i in ids])
    if found is not None:
        return Styles(found, "the manifest's colour, usage and season columns")
    others = sorted(s for s in store.vector_dims() if s != evaluated)
    if not others:
        raise ConfigError(
            "taste shoppers need a style the ranker never reads: colour, usage or season "
            "columns in the manifest, or a second space to cluster (ingest with another "
            f"--backbone than {evaluated})"
        )
    records = store.retrieve([point_id(i) for i in ids], vector=others[0])
    vectors = {str(r.payload[ITEM_ID]): r.vector for r in records if r.vector is not None}
    matrix = np.stack([vectors[i] for i in ids]).astype(np.float32)
    return Styles(vector_clusters(matrix, seed), f"clusters of {others[0]} vectors")


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
