"""Stores, regions, distances and the per-category round-robin (known answers)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from engine.errors import FashionrecError
from engine.shops.shops import assign_shops, generate_shops
from engine.vocabulary.geo import DEFAULT_REGION, Location, Region, distance_km


def test_great_circle_distance_known_answers() -> None:
    paris, london = Location(48.8566, 2.3522), Location(51.5074, -0.1278)
    assert distance_km(paris, london) == pytest.approx(343.5, abs=1.0)
    assert distance_km(paris, paris) == 0.0
    # one degree of latitude is ~111.2 km on a sphere of radius 6371 km
    assert distance_km(Location(0, 0), Location(1, 0)) == pytest.approx(111.19, abs=0.05)


def test_region_parsing() -> None:
    assert Region.parse("48.7,49.0,2.1,2.6") == Region(48.7, 49.0, 2.1, 2.6)
    for bad in ("48.7,49.0,2.1", "a,b,c,d", "49,48,2,3", "0,1,200,201"):
        with pytest.raises(FashionrecError, match="region"):
            Region.parse(bad)
    assert Region.parse(DEFAULT_REGION.text()) == DEFAULT_REGION
    # the default region is a metropolitan area: tens of kilometres across
    width = distance_km(
        Location(DEFAULT_REGION.lat_min, DEFAULT_REGION.lon_min),
        Location(DEFAULT_REGION.lat_min, DEFAULT_REGION.lon_max),
    )
    assert 10 < width < 80


def test_generated_stores_are_seeded_and_inside_the_region() -> None:
    stores = generate_shops(5, DEFAULT_REGION, seed=7)
    assert stores == generate_shops(5, DEFAULT_REGION, seed=7)
    assert stores != generate_shops(5, DEFAULT_REGION, seed=8)
    assert [s.id for s in stores] == ["S01", "S02", "S03", "S04", "S05"]
    for s in stores:
        assert DEFAULT_REGION.lat_min <= s.location.lat <= DEFAULT_REGION.lat_max
        assert DEFAULT_REGION.lon_min <= s.location.lon <= DEFAULT_REGION.lon_max


def test_round_robin_is_balanced_per_category_and_ignores_input_order() -> None:
    products = {"Dresses": [f"id_{i:08d}-01" for i in range(11)], "Denim": ["id_00000100-01"]}
    stores = ["S01", "S02", "S03"]
    first = assign_shops(products, stores, seed=1)
    shuffled = {c: random.Random(3).sample(ps, len(ps)) for c, ps in products.items()}
    assert assign_shops(shuffled, stores, seed=1) == first
    dresses = Counter(first[p] for p in products["Dresses"])
    assert sorted(dresses.values()) == [3, 4, 4]
    assert assign_shops(products, stores, seed=2) != first  # the seed matters


def test_new_products_fill_the_least_loaded_stores() -> None:
    loads = {"Dresses": {"S01": 2, "S02": 0, "S03": 1}}
    new = assign_shops({"Dresses": ["a", "b", "c"]}, ["S01", "S02", "S03"], 1, loads)
    assert Counter(new.values()) == {"S02": 2, "S03": 1}


def test_vectorised_distances_agree_with_geopy() -> None:
    import numpy as np
    from geopy.distance import great_circle

    from engine.vocabulary.geo import distances_km

    origin = Location(48.8566, 2.3522)
    lats = np.array([51.5074, 48.80, 49.05, np.nan])
    lons = np.array([-0.1278, 2.13, 2.08, 2.0])
    got = distances_km(origin, lats, lons)
    pairs = zip(lats[:3], lons[:3], strict=True)
    want = [great_circle((origin.lat, origin.lon), (a, b)).km for a, b in pairs]
    for (a, b), km in zip(zip(lats[:3], lons[:3], strict=True), want, strict=True):
        assert distance_km(origin, Location(a, b)) == pytest.approx(km, rel=1e-9)
    np.testing.assert_allclose(got[:3], want, rtol=1e-9)
    assert np.isnan(got[3])
