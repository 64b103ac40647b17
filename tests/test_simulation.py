"""The trend-aware simulation: determinism, one gender per user, trendiness that matters."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from engine.catalog.taxonomy import deepfashion
from engine.shoppers.simulation import (
    CatalogView,
    Simulation,
    SimulationConfig,
    Trending,
    initial_popularity,
    popular_mask,
    simulate,
    simulate_compact,
)
from engine.vocabulary.geo import DEFAULT_REGION


def _catalog(products: int = 200, views: int = 2, seed: int = 0) -> CatalogView:
    """A synthetic catalog: half MEN, half WOMEN products, each with a few views."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(products * views)  # scrambled "file order"
    rows = [(p, v) for p in range(products) for v in range(views)]
    rows = [rows[i] for i in order]
    return CatalogView.build(
        [f"item-{p:05d}-{v}" for p, v in rows],
        [f"id_{p:08d}-01" for p, _ in rows],
        ["MEN" if p % 2 else "WOMEN" for p, _ in rows],
        [f"S0{p % 5 + 1}" for p, _ in rows],
    )


def _popularity(catalog: CatalogView, p_max: int = 100, seed: int = 42) -> np.ndarray:
    return np.array([initial_popularity(i, p_max, seed) for i in catalog.item_ids], dtype=np.int64)


def test_initial_popularity_is_uniform_and_order_free() -> None:
    values = np.array([initial_popularity(f"item-{i}", 100, 42) for i in range(20_000)])
    assert values.min() == 0 and values.max() == 100
    assert abs(values.mean() - 50) < 1.5
    assert initial_popularity("item-1", 100, 42) == initial_popularity("item-1", 100, 42)


def test_popular_mask_is_the_top_fraction() -> None:
    popularity = np.arange(100, dtype=np.int64)
    assert popular_mask(popularity, 0.15).sum() == 15
    assert popular_mask(popularity, 0.15)[85:].all()
    ties = np.array([5, 5, 5, 1], dtype=np.int64)
    assert popular_mask(ties, 0.25).tolist() == [True, True, True, False]


def test_same_seed_same_result_whatever_the_file_order() -> None:
    config = SimulationConfig(users=30, max_purchases=4, seed=9)
    a, b = _catalog(seed=1), _catalog(seed=2)  # same items, different file order
    first = simulate(a, _popularity(a), DEFAULT_REGION, config)
    second = simulate(b, _popularity(b), DEFAULT_REGION, config)
    assert first.users == second.users and first.purchases == second.purchases
    other = simulate(a, _popularity(a), DEFAULT_REGION, SimulationConfig(users=30, seed=10))
    assert other.purchases != first.purchases


def test_purchases_follow_the_protocol() -> None:
    catalog = _catalog()
    config = SimulationConfig(users=60, max_purchases=5, seed=3)
    before = _popularity(catalog)
    result = simulate(catalog, before, DEFAULT_REGION, config)
    gender_of = dict(zip(catalog.item_ids.tolist(), catalog.genders.tolist(), strict=True))
    product_of = dict(zip(catalog.item_ids.tolist(), catalog.product_ids.tolist(), strict=True))
    users = {u.id: u for u in result.users}
    assert len(users) == 60
    per_user: dict[str, list] = {}
    for p in result.purchases:
        per_user.setdefault(p.user_id, []).append(p)
    for user_id, bought in per_user.items():
        assert {gender_of[p.item_id] for p in bought} == {users[user_id].gender}
        assert 1 <= len(bought) <= 5
        assert len({product_of[p.item_id] for p in bought}) == len(bought)  # no product twice
        times = [p.timestamp for p in bought]
        assert times == sorted(times)
        assert datetime(2025, 1, 1, tzinfo=UTC) <= times[0]
        assert times[-1] < datetime(2026, 1, 1, tzinfo=UTC)
    for u in result.users:
        assert 0 <= u.trendiness <= 1
        assert DEFAULT_REGION.lat_min <= u.residence.lat <= DEFAULT_REGION.lat_max
    # popularity rises by exactly one per purchase
    assert int((result.popularity - before).sum()) == len(result.purchases)
    # global time order: every purchase was made against the popularity of its moment
    stamps = [p.timestamp for p in result.purchases]
    assert stamps == sorted(stamps)


