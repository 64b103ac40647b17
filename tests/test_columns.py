"""The rerank's fields held in this process (engine.recommend.columns): searches return ids
and scores only, and every recommendation stays what it is with payloads."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from engine.recommend.columns import Columns
from engine.recommend.recommender import Params, Recommender
from engine.recommend.rerank import Popularity, Recommendation
from engine.recommend.scoring import Weights
from engine.vectorstore.base import PointBatch, VectorStore
from engine.vectorstore.exact import ExactIndex
from engine.vocabulary.schema import HIT_FIELDS, POPULARITY, TRENDING, point_id
from tests.builders import HOME, build_catalog, buy, shopper

WEIGHTS = (
    Weights(),
    Weights(visual=0.3, popularity=0.5, category=0.2, gamma=3.0),
    Weights(visual=0.5, popularity=0.2, category=0.1, distance=0.2, distance_scale_km=10),
)


def _same(a: list[Recommendation], b: list[Recommendation]) -> None:
    assert [r.item_id for r in a] == [r.item_id for r in b]
    for x, y in zip(a, b, strict=True):
        got, want = asdict(x), asdict(y)
        for key in ("visual", "relevance", "popularity", "norm_popularity", "category_sim"):
            assert got.pop(key) == pytest.approx(want.pop(key), abs=1e-6)
        assert got.pop("distance_km") == pytest.approx(want.pop("distance_km"), abs=1e-9)
        assert got.pop("popularity_term") == pytest.approx(want.pop("popularity_term"), abs=1e-6)
        assert got == want


@pytest.mark.parametrize("rerank", ["client", "server"])
@pytest.mark.parametrize("mode", ["all-time", "trending"])
def test_the_table_gives_the_same_recommendations_as_payloads(
    store: VectorStore, rerank: str, mode: str
) -> None:
    payloads = build_catalog(store)
    for n, p in enumerate(payloads):  # a trending score unlike the all-time one
        store.set_payload([point_id(str(p["item_id"]))], {TRENDING: float((n * 37) % 11)})
    plain, tabled = Recommender(store), Recommender(store, columns=Columns(store))
    rng = np.random.default_rng(4)
    for index in rng.choice(len(payloads), 3, replace=False):
        item = str(payloads[index]["item_id"])
        for weights in WEIGHTS:
            params = Params(k=6, weights=weights, rerank=rerank, popularity=mode, at=HOME)  # type: ignore[arg-type]
            _same(tabled.for_item(item, params), plain.for_item(item, params))
    for gender in ("MEN", "WOMEN"):
        bought = [p["item_id"] for p in payloads if p["gender"] == gender][::9][:3]
        for weights in WEIGHTS:
            params = Params(k=5, weights=weights, rerank=rerank, popularity=mode)  # type: ignore[arg-type]
            got = tabled.for_user(shopper(gender, 0.7), buy(bought), params)
            want = plain.for_user(shopper(gender, 0.7), buy(bought), params)
            _same(got.merged, want.merged)
            for (_, a), (_, b) in zip(got.per_purchase, want.per_purchase, strict=True):
                _same(a, b)


def test_the_table_with_an_exact_searcher_and_a_popularity_in_memory(store: VectorStore) -> None:
    payloads = build_catalog(store)
    exact = ExactIndex.load(store, "resnet50", HIT_FIELDS).search
    values = {str(p["item_id"]): float(n % 7) for n, p in enumerate(payloads)}
    held = Popularity.of_values(values, "rank")
    plain = Recommender(store, searcher=exact, popularity=held)
    tabled = Recommender(store, searcher=exact, popularity=held, columns=Columns(store))
    bought = [p["item_id"] for p in payloads if p["gender"] == "WOMEN"][::13][:4]
    got = tabled.for_user(shopper("WOMEN", 0.2), buy(bought), Params(k=5))
    want = plain.for_user(shopper("WOMEN", 0.2), buy(bought), Params(k=5))
    _same(got.merged, want.merged)


def test_the_table_follows_the_stores_writes(store: VectorStore) -> None:
    payloads = build_catalog(store)
    columns = Columns(store)
    assert len(columns) == len(payloads)
    engine = Recommender(store, columns=columns)
    item = str(payloads[0]["item_id"])
    popularity_only = Weights(visual=0.0, popularity=1.0, category=0.0)
    # min–max reads the popularity itself: the written values rank at once
    params = Params(k=3, weights=popularity_only, trendiness=1.0, normalise="minmax")
    before = engine.for_item(item, params)
    low, high = columns.value_range(POPULARITY) or (0.0, 0.0)
    # a purchase burst makes the last-ranked candidate the most popular item of the store
    lowest = Params(k=40, weights=popularity_only, trendiness=0.0, normalise="minmax")
    last = engine.for_item(item, lowest)[0]
    store.set_payload([point_id(last.item_id)], {POPULARITY: high + 50.0})
    after = engine.for_item(item, params)
    assert after[0].item_id == last.item_id != before[0].item_id
    assert after[0].popularity == high + 50.0
    assert columns.value_range(POPULARITY) == (low, high + 50.0)
    # a new item, written after the table was read, is found with its fields
    twin = dict(payloads[0], item_id="NEW-1", product_id="new-product", popularity=high + 90.0)
    vector = store.retrieve([point_id(item)], vector="resnet50")[0].vector
    assert vector is not None
    store.upsert(PointBatch([point_id("NEW-1")], [twin], "resnet50", vector[None, :]))
    store.optimize()
    assert engine.for_item(item, params)[0].item_id == "NEW-1"
    assert len(columns) == len(payloads) + 1


def test_a_point_the_table_never_heard_of_is_read_from_the_store(store: VectorStore) -> None:
    payloads = build_catalog(store)
    columns = Columns(store)
    # written behind the table's back (as another process could): not in the table yet
    twin = dict(payloads[0], item_id="NEW-2", product_id="new-product-2")
    vector = store.retrieve([point_id(str(payloads[0]["item_id"]))], vector="resnet50")[0].vector
    assert vector is not None
    store._listeners = []  # type: ignore[attr-defined]
    store.upsert(PointBatch([point_id("NEW-2")], [twin], "resnet50", vector[None, :]))
    store.optimize()
    recs = Recommender(store, columns=columns).for_item(str(payloads[0]["item_id"]), Params(k=3))
    assert recs[0].item_id == "NEW-2" and recs[0].product_id == "new-product-2"


def test_deleted_points_leave_the_store_and_the_table(store: VectorStore) -> None:
    payloads = build_catalog(store)
    columns = Columns(store)
    gone = [point_id(str(p["item_id"])) for p in payloads[:3]]
    store.delete(gone)
    store.delete([])  # nothing: nothing happens
    assert store.count() == len(payloads) - 3 and not store.retrieve(gone)
    ids, _ = columns.popularity_columns()
    assert len(columns) == len(payloads) - 3
    assert not {str(p["item_id"]) for p in payloads[:3]} & set(ids)
