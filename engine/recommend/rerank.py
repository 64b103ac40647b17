"""The rerank (pure): search hits → every term of the relevance → the best view per product,
or a diverse list by maximal marginal relevance (engine.recommend.diversity)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from engine.geo import Location, coordinates, distances_km
from engine.helpers import minmax
from engine.recommend.diversity import mmr
from engine.recommend.scoring import Weights, popularity_term, relevance
from engine.schema import (
    CATEGORY,
    GENDER,
    ITEM_ID,
    POPULARITY,
    PRODUCT_ID,
    STORE_ID,
    STORE_LOCATION,
)
from engine.vectorstore.base import Hit


@dataclass(frozen=True)
class Recommendation:
    """One recommended item and the terms of its relevance."""

    rank: int
    item_id: str
    product_id: str
    category: str
    gender: str
    store_id: str | None
    distance_km: float | None
    visual: float
    popularity: float
    norm_popularity: float
    popularity_term: float
    category_sim: float
    relevance: float
    query_item: str


@dataclass(frozen=True)
class Context:
    """What a list is ranked for: the query item's category and the shopper around it."""

    query_item: str
    query_category: str
    trendiness: float
    origin: Location | None


def hit_distances(origin: Location | None, hits: Sequence[Hit]) -> np.ndarray:
    """Kilometres from the origin to each hit's shop (NaN where either is unknown)."""
    if origin is None:
        return np.full(len(hits), np.nan)
    return distances_km(origin, *coordinates(h.payload.get(STORE_LOCATION) for h in hits))


def best_per_product(recs: Iterable[Recommendation], k: int) -> list[Recommendation]:
    """The k most relevant recommendations, one per product (its best view), ranked 1..k.

    Ties in relevance go to the smaller item id, so the order never depends on the input's.
    """
    best: dict[str, Recommendation] = {}
    for rec in sorted(recs, key=lambda r: (-r.relevance, r.item_id)):
        best.setdefault(rec.product_id, rec)
    return [replace(r, rank=rank) for rank, r in enumerate(list(best.values())[:k], start=1)]


def first_per_product(recs: Iterable[Recommendation], k: int) -> list[Recommendation]:
    """The first k products in the given order (its first view of each), ranked 1..k."""
    first: dict[str, Recommendation] = {}
    for rec in recs:
        first.setdefault(rec.product_id, rec)
        if len(first) == k:
            break
    return [replace(r, rank=rank) for rank, r in enumerate(first.values(), start=1)]


def diversify(
    recs: Sequence[Recommendation],
    vectors: Mapping[str, NDArray[np.float32]],
    diversity: float,
    k: int,
) -> list[Recommendation]:
    """k recommendations, one per product, by maximal marginal relevance with diversity λ
    over their relevance and the cosine of their vectors (item id → vector), ranked 1..k.

    An item listed twice (one purchase's list and another's) keeps its best relevance; the
    candidates are ordered by relevance, then item id, so ties never depend on the input.
    λ = 0 gives best_per_product.
    """
    best: dict[str, Recommendation] = {}
    for rec in sorted(recs, key=lambda r: (-r.relevance, r.item_id)):
        best.setdefault(rec.item_id, rec)
    pool = list(best.values())
    if not pool:
        return []
    matrix = np.stack([vectors[r.item_id] for r in pool])
    picked = mmr([r.relevance for r in pool], matrix, diversity, k, [r.product_id for r in pool])
    return [replace(pool[i], rank=rank) for rank, i in enumerate(picked, start=1)]


def rerank(
    hits: Sequence[Hit],
    context: Context,
    weights: Weights,
    span: tuple[float, float],
    category_similarity: Callable[[str, str], float],
    k: int,
    popularity: Mapping[str, float] | None = None,
    scored: bool = False,
    diversity: float = 0.0,
    ordered: bool = False,
    field: str = POPULARITY,
) -> list[Recommendation]:
    """Every term of every hit, the best view of each product, the top k.

    span is the catalog-wide range of the popularity in payload `field` (all-time or
    trending); popularity, when given, replaces the payload's values. With `scored`, hit
    scores are already the relevance (computed in Qdrant) and the visual term is
    recovered from it; otherwise they are the cosine.
    With diversity λ > 0 the k are chosen by maximal marginal relevance over the hits'
    vectors, which every hit must carry; `ordered` hits are already in their final order
    (Qdrant's MMR chose it) and the first view of each of the first k products is kept.
    """
    if not hits:
        return []
    if popularity is not None:
        values = np.array([popularity.get(str(h.payload[ITEM_ID]), 0.0) for h in hits])
    else:
        values = np.array([float(h.payload.get(field, 0.0)) for h in hits])
    norm = minmax(values, *span)
    category = np.array(
        [category_similarity(context.query_category, str(h.payload.get(CATEGORY))) for h in hits]
    )
    distances = hit_distances(context.origin, hits)
    scores = np.array([h.score for h in hits], dtype=np.float64)
    t = context.trendiness
    if scored:
        score = scores
        rest = relevance(np.zeros(len(hits)), norm, t, category, weights, distances)
        nan = np.full(len(hits), np.nan)
        visual = (scores - rest) / weights.visual if weights.visual else nan
    else:
        visual = scores
        score = relevance(visual, norm, t, category, weights, distances)
    pop_term = popularity_term(norm, t, weights.gamma)
    every = [
        Recommendation(
            rank=0,
            item_id=str(h.payload[ITEM_ID]),
            product_id=str(h.payload.get(PRODUCT_ID)),
            category=str(h.payload.get(CATEGORY)),
            gender=str(h.payload.get(GENDER)),
            store_id=h.payload.get(STORE_ID),
            distance_km=None if math.isnan(distances[i]) else float(distances[i]),
            visual=float(visual[i]),
            popularity=float(values[i]),
            norm_popularity=float(norm[i]),
            popularity_term=float(pop_term[i]),
            category_sim=float(category[i]),
            relevance=float(score[i]),
            query_item=context.query_item,
        )
        for i, h in enumerate(hits)
    ]
    if ordered:
        return first_per_product(every, k)
    if diversity > 0:
        vectors = {
            r.item_id: h.vector for r, h in zip(every, hits, strict=True) if h.vector is not None
        }
        if len(vectors) < len({r.item_id for r in every}):
            raise ValueError("a diverse rerank needs every hit's vector")
        return diversify(every, vectors, diversity, k)
    return best_per_product(every, k)