def test_trendiness_drives_what_users_buy() -> None:
    catalog = _catalog(products=400)
    popularity = _popularity(catalog)
    config = SimulationConfig(users=600, max_purchases=6, seed=5)
    result = simulate(catalog, popularity, DEFAULT_REGION, config)
    # normalise by the popularity each item had before the simulation
    index = {item: i for i, item in enumerate(catalog.item_ids.tolist())}
    low, high = popularity.min(), popularity.max()
    trend = {u.id: u.trendiness for u in result.users}
    first = {}
    high_t, low_t = [], []
    for p in result.purchases:
        if p.user_id not in first:
            first[p.user_id] = p  # the first purchase is random by design
            continue
        value = (popularity[index[p.item_id]] - low) / (high - low)
        if trend[p.user_id] >= 0.8:
            high_t.append(value)
        elif trend[p.user_id] <= 0.2:
            low_t.append(value)
    assert len(high_t) > 100 and len(low_t) > 100
    assert np.mean(high_t) > np.mean(low_t) + 0.3
    assert np.mean(high_t) > 0.75 and np.mean(low_t) < 0.55


def test_in_trending_mode_the_popular_set_is_the_trending_one() -> None:
    """Item 0 leads all time, item 1 leads the trend: trendy shoppers follow the mode."""
    n = 40
    catalog = CatalogView.build(
        [f"item-{i:03d}" for i in range(n)],
        [f"id_{i:08d}-01" for i in range(n)],
        ["WOMEN"] * n,
        ["S01"] * n,
    )
    popularity = np.zeros(n, dtype=np.int64)
    popularity[0] = 1000
    scores = np.zeros(n)
    scores[1] = 1000.0
    config = SimulationConfig(users=300, max_purchases=3, seed=3, p_threshold=1 / n)

    def bought(result_items: list[str]) -> tuple[int, int]:
        return result_items.count("item-000"), result_items.count("item-001")

    all_time = simulate(catalog, popularity, DEFAULT_REGION, config)
    trending = simulate(
        catalog, popularity, DEFAULT_REGION, config, trending=Trending(scores, 14.0)
    )
    a0, a1 = bought([p.item_id for p in all_time.purchases])
    t0, t1 = bought([p.item_id for p in trending.purchases])
    assert a0 > 5 * max(a1, 1) and t1 > 5 * max(t0, 1)
    assert all_time.popularity[1] == a1 and trending.popularity[0] == 1000 + t0


def _mixed(n: int = 90) -> CatalogView:
    rng = np.random.default_rng(5)
    genders = rng.choice(["MEN", "WOMEN", "UNISEX"], n, p=[0.4, 0.5, 0.1]).tolist()
    ids = [f"i{i:04d}" for i in range(n)]
    stores = [f"S{i % 4}" if i % 5 else "" for i in range(n)]
    return CatalogView.build(ids, [f"p{i // 3:04d}" for i in range(n)], genders, stores)


def _digest(result: Simulation) -> str:
    h = hashlib.sha256()
    for u in result.users:
        h.update(repr((u.id, u.gender, u.trendiness, u.residence.lat, u.residence.lon)).encode())
    for p in result.purchases:
        h.update(repr((p.user_id, p.item_id, p.timestamp.isoformat(), p.store_id)).encode())
    h.update(repr(result.popularity.tolist()).encode())
    return h.hexdigest()[:16]


@pytest.mark.parametrize(
    ("users", "max_purchases", "seed", "shown", "digest"),
    [
        (40, 5, 1, deepfashion().genders, "f245af7447af0f38"),  # UNISEX first purchases
        (300, 3, 7, None, "5beaf61d40130eaa"),
        (30, 40, 3, deepfashion().genders, "421c4ea99ce4dac8"),  # users run out of products
    ],
)
def test_the_same_seed_draws_the_same_shoppers_as_ever(
    users: int, max_purchases: int, seed: int, shown: Any, digest: str
) -> None:
    """Pinned digests of the users, purchases (in the order they ran) and popularity that
    one-object-per-user simulation drew before the simulation moved to arrays, and a
    cross-check of the arrays' users against the objects."""
    view = _mixed()
    start = np.array([initial_popularity(i, 100, seed) for i in view.item_ids.tolist()])
    config = SimulationConfig(users=users, max_purchases=max_purchases, seed=seed)
    result = simulate(view, start, DEFAULT_REGION, config, first_user=3, shown=shown)
    assert _digest(result) == digest
    compact = simulate_compact(view, start, DEFAULT_REGION, config, first_user=3, shown=shown)
    assert [u for u, _ in compact.users()] == result.users
