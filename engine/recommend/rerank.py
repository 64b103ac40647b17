"""The rerank (pure): search hits → every term of the relevance (a Listing) → the best view
per product by relevance, in the order Qdrant chose, or a diverse list by maximal marginal
relevance (engine.recommend.diversity)."""

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
    sources: tuple[str, ...] = ()  # the candidate sources that brought it (a blended list)


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


class Listing:
    """One query's candidates with every term of the relevance evaluated: the query's
    expression tree (engine.recommend.scoring.terms) over their columns, as Qdrant evaluates
    it. `popularity`, when given, replaces the candidates' own (ranks by its NormPop), by
    item id. The strategies (engine.recommend.strategies) say what the scores are and pick
    the listed rows; only those become Recommendations."""

    def __init__(
        self,
        candidates: Candidates,
        context: Context,
        terms: Terms,
        popularity: Popularity | None = None,
    ) -> None:
        self.candidates, self.context, self.terms = candidates, context, terms
        if popularity is not None:
            self.values, ranks = popularity.of(candidates.item_id)
        else:
            self.values, ranks = candidates.popularity, candidates.ranks
        self._frame = candidates.frame(terms, self.values, ranks)
        self._memo: dict[int, NDArray[np.float64] | float] = {}  # each term evaluated once
        self.norm = self.value(terms.norm_popularity)
        self.popularity_term = self.value(terms.popularity)
        self.category = self.value(terms.category)
        if context.origin is None:
            self.distances = np.full(len(candidates), np.nan)
        else:
            self.distances = distances_km(context.origin, candidates.lat, candidates.lon)

    def __len__(self) -> int:
        return len(self.candidates)

    def value(self, expr: Expr) -> NDArray[np.float64]:
        """An expression over every candidate."""
        return evaluate(expr, self._frame, self.terms.defaults, self._memo)

    def from_cosine(self, weights: Weights) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(visual, relevance) where the scores are the cosine to the query."""
        return self.candidates.scores, self.value(self.terms.relevance(weights))

    def from_relevance(self, weights: Weights) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(visual, relevance) where the scores are the relevance Qdrant computed: the
        visual term recovered from it (unknown, NaN, when its weight is 0)."""
        score = self.candidates.scores
        n = len(score)
        if not weights.visual:
            return np.full(n, np.nan), score
        rest = self.value(self.terms.relevance(replace(weights, visual=0.0)))
        return (score - rest) / weights.visual, score

    def recommendation(
        self, i: int, visual: NDArray[np.float64], score: NDArray[np.float64], rank: int = 0
    ) -> Recommendation:
        """Row i as a Recommendation with every term."""
        c = self.candidates
        distance, cosine = float(self.distances[i]), float(visual[i])
        store = c.store_id[i]
        return Recommendation(
            rank=rank,
            item_id=str(c.item_id[i]),
            product_id=str(c.product_id[i]),
            category=str(c.category[i]),
            gender=str(c.gender[i]),
            store_id=None if store is None else str(store),
            distance_km=None if math.isnan(distance) else distance,
            visual=None if math.isnan(cosine) else cosine,
            popularity=float(self.values[i]),
            norm_popularity=float(self.norm[i]),
            popularity_term=float(self.popularity_term[i]),
            category_sim=float(self.category[i]),
            relevance=float(score[i]),
            query_item=self.context.query_item,
        )

    def rows(
        self, rows: Iterable[int], visual: NDArray[np.float64], score: NDArray[np.float64]
    ) -> list[Recommendation]:
        """These rows as Recommendations ranked 1..n."""
        return [self.recommendation(i, visual, score, rank) for rank, i in enumerate(rows, 1)]


def by_relevance(
    listing: Listing, visual: NDArray[np.float64], score: NDArray[np.float64], k: int
) -> list[Recommendation]:
    """The best view of each of the k most relevant products (ties to the smaller item
    id, as best_per_product)."""
    order = np.lexsort((listing.candidates.item_id, -score))
    return listing.rows(_first_rows(order, listing.candidates.product_id, k), visual, score)


def in_order(
    listing: Listing, visual: NDArray[np.float64], score: NDArray[np.float64], k: int
) -> list[Recommendation]:
    """The first view of each of the first k products, in the order they came (Qdrant's
    MMR chose it)."""
    rows = _first_rows(range(len(listing)), listing.candidates.product_id, k)
    return listing.rows(rows, visual, score)


def by_mmr(
    listing: Listing,
    visual: NDArray[np.float64],
    score: NDArray[np.float64],
    k: int,
    diversity: float,
) -> list[Recommendation]:
    """k products by maximal marginal relevance with diversity λ over the candidates'
    relevance and vectors (which every candidate must carry)."""
    every = [listing.recommendation(i, visual, score) for i in range(len(listing))]
    held = listing.candidates.vectors or []
    vectors = {r.item_id: v for r, v in zip(every, held, strict=False) if v is not None}
    if len(vectors) < len({r.item_id for r in every}):
        raise ValueError("a diverse rerank needs every candidate's vector")
    return diversify(every, vectors, diversity, k)


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
