"""The evaluation protocol: its knobs, the catalog and shoppers it runs on (simulated in
memory, or the log's), and the weight settings it compares. Nothing is written anywhere."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import numpy as np

from engine.catalog.taxonomy import Taxonomy, deepfashion
from engine.errors import ConfigError, NotFoundError
from engine.geo import Region
from engine.recommend.recommender import Popularity
from engine.recommend.scoring import Weights
from engine.records import Purchase, User
from engine.schema import EVALUATION_FIELDS, GENDER, ITEM_ID, POPULARITY, PRODUCT_ID, STORE_ID
from engine.shoppers.eventlog import EventLog
from engine.shoppers.simulation import CatalogView, SimulationConfig, initial_popularity, simulate
from engine.vectorstore.base import VectorStore

SWEEP: Final = tuple(round(0.1 * i, 1) for i in range(11))


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

    def validate(self) -> Protocol:
        """Raise ConfigError naming the values out of range."""
        if self.users <= 0 or self.max_purchases <= 0:
            raise ConfigError("--users and --max-purchases must be positive")
        return self


@dataclass(frozen=True)
class Cohort:
    """The evaluated users, their purchases in time order, and the popularity to rank with."""

    users: list[User]
    purchases: dict[str, list[Purchase]]
    popularity: Popularity


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


def simulated_cohort(
    items: StoredItems, protocol: Protocol, region: Region, taxonomy: Taxonomy | None = None
) -> Cohort:
    """Simulate the protocol's users in memory (the log and the store are not touched);
    the taxonomy says which item genders each shopper gender buys."""
    view = items.view()
    config = SimulationConfig(
        users=protocol.users, max_purchases=protocol.max_purchases, seed=protocol.seed
    )
    ids = view.item_ids.tolist()
    start = np.array([initial_popularity(i, config.p_max, config.seed) for i in ids], np.int64)
    shown = (taxonomy or deepfashion()).genders
    result = simulate(view, start, region, config, shown=shown)
    popularity = dict(zip(ids, result.popularity.tolist(), strict=True))
    return _cohort(result.users, result.purchases, popularity)


def logged_cohort(items: StoredItems, log: EventLog) -> Cohort:
    """The users and purchases of the event log, with the catalog's current popularity."""
    users = [u for u in (log.user(i) for i in log.user_ids()) if u is not None]
    if not users:
        raise NotFoundError("the event log has no users; run `fashionrec simulate` first")
    values = {i: float(p.get(POPULARITY, 0.0)) for i, p in items.items.items()}
    return _cohort(users, list(log.purchases()), values)


def _cohort(users: list[User], purchases: Sequence[Purchase], values: dict[str, Any]) -> Cohort:
    by_user: dict[str, list[Purchase]] = defaultdict(list)
    for p in purchases:
        by_user[p.user_id].append(p)
    popularity = {k: float(v) for k, v in values.items()}
    low, high = min(popularity.values()), max(popularity.values())
    active = [u for u in users if by_user[u.id]]
    return Cohort(active, dict(by_user), Popularity(popularity, low, high))


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
