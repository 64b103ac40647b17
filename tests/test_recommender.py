"""The recommendation path on a generated catalog with known structure, on both back-ends."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import FashionrecError
from engine.popularity.upkeep import sync_ranks
from engine.recommend.recommender import Params, Recommender, Rerank
from engine.recommend.rerank import Popularity
from engine.recommend.scoring import Weights
from engine.vectorstore.base import Hit, VectorStore
from engine.vectorstore.edge import EdgeStore
from engine.vectorstore.exact import ExactIndex
from engine.vectorstore.server import ServerStore
from engine.vocabulary.geo import distance_km
from engine.vocabulary.schema import HIT_FIELDS, point_id
from tests.builders import HOME, SHOPS, as_hits, assert_congruent, build_catalog, buy, shopper


def test_engine_matches_the_exact_reference(store: VectorStore) -> None:
    payloads = build_catalog(store)
    engine = Recommender(store)
    reference = Recommender(store, searcher=ExactIndex.load(store, "resnet50", HIT_FIELDS).search)
    rng = np.random.default_rng(1)
    params = Params(k=5, candidates=30)
    overlaps = []
    for index in rng.choice(len(payloads), 40, replace=False):
        item = payloads[index]["item_id"]
        got = [r.item_id for r in engine.for_item(item, params)]
        want = [r.item_id for r in reference.for_item(item, params)]
        overlaps.append(len(set(got) & set(want)) / len(want))
    for gender in ("MEN", "WOMEN"):
        bought = [p["item_id"] for p in payloads if p["gender"] == gender][::40][:5]
        got_user = engine.for_user(shopper(gender, 0.8), buy(bought), params)
        want_user = reference.for_user(shopper(gender, 0.8), buy(bought), params)
        assert [r.item_id for r in got_user.merged] == [r.item_id for r in want_user.merged]
    assert np.mean(overlaps) >= 0.99


def test_gender_filter_never_leaks_and_bought_products_never_return(store: VectorStore) -> None:
    payloads = build_catalog(store)
    engine = Recommender(store)
    by_id = {p["item_id"]: p for p in payloads}
    for gender in ("MEN", "WOMEN"):
        bought = [p["item_id"] for p in payloads if p["gender"] == gender][::7][:5]
        products = {by_id[i]["product_id"] for i in bought}
        result = engine.for_user(shopper(gender), buy(bought), Params(k=10, candidates=100))
        lists = [recs for _, recs in result.per_purchase] + [result.merged]
        for recs in lists:
            assert len(recs) == 10
            assert {by_id[r.item_id]["gender"] for r in recs} == {gender}  # actual payload gender
            assert not {r.product_id for r in recs} & products
            assert len({r.product_id for r in recs}) == len(recs)  # one view per product


def test_item_query_skips_its_own_product_and_can_switch_gender(store: VectorStore) -> None:
    payloads = build_catalog(store)
    engine = Recommender(store)
    item = payloads[0]
    recs = engine.for_item(item["item_id"], Params(k=5))
    assert item["product_id"] not in {r.product_id for r in recs}
    assert all(r.gender == item["gender"] for r in recs)
    other = "WOMEN" if item["gender"] == "MEN" else "MEN"
    assert all(r.gender == other for r in engine.for_item(item["item_id"], Params(gender=other)))


def test_popularity_weight_pulls_towards_the_users_trendiness(store: VectorStore) -> None:
    payloads = build_catalog(store)
    engine = Recommender(store)
    bought = [p["item_id"] for p in payloads if p["gender"] == "WOMEN"][::9][:5]
    gaps = []
    for w_p in (0.0, 0.4, 0.8):
        weights = Weights(visual=1.0 - w_p, popularity=w_p, category=0.0)
        result = engine.for_user(shopper("WOMEN", 0.9), buy(bought), Params(k=10, weights=weights))
        recs = [r for _, rs in result.per_purchase for r in rs]
        gaps.append(np.mean([abs(r.norm_popularity - 0.9) for r in recs]))
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.15


def test_max_km_excludes_far_stores(store: VectorStore) -> None:
    payloads = build_catalog(store)
    engine = Recommender(store)
    bought = [p["item_id"] for p in payloads if p["gender"] == "MEN"][:2]
    near = engine.for_user(shopper("MEN"), buy(bought), Params(k=5, max_km=20.0))
    stores = {r.store_id for _, rs in near.per_purchase for r in rs}
    assert stores <= {"S01", "S02"} and stores
    for _, recs in near.per_purchase:
        for r in recs:
            assert r.distance_km is not None and r.distance_km <= 20.0
            assert r.distance_km == pytest.approx(distance_km(HOME, SHOPS[str(r.store_id)]))
    close = engine.for_user(shopper("MEN"), buy(bought), Params(k=5, max_km=5.0))
    assert {r.store_id for _, rs in close.per_purchase for r in rs} == {"S01"}


def test_errors_name_what_is_wrong(store: VectorStore) -> None:
    engine = Recommender(store)
    with pytest.raises(FashionrecError, match="the vector store is empty"):
        engine.for_item("x", Params())
    payloads = build_catalog(store)
    with pytest.raises(FashionrecError, match="unknown item 'nope'"):
        engine.for_item("nope", Params())
    with pytest.raises(FashionrecError, match="backbone vgg16 is not ingested"):
        engine.for_item("nope", Params(space="vgg16"))
    with pytest.raises(FashionrecError, match="k must be positive"):
        engine.for_item("nope", Params(k=0))
    with pytest.raises(FashionrecError, match="--max-km needs a location"):
        engine.for_item(payloads[0]["item_id"], Params(max_km=3))
    # the formula inside Qdrant ranks on the stored popularity: it cannot honour an override
    held = Recommender(store, popularity=Popularity({}, {}))
    with pytest.raises(FashionrecError, match="cannot use a popularity held in memory"):
        held.for_item(payloads[0]["item_id"], Params(rerank="server"))
    assert held.for_item(payloads[0]["item_id"], Params(rerank="client"))


@pytest.mark.parametrize(
    "weights",
    [
        Weights(),
        Weights(visual=0.7, popularity=0.3, category=0.0, gamma=2.0),
        Weights(visual=0.3, popularity=0.5, category=0.2, gamma=3.0),
        Weights(visual=0.5, popularity=0.2, category=0.1, distance=0.2, distance_scale_km=10),
        Weights(visual=0.0, popularity=0.6, category=0.4),
    ],
)
def test_rerank_inside_qdrant_matches_the_client_rerank(
    store: VectorStore, weights: Weights
) -> None:
    payloads = build_catalog(store)
    engine = Recommender(store)
    rng = np.random.default_rng(2)
    for gender in ("MEN", "WOMEN"):
        items = [p["item_id"] for p in payloads if p["gender"] == gender]
        bought = [items[i] for i in rng.choice(len(items), 3, replace=False)]
        for t in (0.1, 0.9):
            user, purchases = shopper(gender, t), buy(bought)
            client = engine.for_user(user, purchases, Params(k=5, weights=weights))
            server = engine.for_user(user, purchases, Params(k=5, weights=weights, rerank="server"))
            for (_, a), (_, b) in zip(client.per_purchase, server.per_purchase, strict=True):
                assert [r.item_id for r in a] == [r.item_id for r in b]
                np.testing.assert_allclose(
                    [r.relevance for r in a], [r.relevance for r in b], atol=1e-4
                )
                if weights.visual:
                    np.testing.assert_allclose(
                        [r.visual for r in a], [r.visual for r in b], atol=1e-3
                    )
            assert [r.item_id for r in client.merged] == [r.item_id for r in server.merged]


@pytest.mark.parametrize("rerank", ["client", "server"])
def test_recommendations_are_congruent_on_edge_and_memory(
    edge_and_memory: tuple[EdgeStore, ServerStore], rerank: Rerank
) -> None:
    """The same catalog on Qdrant Edge and on qdrant-client's exact local mode: the same
    lists, rank by rank, with the same relevance (the rerank in the client or in Qdrant)."""
    edge, memory = edge_and_memory
    payloads = build_catalog(edge)
    assert build_catalog(memory) == payloads
    rng = np.random.default_rng(3)
    items = [payloads[i]["item_id"] for i in rng.choice(len(payloads), 8, replace=False)]
    weights = [
        Weights(),
        Weights(visual=0.3, popularity=0.5, category=0.2, gamma=3.0),
        Weights(visual=0.5, popularity=0.2, category=0.1, distance=0.2, distance_scale_km=10),
    ]

    def for_items(store: VectorStore) -> list[list[Hit]]:
        engine = Recommender(store)
        return [
            as_hits(engine.for_item(item, Params(k=10, weights=w, rerank=rerank, at=HOME)))
            for item in items
            for w in weights
        ]

    def for_users(store: VectorStore) -> list[list[Hit]]:
        engine = Recommender(store)
        lists = []
        for gender in ("MEN", "WOMEN"):
            bought = [p["item_id"] for p in payloads if p["gender"] == gender][::11][:4]
            params = Params(k=10, rerank=rerank, max_km=25.0)
            result = engine.for_user(shopper(gender, 0.8), buy(bought), params)
            lists += [as_hits(recs) for _, recs in result.per_purchase] + [as_hits(result.merged)]
        return lists

    assert assert_congruent(for_items, edge, memory) == len(items) * len(weights) * 10
    assert assert_congruent(for_users, edge, memory) == 2 * 5 * 10


def _with_trending(store: VectorStore, payloads: list[dict[str, object]]) -> None:
    """A trending score that reverses the all-time order: the least sold sell now."""
    for p in payloads:
        trend = 2.0 ** (-float(p["popularity"]) / 10)  # type: ignore[arg-type]
        store.set_payload([point_id(str(p["item_id"]))], {"trending": trend})
    sync_ranks(store)


def test_the_trending_mode_ranks_on_the_trending_score(store: VectorStore) -> None:
    payloads = build_catalog(store)
    _with_trending(store, payloads)
    engine = Recommender(store)
    popularity_only = Weights(visual=0.0, popularity=1.0, category=0.0)
    bought = [p["item_id"] for p in payloads if p["gender"] == "WOMEN"][:2]
    user, purchases = shopper("WOMEN", 1.0), buy(bought)  # wants the most popular
    all_time = engine.for_user(user, purchases, Params(k=5, weights=popularity_only))
    trending = engine.for_user(
        user, purchases, Params(k=5, weights=popularity_only, popularity="trending")
    )
    sold = {str(p["item_id"]): float(p["popularity"]) for p in payloads}  # type: ignore[arg-type]
    for r in trending.merged:  # ranked on the trending scores, the least sold first
        assert r.popularity == pytest.approx(2.0 ** (-sold[r.item_id] / 10))
    assert [r.item_id for r in all_time.merged] != [r.item_id for r in trending.merged]
    assert min(sold[r.item_id] for r in all_time.merged) > max(
        sold[r.item_id] for r in trending.merged
    )
    server = engine.for_user(
        user,
        purchases,
        Params(k=5, weights=popularity_only, popularity="trending", rerank="server"),
    )
    assert [r.item_id for r in server.merged] == [r.item_id for r in trending.merged]
    with pytest.raises(FashionrecError, match="popularity must be one of"):
        Params(popularity="hot")  # type: ignore[arg-type]
