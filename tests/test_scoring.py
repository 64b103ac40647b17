"""The relevance formula: one expression tree, checked by hand, and evaluated alike by numpy and
by Qdrant (both back-ends) at the edges: a shop with no location, popularity outside the
catalog's range, an item with no popularity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.errors import FashionrecError
from engine.helpers import minmax
from engine.popularity.normpop import Stored
from engine.recommend.scoring import PAPER, Weights, terms
from engine.vectorstore.base import Filter, FormulaQuery, PointBatch, Query, VectorStore
from engine.vectorstore.formula import Frame, Var, evaluate
from engine.vocabulary.geo import Location, distance_km
from engine.vocabulary.schema import CATEGORY, POPULARITY, POPULARITY_RANK, STORE_LOCATION, point_id

ORIGIN = (48.85, 2.35)
SHOP = Location(48.90, 2.40)
CATEGORIES = {1.0: ("Dresses",), 0.4: ("Skirts",)}  # CatSim against the query's category


def _frame(popularity: list[float], category: list[str], located: list[bool]) -> Frame:
    n = len(popularity)
    lat = np.array([SHOP.lat if on else np.nan for on in located])
    lon = np.array([SHOP.lon if on else np.nan for on in located])
    return Frame(
        scores=np.linspace(0.9, 0.5, n),
        numbers={POPULARITY: np.array(popularity, dtype=np.float64)},
        keywords={CATEGORY: np.array(category, dtype=object)},
        points={STORE_LOCATION: (lat, lon)},
    )


def test_relevance_by_hand() -> None:
    frame = _frame([80.0, 20.0], ["Dresses", "Skirts"], [True, True])
    found = terms(Weights(0.6, 0.2, 0.2, 2.0), 0.7, (0.0, 100.0), CATEGORIES, normalise="minmax")
    # t = 0.7, γ = 2: popularity terms 1 − 0.1² = 0.99 and 1 − 0.5² = 0.75
    got = evaluate(found.relevance(Weights(0.6, 0.2, 0.2, 2.0)), frame, found.defaults)
    np.testing.assert_allclose(got, [0.6 * 0.9 + 0.2 * 0.99 + 0.2, 0.6 * 0.5 + 0.2 * 0.75 + 0.08])
    paper = evaluate(found.relevance(PAPER), frame, found.defaults)
    np.testing.assert_allclose(paper, [0.7 * 0.9 + 0.3 * 0.99, 0.7 * 0.5 + 0.3 * 0.75])


def test_odd_gamma_uses_the_absolute_difference() -> None:
    frame = _frame([20.0, 80.0], ["Tees", "Tees"], [True, True])
    found = terms(Weights(0, 1, 0, 3.0), 0.5, (0.0, 100.0), CATEGORIES, normalise="minmax")
    got = evaluate(found.popularity, frame, found.defaults)
    np.testing.assert_allclose(got, [1 - 0.3**3, 1 - 0.3**3])  # symmetric, never above 1


def test_norm_popularity_is_clipped_to_the_catalog_range() -> None:
    frame = _frame([-50.0, 0.0, 50.0, 100.0, 250.0], ["Tees"] * 5, [True] * 5)
    found = terms(Weights(), 0.5, (0.0, 100.0), CATEGORIES, normalise="minmax")
    got = evaluate(found.norm_popularity, frame, found.defaults)
    np.testing.assert_allclose(got, [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(got, minmax(frame.numbers[POPULARITY], 0.0, 100.0))
    empty = terms(Weights(), 0.5, (7.0, 7.0), CATEGORIES, normalise="minmax")  # one value: 0
    np.testing.assert_allclose(evaluate(empty.norm_popularity, frame, empty.defaults), 0.0)


def test_rank_norm_popularity_is_the_stored_rank_clipped() -> None:
    frame = _frame([5.0, 1.0, 9.0, 3.0], ["Tees"] * 4, [True] * 4)
    ranks = np.array([-0.1, 0.3, 1.2, np.nan])  # out of [0, 1], and one not stored
    frame = Frame(
        frame.scores, {**frame.numbers, POPULARITY_RANK: ranks}, frame.keywords, frame.points
    )
    found = terms(Weights(), 0.5, (0.0, 0.0), CATEGORIES)  # rank: the span is not read
    got = evaluate(found.norm_popularity, frame, found.defaults)
    np.testing.assert_allclose(got, [0.0, 0.3, 1.0, 0.0])
    trending = terms(Weights(), 0.5, (0.0, 0.0), CATEGORIES, mode="trending")
    assert (trending.field, trending.rank_field) == ("trending", "trending_rank")


def test_the_distance_term_is_0_where_the_shop_has_no_location() -> None:
    frame = _frame([0.0, 0.0], ["Tees", "Tees"], [True, False])
    weights = Weights(0.0, 0.0, 0.0, distance=1.0, distance_scale_km=5.0)
    found = terms(weights, 0.0, (0.0, 1.0), CATEGORIES, origin=ORIGIN, normalise="minmax")
    got = evaluate(found.relevance(weights), frame, found.defaults)
    km = distance_km(Location(*ORIGIN), SHOP)
    np.testing.assert_allclose(got, [math.exp(-km / 5.0), 0.0], rtol=1e-9)


def test_a_value_with_no_default_fails_as_in_qdrant() -> None:
    frame = _frame([1.0], ["Tees"], [True])
    with pytest.raises(ValueError, match="trending"):
        evaluate(Var("trending"), frame, {})


@pytest.mark.parametrize(
    "weights",
    [Weights(visual=1.2), Weights(popularity=-0.1), Weights(gamma=0), Weights(distance_scale_km=0)],
)
def test_bad_weights(weights: Weights) -> None:
    with pytest.raises(FashionrecError):
        weights.validate()


# --- numpy and Qdrant evaluate the same tree alike, at the edges -----------------------------

EDGES = [  # item, popularity and its rank (None: no payload field), category, shop located
    ("a", 250.0, 1.5, "Dresses", True),  # above the range the formula is given
    ("b", -20.0, -0.5, "Skirts", False),  # below it, and no location
    ("c", 40.0, 0.4, "Tees", True),
    ("d", None, None, "Dresses", False),  # no popularity at all: the default, 0
    ("e", 100.0, 1.0, "Skirts", True),
]


def _edge_store(store: VectorStore) -> None:
    vectors = np.random.default_rng(3).random((len(EDGES), 4), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    payloads = []
    for item, popularity, rank, category, located in EDGES:
        payload: dict[str, object] = {"item_id": item, CATEGORY: category, "gender": "WOMEN"}
        if popularity is not None:
            payload[POPULARITY] = popularity
        if rank is not None:
            payload[POPULARITY_RANK] = rank
        if located:
            payload[STORE_LOCATION] = SHOP.payload()
        payloads.append(payload)
    store.ensure_vector("resnet50", 4)
    store.write(PointBatch([point_id(e[0]) for e in EDGES], payloads, "resnet50", vectors))
    store.optimize()


@pytest.mark.parametrize("normalise", ["rank", "minmax"])
@pytest.mark.parametrize(
    "weights",
    [
        Weights(0.6, 0.2, 0.2, 2.0, distance=0.3, distance_scale_km=5.0),
        Weights(0.0, 1.0, 0.0, 3.0),
        Weights(0.0, 0.0, 0.0, distance=1.0, distance_scale_km=2.0),
    ],
)
def test_numpy_and_qdrant_give_the_same_scores_at_the_edges(
    store: VectorStore, weights: Weights, normalise: Stored
) -> None:
    _edge_store(store)
    query = np.array([0.5, 0.5, 0.5, 0.5], dtype=np.float32)
    prefetch = Query(query, "resnet50", limit=10, filter=Filter())
    found = terms(weights, 0.6, (0.0, 100.0), CATEGORIES, origin=ORIGIN, normalise=normalise)
    ask = FormulaQuery(prefetch, found.relevance(weights), found.defaults, limit=10)
    hits = store.formula_search([ask], ("item_id",))[0]
    cosine = {h.payload["item_id"]: h.score for h in store.search([prefetch], ("item_id",))[0]}
    assert len(hits) == len(EDGES)
    frame = _frame(
        [e[1] if e[1] is not None else np.nan for e in EDGES],
        [e[3] for e in EDGES],
        [e[4] for e in EDGES],
    )
    ranks = np.array([e[2] if e[2] is not None else np.nan for e in EDGES])
    frame = Frame(
        np.array([cosine[e[0]] for e in EDGES]),
        {**frame.numbers, POPULARITY_RANK: ranks},
        frame.keywords,
        frame.points,
    )
    mine = dict(zip([e[0] for e in EDGES], evaluate(ask.formula, frame, ask.defaults), strict=True))
    for hit in hits:
        assert hit.score == pytest.approx(mine[hit.payload["item_id"]], rel=1e-4, abs=1e-5)
