"""The rerank (pure): search hits → every term of the relevance → the best view per product,
or a diverse list by maximal marginal relevance (engine.recommend.diversity)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from engine.popularity.normpop import Normalise, normalised
from engine.recommend.diversity import mmr
from engine.recommend.scoring import Terms, Weights
from engine.vectorstore.base import Hit
from engine.vectorstore.formula import Expr, Frame, evaluate
from engine.vocabulary.geo import Location, coordinates, distances_km
from engine.vocabulary.schema import (
    CATEGORY,
    GENDER,
    ITEM_ID,
    PRODUCT_ID,
    STORE_ID,
    STORE_LOCATION,
    popularity_field,
    rank_field,
)


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
    visual: float | None  # None: not known (ranked inside Qdrant with w_v = 0)
    popularity: float
    norm_popularity: float
    popularity_term: float
    category_sim: float
    relevance: float
    query_item: str
    # the shop's own words for the item, as its payload has them: filled in for the listed
    # items by the application (the rerank never reads them)
    name: str | None = None
    price: float | None = None
    url: str | None = None
    in_stock: bool | None = None


@dataclass(frozen=True)
class Popularity:
    """Popularity to rank with instead of the payload's (a simulation held in memory): each
    item's value and its NormPop, however normalised."""

    values: dict[str, float]
    normalised: dict[str, float]

    @classmethod
    def of_values(
        cls,
        values: Mapping[str, float],
        how: Normalise,
        tiebreak: Mapping[str, float] | None = None,
    ) -> Popularity:
        """Values by item id, with their NormPop over them all (percentile ranks: ties broken
        by `tiebreak`, the other popularity)."""
        ids = list(values)
        scores = np.array([float(values[i]) for i in ids], dtype=np.float64)
        second = None if tiebreak is None else [float(tiebreak.get(i, 0.0)) for i in ids]
        norm = normalised(scores, how, second)
        return cls(
            dict(zip(ids, scores.tolist(), strict=True)), dict(zip(ids, norm.tolist(), strict=True))
        )

    def of(self, item_ids: Iterable[object]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The values and NormPop of these items (0 for an item it does not know)."""
        ids = [str(i) for i in item_ids]
        values = np.array([self.values.get(i, 0.0) for i in ids], dtype=np.float64)
        return values, np.array([self.normalised.get(i, 0.0) for i in ids], dtype=np.float64)


@dataclass(frozen=True)
class Context:
    """What a list is ranked for: the query item, and where the shopper's distances start
    (the category and trendiness it ranks by are in its Terms)."""

    query_item: str
    origin: Location | None


@dataclass(frozen=True)
class Candidates:
    """One query's search hits as columns: what the rerank reads of each, row by row.

    They come from the hits' payloads (`of_hits`) or, when the search returned ids and
    scores only, from an in-process table of the catalog (engine.recommend.columns).
    """

    scores: NDArray[np.float64]  # cosine, or the relevance when ranked inside Qdrant
    item_id: NDArray[np.object_]
    product_id: NDArray[np.object_]
    category: NDArray[np.object_]
    gender: NDArray[np.object_]
    store_id: NDArray[np.object_]  # str or None
    lat: NDArray[np.float64]  # the shop's, NaN where unknown
    lon: NDArray[np.float64]
    popularity: NDArray[np.float64]  # of the mode in force
    ranks: NDArray[np.float64]  # its percentile rank (as stored; 0 where an item has none)
    vectors: Sequence[NDArray[np.float32] | None] | None = None  # when the search carried them

    def __len__(self) -> int:
        return len(self.scores)

    def frame(
        self, terms: Terms, popularity: NDArray[np.float64], ranks: NDArray[np.float64]
    ) -> Frame:
        """What a formula reads of the candidates: scores, the popularity and its rank (as
        the terms' payload fields), categories and the shops' locations."""
        return Frame(
            scores=self.scores,
            numbers={terms.field: popularity, terms.rank_field: ranks},
            keywords={CATEGORY: self.category},
            points={STORE_LOCATION: (self.lat, self.lon)},
        )

    @classmethod
    def of_hits(cls, hits: Sequence[Hit], mode: str = "all-time") -> Candidates:
        """The columns of hits that carry their payload (the popularity of `mode`)."""

        def column(key: str) -> NDArray[np.object_]:
            values = np.empty(len(hits), dtype=object)
            values[:] = [h.payload.get(key) for h in hits]
            return values

        def number(key: str) -> NDArray[np.float64]:
            return np.array([float(h.payload.get(key) or 0.0) for h in hits], dtype=np.float64)

        lat, lon = coordinates(h.payload.get(STORE_LOCATION) for h in hits)
        return cls(
            scores=np.array([h.score for h in hits], dtype=np.float64),
            item_id=column(ITEM_ID),
            product_id=column(PRODUCT_ID),
            category=column(CATEGORY),
            gender=column(GENDER),
            store_id=column(STORE_ID),
            lat=lat,
            lon=lon,
            popularity=number(popularity_field(mode)),
            ranks=number(rank_field(mode)),
            vectors=[h.vector for h in hits],
        )


def best_per_product(recs: Iterable[Recommendation], k: int) -> list[Recommendation]:
    """The k most relevant recommendations, one per product (its best view), ranked 1..k.

    Ties in relevance go to the smaller item id, so the order never depends on the input's.
    """
    best: dict[str, Recommendation] = {}
    for rec in sorted(recs, key=lambda r: (-r.relevance, r.item_id)):
        best.setdefault(rec.product_id, rec)
    return [replace(r, rank=rank) for rank, r in enumerate(list(best.values())[:k], start=1)]


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
    candidates: Candidates,
    context: Context,
    terms: Terms,
    weights: Weights,
    k: int,
    popularity: Popularity | None = None,
    scored: bool = False,
    diversity: float = 0.0,
    ordered: bool = False,
) -> list[Recommendation]:
    """Every term of every candidate, the best view of each product, the top k.

    The terms are the query's expression tree (engine.recommend.scoring.terms), evaluated
    here over the candidates' columns as Qdrant evaluates it; popularity, when given,
    replaces the candidates' (their ranks by its NormPop) by item id. With `scored`, the
    scores are already the relevance (computed in Qdrant) and the visual term is recovered
    from it (unknown when its weight is 0); otherwise they are the cosine. With diversity
    λ > 0 the k are chosen by maximal marginal relevance over the candidates' vectors,
    which every one must carry; `ordered` candidates are already in their final order
    (Qdrant's MMR chose it) and the first view of each of the first k products is kept.
    Only the listed rows become Recommendations.
    """
    n = len(candidates)
    if not n:
        return []
    if popularity is not None:
        values, ranks = popularity.of(candidates.item_id)
    else:
        values, ranks = candidates.popularity, candidates.ranks
    frame = candidates.frame(terms, values, ranks)
    memo: dict[int, NDArray[np.float64] | float] = {}  # the terms, evaluated once each

    def value(expr: Expr) -> NDArray[np.float64]:
        return evaluate(expr, frame, terms.defaults, memo)

    norm, pop_term, category = (
        value(terms.norm_popularity),
        value(terms.popularity),
        value(terms.category),
    )
    if context.origin is None:
        distances = np.full(n, np.nan)
    else:
        distances = distances_km(context.origin, candidates.lat, candidates.lon)
    if scored:
        score = candidates.scores
        rest = value(terms.relevance(replace(weights, visual=0.0)))
        visual = (score - rest) / weights.visual if weights.visual else np.full(n, np.nan)
    else:
        visual = candidates.scores
        score = value(terms.relevance(weights))

    def recommendation(i: int, rank: int = 0) -> Recommendation:
        distance, cosine = float(distances[i]), float(visual[i])
        store = candidates.store_id[i]
        return Recommendation(
            rank=rank,
            item_id=str(candidates.item_id[i]),
            product_id=str(candidates.product_id[i]),
            category=str(candidates.category[i]),
            gender=str(candidates.gender[i]),
            store_id=None if store is None else str(store),
            distance_km=None if math.isnan(distance) else distance,
            visual=None if math.isnan(cosine) else cosine,
            popularity=float(values[i]),
            norm_popularity=float(norm[i]),
            popularity_term=float(pop_term[i]),
            category_sim=float(category[i]),
            relevance=float(score[i]),
            query_item=context.query_item,
        )

    if ordered:
        rows = _first_rows(range(n), candidates.product_id, k)
    elif diversity > 0:
        every = [recommendation(i) for i in range(n)]
        held = candidates.vectors or []
        vectors = {r.item_id: v for r, v in zip(every, held, strict=False) if v is not None}
        if len(vectors) < len({r.item_id for r in every}):
            raise ValueError("a diverse rerank needs every candidate's vector")
        return diversify(every, vectors, diversity, k)
    else:  # by relevance, ties to the smaller item id, as best_per_product
        order = np.lexsort((candidates.item_id, -score))
        rows = _first_rows(order, candidates.product_id, k)
    return [recommendation(int(i), rank) for rank, i in enumerate(rows, start=1)]


def _first_rows(order: Iterable[int], products: NDArray[np.object_], k: int) -> list[int]:
    """The first row of each product, in the given order, until k products."""
    seen: set[object] = set()
    rows = []
    for i in order:
        if products[i] not in seen:
            seen.add(products[i])
            rows.append(int(i))
            if len(rows) == k:
                break
    return rows
