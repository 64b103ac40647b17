"""Simulations run over a home: shoppers and purchases drawn (engine.shoppers.simulation),
logged and synced, and removed again, leaving what was real."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from engine.catalog.taxonomy import deepfashion
from engine.errors import ConfigError
from engine.events.eventlog import SIMULATED, EventLog
from engine.popularity.upkeep import sync_popularity
from engine.shoppers.simulation import (
    CatalogView,
    Simulation,
    SimulationConfig,
    Trending,
    initial_popularity,
    simulate,
)
from engine.shops.placement import catalog_records, ensure_shops
from engine.vectorstore.base import VectorStore
from engine.vocabulary.geo import DEFAULT_REGION
from engine.vocabulary.schema import GENDER, ITEM_ID, PRODUCT_ID, STORE_ID


def clear_simulation(store: VectorStore, log: EventLog) -> tuple[int, int]:
    """Remove what `simulate` wrote (shoppers, purchases, initial popularity) and bring
    every item's popularity payloads and ranks in step; returns (shoppers, purchases)
    removed."""
    removed = log.clear_simulated()
    if store.vector_dims():
        sync_popularity(store, log)
        store.optimize()
    return removed


def run_simulation(
    store: VectorStore,
    log: EventLog,
    config: SimulationConfig,
    on_stage: Callable[[str], None] = lambda stage: None,
) -> Simulation:
    """Draw missing initial popularity, simulate users and purchases, log them, sync.
    ConfigError for a seed this log was simulated with already (the same shoppers again,
    under other ids, would count their purchases twice)."""
    if config.seed in log.simulated_seeds():
        raise ConfigError(
            f"this home was simulated with seed {config.seed} already; give another --seed, "
            "or remove what was simulated first: `fashionrec simulate --clear`"
        )
    records = catalog_records(store)
    ensure_shops(store, log, config.seed)
    if any(r.payload.get(STORE_ID) is None for r in records):
        records = catalog_records(store)  # shops were just placed
    region = log.region() or DEFAULT_REGION
    view = CatalogView.build(
        [str(r.payload[ITEM_ID]) for r in records],
        [str(r.payload[PRODUCT_ID]) for r in records],
        [str(r.payload[GENDER]) for r in records],
        [str(r.payload.get(STORE_ID) or "") for r in records],
    )
    on_stage("drawing initial popularity")
    with log.transaction():
        log.add_items(view.item_ids.tolist())
        missing = log.items_without_initial_popularity()
        log.set_initial_popularity(
            (item, initial_popularity(item, config.p_max, config.seed)) for item in missing
        )
    current = log.popularity()
    popularity = np.array([current[i] for i in view.item_ids.tolist()], dtype=np.int64)
    on_stage("simulating purchases")
    shown = (log.taxonomy() or deepfashion()).genders
    first = log.next_simulated_user()
    trending = None
    chosen = log.popularity_settings()
    if chosen.mode == "trending":
        start = datetime(config.start.year, config.start.month, config.start.day, tzinfo=UTC)
        scores = log.trending_as_of(start)
        trending = Trending(
            np.array([scores.get(i, 0.0) for i in view.item_ids.tolist()]),
            chosen.half_life_days,
        )
    result = simulate(
        view, popularity, region, config, first_user=first, shown=shown, trending=trending
    )
    with log.transaction():
        log.add_users(result.users, source=SIMULATED)
        log.add_purchases(result.purchases, source=SIMULATED)
        log.add_simulated_seed(config.seed)
    on_stage("syncing popularity")
    bought = None if missing else [p.item_id for p in result.purchases]
    sync_popularity(store, log, bought, purchases=len(result.purchases))
    on_stage("indexing")
    store.optimize()  # the payload writes moved points out of the indexed segments
    return result
