"""Diversity by maximal marginal relevance: known answers, and the client's MMR against
Qdrant's (Qdrant Edge, and qdrant-client's local mode)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.recommend.diversity import intra_list_diversity, mmr
from engine.recommend.recommender import Params, Recommender, Rerank
from engine.recommend.rerank import Recommendation, best_per_product, diversify
from engine.recommend.scoring import Weights
from engine.vectorstore.base import Hit, PointBatch, Query, VectorStore
from engine.vectorstore.edge import EdgeStore
from engine.vectorstore.exact import ExactIndex
from engine.vectorstore.server import ServerStore
from engine.vocabulary.schema import HIT_FIELDS, point_id
from tests.builders import build_catalog, buy, shopper

VISUAL = Weights(visual=1.0, popularity=0.0, category=0.0)


def naive_mmr(
    relevance: Sequence[float], vectors: np.ndarray, diversity: float, k: int, products: list[str]
) -> list[int]:
    """The definition, word for word: the slow reference the fast one is checked against."""
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    picked = [int(np.argmax(relevance))]
    while len(picked) < len(relevance):
        best, best_score = -1, -np.inf
        for i in range(len(relevance)):
            if i in picked:
                continue
            closest = max(float(units[i] @ units[j]) for j in picked)
            score = (1 - diversity) * relevance[i] - diversity * closest
            if score > best_score:
                best, best_score = i, score
        picked.append(best)
    listed: list[int] = []
    for i in picked:
        if products[i] not in {products[j] for j in listed}:
            listed.append(i)
    return listed[:k]


# a, b, c, d: relevance 1, 0.9, 0.8, 0.5; a and b look the same, c is cos 0.6 from a and
# 0.8 from d, d is orthogonal to a.
REL = [1.0, 0.9, 0.8, 0.5]
VECS = np.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])


@pytest.mark.parametrize(
    ("diversity", "order"),
    [
        (0.0, "abcd"),  # relevance order
        # after a: b 0.675 − 0.25 = 0.425, c 0.6 − 0.15 = 0.45, d 0.375 → c;
        # then b 0.425, d 0.375 − 0.2 = 0.175 → b
        (0.25, "acbd"),
        # after a: b 0.45 − 0.5 = −0.05, c 0.4 − 0.3 = 0.1, d 0.25 → d;
        # then b −0.05, c 0.4 − 0.4 = 0 → c
        (0.5, "adcb"),
        (1.0, "adcb"),  # after a, the least like what is listed: d (0), c (−0.8), b (−1)
    ],
)
def test_mmr_known_answers(diversity: float, order: str) -> None:
    got = mmr(REL, VECS, diversity, k=4)
    assert "".join("abcd"[i] for i in got) == order
    assert got == naive_mmr(REL, VECS, diversity, 4, list("abcd"))


def test_mmr_lists_one_view_per_product_and_a_passed_view_still_counts() -> None:
    # a and b are two views of product P: b is never listed
    assert mmr(REL, VECS, 0.0, 3, ["P", "P", "C", "D"]) == [0, 2, 3]
    assert mmr(REL, VECS, 0.25, 3, ["P", "P", "C", "D"]) == [0, 2, 3]
    assert mmr(REL, VECS, 0.5, 2, ["P", "P", "C", "D"]) == [0, 3]
    # fewer products than k: all of them
    assert mmr(REL, VECS, 0.5, 9, ["P", "P", "P", "P"]) == [0]
    assert mmr([], np.zeros((0, 2)), 0.5, 3) == []


def test_mmr_matches_the_definition_on_random_candidates() -> None:
    rng = np.random.default_rng(7)
    for _ in range(30):
        n = int(rng.integers(2, 25))
        relevance = rng.random(n).tolist()
        vectors = rng.normal(size=(n, 6))
        products = [f"p{int(i)}" for i in rng.integers(0, max(2, n // 2), n)]
        diversity = float(rng.choice([0.0, 0.1, 0.5, 0.9, 1.0]))
        k = int(rng.integers(1, n + 1))
        got = mmr(relevance, vectors, diversity, k, products)
        assert got == naive_mmr(relevance, vectors, diversity, k, products)


def test_diversity_zero_is_the_best_view_per_product() -> None:
    rng = np.random.default_rng(3)
    blank = Recommendation(0, "", "", "Dresses", "WOMEN", None, None, *[0.0] * 6, "q")
    recs = [
        replace(
            blank,
            item_id=f"i{n:02d}",
            product_id=f"p{n % 7}",
            relevance=float(rng.choice([0.1, 0.2, 0.3])),
        )
        for n in range(30)
    ]
    vectors = {r.item_id: rng.normal(size=4).astype(np.float32) for r in recs}
    assert diversify(recs, vectors, 0.0, 5) == best_per_product(recs, 5)


def test_intra_list_diversity() -> None:
    e1, e2 = [1.0, 0.0], [0.0, 3.0]
    assert intra_list_diversity(np.array([e1, e2])) == pytest.approx(1.0)
    assert intra_list_diversity(np.array([e1, e1])) == pytest.approx(0.0)
    assert intra_list_diversity(np.array([e1, e1, e2])) == pytest.approx(2 / 3)  # 0, 1, 1
    assert intra_list_diversity(np.array([[0.6, 0.8], e1])) == pytest.approx(0.4)
    assert intra_list_diversity(np.array([e1])) == 0.0
    assert intra_list_diversity(np.zeros((0, 2))) == 0.0


def test_diversity_is_validated() -> None:
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="diversity"):
            Params(diversity=bad)
    Params(diversity=1.0)


# --- the recommender: the client's MMR and Qdrant's on a tiny set with known answers --------

# The query item is e1; candidates (unit vectors, cosine to the query = their relevance
# with visual weights only): a1, a2 two views of product A, then b, c, d.
TINY = {
    "q": ("Q", [1.0, 0.0, 0.0]),
    "a1": ("A", [0.96, 0.28, 0.0]),  # cos q 0.96
    "a2": ("A", [0.936, 0.352, 0.0]),  # cos q 0.936, cos a1 0.997
    "b": ("B", [0.8, 0.6, 0.0]),  # cos q 0.8, cos a1 0.936, cos a2 0.96
    "c": ("C", [0.6, 0.0, 0.8]),  # cos q 0.6, cos a1 0.576, cos b 0.48
    "d": ("D", [0.28, -0.96, 0.0]),  # cos q 0.28, cos a1 0, cos c 0.168
    "m": ("M", [1.0, 0.0, 0.0]),  # another gender: never a candidate
}
TINY_ANSWERS = {
    0.0: ["a1", "b", "c", "d"],
    # a1; a2 0.453 (counts, not listed); b 0.6 − 0.25·0.96 = 0.36, c 0.306, d 0.21 → b, c, d
    0.25: ["a1", "b", "c", "d"],
    # a1; d 0.14 beats c 0.012, a2 −0.03, b −0.068; then c; then a2 (passed over), b
    0.5: ["a1", "d", "c", "b"],
    1.0: ["a1", "d", "c", "b"],
}


def tiny_store(store: VectorStore) -> None:
    payloads = [
        {
            "item_id": item,
            "product_id": product,
            "gender": "MEN" if item == "m" else "WOMEN",
            "category": "Dresses",
            "popularity": 0.0,
        }
        for item, (product, _) in TINY.items()
    ]
    vectors = np.array([v for _, v in TINY.values()], dtype=np.float32)
    store.ensure_vector("resnet50", 3)
    store.write(PointBatch([point_id(i) for i in TINY], payloads, "resnet50", vectors))
    store.optimize()


@pytest.mark.parametrize("rerank", ["client", "server"])
@pytest.mark.parametrize("diversity", sorted(TINY_ANSWERS))
def test_client_and_qdrant_mmr_give_the_known_answers_on_both_back_ends(
    edge_and_memory: tuple[EdgeStore, ServerStore], rerank: Rerank, diversity: float
) -> None:
    for store in edge_and_memory:
        tiny_store(store)
        params = Params(k=4, candidates=5, weights=VISUAL, rerank=rerank, diversity=diversity)
        recs = Recommender(store).for_item("q", params)
        assert [r.item_id for r in recs] == TINY_ANSWERS[diversity], store.location
        for r in recs:
            assert r.relevance == pytest.approx(r.visual, abs=1e-5)
            assert r.relevance == pytest.approx(float(np.array(TINY[r.item_id][1])[0]), abs=1e-3)


def test_qdrant_mmr_is_asked_only_where_it_is_defined(
    edge_and_memory: tuple[EdgeStore, ServerStore],
) -> None:
    """Qdrant's MMR for visual-only weights; the formula in Qdrant and the client's MMR
    otherwise; plain searches without vectors at λ = 0."""
    store = edge_and_memory[1]
    tiny_store(store)
    asked: list[Query] = []
    search = store.search

    def spy(queries: Sequence[Query], fields: Sequence[str]) -> list[list[Hit]]:
        asked.extend(queries)
        return search(queries, fields)

    store.search = spy  # type: ignore[method-assign]
    engine = Recommender(store)
    engine.for_item("q", Params(k=2, candidates=5, weights=VISUAL))
    assert [(q.with_vector, q.mmr) for q in asked] == [(False, None)]
    asked.clear()
    engine.for_item("q", Params(k=2, candidates=5, weights=VISUAL, diversity=0.5))
    assert [(q.with_vector, q.mmr) for q in asked] == [(True, None)]
    asked.clear()
    params = Params(k=2, candidates=5, weights=VISUAL, diversity=0.5, rerank="server")
    engine.for_item("q", params)
    assert len(asked) == 1 and asked[0].mmr is not None and asked[0].mmr.diversity == 0.5
    assert not asked[0].with_vector  # an item's list is Qdrant's: no vectors travel
    asked.clear()
    engine.for_user(shopper("WOMEN"), buy(["a1", "c"]), params)
    assert [(q.with_vector, q.mmr is not None) for q in asked] == [(True, True)] * 2  # merged
    asked.clear()
    engine.for_item("q", replace(params, weights=Weights()))  # the formula: no plain search
    assert asked == []


def test_hits_without_vectors_are_completed_from_the_store(
    edge_and_memory: tuple[EdgeStore, ServerStore],
) -> None:
    store = edge_and_memory[0]
    tiny_store(store)

    def bare(queries: Sequence[Query], fields: Sequence[str]) -> list[list[Hit]]:
        return [[replace(h, vector=None) for h in hits] for hits in store.search(queries, fields)]

    params = Params(k=4, candidates=5, weights=VISUAL, diversity=0.5)
    recs = Recommender(store, searcher=bare).for_item("q", params)
    assert [r.item_id for r in recs] == TINY_ANSWERS[0.5]


# --- congruence on a bigger catalog ---------------------------------------------------------


def _ids(recs: list[Recommendation]) -> list[str]:
    return [r.item_id for r in recs]


@pytest.mark.parametrize("diversity", [0.3, 0.7])
def test_client_and_qdrant_mmr_agree_on_a_catalog(
    edge_and_memory: tuple[EdgeStore, ServerStore], diversity: float
) -> None:
    """Visual-only weights: Qdrant's MMR (Edge and local mode) and the client's, over the
    same candidates, list the same items; the exact reference agrees with them."""
    edge, memory = edge_and_memory
    payloads = build_catalog(edge)
    build_catalog(memory)
    exact = ExactIndex.load(edge, "resnet50", HIT_FIELDS).search
    rng = np.random.default_rng(5)
    items = [payloads[i]["item_id"] for i in rng.choice(len(payloads), 10, replace=False)]
    client = Params(k=8, candidates=60, weights=VISUAL, diversity=diversity)
    server = replace(client, rerank="server")
    for item in items:
        want = _ids(Recommender(memory, searcher=exact).for_item(item, client))
        assert len(want) == 8
        assert _ids(Recommender(edge).for_item(item, server)) == want
        assert _ids(Recommender(memory).for_item(item, server)) == want
        assert _ids(Recommender(edge).for_item(item, client)) == want
        assert _ids(Recommender(memory).for_item(item, client)) == want


def test_formula_in_qdrant_then_mmr_agrees_with_the_client(store: VectorStore) -> None:
    """Trend-aware weights: the relevance computed in Qdrant and diversified here lists what
    the client rerank lists, for items and for users (their merged list too)."""
    payloads = build_catalog(store)
    engine = Recommender(store)
    client = Params(k=6, candidates=50, weights=Weights(0.5, 0.3, 0.2), diversity=0.4)
    server = replace(client, rerank="server")
    for item in [payloads[i]["item_id"] for i in range(0, len(payloads), 97)]:
        got, want = engine.for_item(item, server), engine.for_item(item, client)
        assert _ids(got) == _ids(want)
        assert [r.relevance for r in got] == pytest.approx([r.relevance for r in want], abs=1e-5)
    bought = [p["item_id"] for p in payloads if p["gender"] == "WOMEN"][::13][:3]
    got_user = engine.for_user(shopper("WOMEN", 0.7), buy(bought), server)
    want_user = engine.for_user(shopper("WOMEN", 0.7), buy(bought), client)
    assert _ids(got_user.merged) == _ids(want_user.merged)
    for (_, a), (_, b) in zip(got_user.per_purchase, want_user.per_purchase, strict=True):
        assert _ids(a) == _ids(b)


def test_diversity_spreads_the_lists(store: VectorStore) -> None:
    """As λ grows the lists look less alike (intra-list diversity rises), each list keeps one
    view per product, and the merged list of a user is diversified too."""
    payloads = build_catalog(store)
    vectors = {
        str(r.payload["item_id"]): r.vector
        for r in store.scroll(["item_id"], vector="resnet50")
        if r.vector is not None
    }
    engine = Recommender(store)
    items = [payloads[i]["item_id"] for i in range(0, len(payloads), 61)]
    means = []
    for diversity in (0.0, 0.5, 1.0):
        params = Params(k=8, candidates=100, diversity=diversity)
        spread = []
        for item in items:
            recs = engine.for_item(item, params)
            assert len({r.product_id for r in recs}) == len(recs) == 8
            assert [r.rank for r in recs] == list(range(1, 9))
            spread.append(intra_list_diversity(np.stack([vectors[r.item_id] for r in recs])))
        means.append(float(np.mean(spread)))
    assert means[0] < means[1] < means[2], means
    bought = [p["item_id"] for p in payloads if p["gender"] == "MEN"][::17][:4]
    plain = engine.for_user(shopper("MEN"), buy(bought), Params(k=8))
    diverse = engine.for_user(shopper("MEN"), buy(bought), Params(k=8, diversity=1.0))

    def spread_of(recs: list[Recommendation]) -> float:
        return intra_list_diversity(np.stack([vectors[r.item_id] for r in recs]))

    assert len({r.product_id for r in diverse.merged}) == 8
    assert spread_of(diverse.merged) > spread_of(plain.merged)


def test_the_ranking_query_takes_diversity() -> None:
    """One query for every face (engine/recommend/query.py): diversity is one of its fields,
    checked where the engine's Params are made."""
    from engine.recommend.query import RankingQuery

    assert RankingQuery(diversity=0.5).params().diversity == 0.5
    assert RankingQuery().params().diversity == 0.0
    with pytest.raises(ConfigError, match="diversity must be in"):
        RankingQuery(diversity=1.5).params()
