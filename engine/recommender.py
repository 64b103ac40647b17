"""Recommendations: item or user → gender-filtered ANN search in Qdrant → trend-aware rerank."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from engine.categories import CATEGORIES, PAPER_MATRIX, CategorySimilarity
from engine.errors import FashionrecError
from engine.geo import Location, distances_km
from engine.scoring import Weights, normalise, popularity_term, relevance, relevance_formula
from engine.simulation import Purchase, User
from engine.vectorstore.base import Filter, Hit, Near, Query, Record, VectorStore, point_id
from engine.vectorstore.formula import Expr, FormulaQuery

HIT_FIELDS = ("item_id", "product_id", "category", "gender", "store_id", "store_location",
              "popularity")  # fmt: skip
VIEWS = 8  # views a product may have (DeepFashion: at most 7); sizes the server-side query
Searcher = Callable[[Sequence[Query], Sequence[str]], list[list[Hit]]]


@dataclass(frozen=True)
class Params:
    """What to recommend and how to rank it."""

    backbone: str = "resnet50"
    k: int = 5
    candidates: int = 100
    weights: Weights = field(default_factory=Weights)
    trendiness: float = 0.5  # for item queries without a user
    gender: str | None = None  # item queries: override the item's gender
    max_km: float | None = None
    at: Location | None = None  # item queries: where distances are measured from
    rerank: Literal["client", "server"] = "client"

    def validate(self) -> Params:
        """Raise FashionrecError naming the first bad value."""
        if self.k <= 0:
            raise FashionrecError(f"k must be positive, got {self.k}")
        if self.candidates < self.k:
            raise FashionrecError(f"candidates ({self.candidates}) must be at least k ({self.k})")
        if not 0.0 <= self.trendiness <= 1.0:
            raise FashionrecError(f"trendiness must be in [0, 1], got {self.trendiness}")
        if self.rerank not in ("client", "server"):
            raise FashionrecError(f"rerank must be client or server, got {self.rerank!r}")
        if self.max_km is not None and not self.max_km > 0:
            raise FashionrecError(f"max km must be positive, got {self.max_km}")
        self.weights.validate()
        return self


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
class UserRecommendations:
    """The paper's output (top-k per purchase) and one merged list for the user."""

    user: User
    per_purchase: list[tuple[Purchase, list[Recommendation]]]
    merged: list[Recommendation]


@dataclass(frozen=True)
class Popularity:
    """Popularity to rank with instead of the payload's (e.g. a simulation held in memory)."""

    values: dict[str, float]
    low: float
    high: float


@dataclass(frozen=True)
class _Spec:
    """One query: the item it starts from and the user context around it."""

    item: Record
    gender: str
    trendiness: float
    exclude_products: frozenset[str]
    origin: Location | None


class Recommender:
    """Ranks catalog items for an item or a user, over one vector store."""

    def __init__(
        self,
        store: VectorStore,
        category_similarity: CategorySimilarity = PAPER_MATRIX,
        searcher: Searcher | None = None,
        popularity: Popularity | None = None,
    ) -> None:
        self.store = store
        self.category_similarity = category_similarity
        self.search = searcher or store.search
        self.popularity = popularity

    def _query_items(self, item_ids: Sequence[str], backbone: str) -> dict[str, Record]:
        dims = self.store.vector_dims()
        if not dims:
            raise FashionrecError("the vector store is empty; run `fashionrec ingest PATH` first")
        if backbone not in dims:
            raise FashionrecError(
                f"backbone {backbone} is not ingested (the store has {', '.join(sorted(dims))}); "
                f"run `fashionrec ingest PATH --backbone {backbone}`"
            )
        records = self.store.retrieve([point_id(i) for i in item_ids], vector=backbone)
        found = {str(r.payload.get("item_id")): r for r in records}
        for item_id in item_ids:
            if item_id not in found:
                raise FashionrecError(f"unknown item {item_id!r}")
            if found[item_id].vector is None:
                raise FashionrecError(f"item {item_id!r} has no {backbone} vector; ingest it again")
        return found

    def for_item(self, item_id: str, params: Params) -> list[Recommendation]:
        """Items like this one: same gender (unless overridden), other products only."""
        params.validate()
        item = self._query_items([item_id], params.backbone)[item_id]
        spec = _Spec(
            item,
            params.gender or str(item.payload["gender"]),
            params.trendiness,
            frozenset({str(item.payload["product_id"])}),
            params.at,
        )
        return self._rank([spec], params)[0]

    def for_user(
        self, user: User, purchases: Sequence[Purchase], params: Params
    ) -> UserRecommendations:
        """Top-k for each purchase (one batch search) and a merged list for the user."""
        params.validate()
        if not purchases:
            raise FashionrecError(f"user {user.id!r} has no purchases to recommend from")
        items = self._query_items(sorted({p.item_id for p in purchases}), params.backbone)
        bought = frozenset(str(items[p.item_id].payload["product_id"]) for p in purchases)
        specs = [
            _Spec(items[p.item_id], user.gender, user.trendiness, bought, user.home)
            for p in purchases
        ]
        lists = self._rank(specs, params)
        best: dict[str, Recommendation] = {}
        for recs in lists:
            for rec in recs:
                if rec.product_id not in best or rec.relevance > best[rec.product_id].relevance:
                    best[rec.product_id] = rec
        merged = sorted(best.values(), key=lambda r: (-r.relevance, r.item_id))[: params.k]
        merged = [_ranked(r, i + 1) for i, r in enumerate(merged)]
        return UserRecommendations(user, list(zip(purchases, lists, strict=True)), merged)

    def _rank(self, specs: Sequence[_Spec], params: Params) -> list[list[Recommendation]]:
        if params.max_km is not None and any(s.origin is None for s in specs):
            raise FashionrecError("--max-km needs a location: a user, or --at LAT,LON")
        queries = [
            Query(
                vector=spec.item.vector,  # type: ignore[arg-type]
                using=params.backbone,
                limit=params.candidates,
                filter=Filter(
                    equals={"gender": spec.gender},
                    exclude={"product_id": spec.exclude_products},
                    near=None
                    if params.max_km is None or spec.origin is None
                    else Near("store_location", spec.origin.lat, spec.origin.lon, params.max_km),
                ),
            )
            for spec in specs
        ]
        if self.popularity is not None:
            span = (self.popularity.low, self.popularity.high)
        else:
            span = self.store.value_range("popularity") or (0.0, 0.0)
        if params.rerank == "server":
            results = self._server_ranked(specs, queries, params, span)
        else:
            results = self.search(queries, HIT_FIELDS)
        return [
            self._rerank(spec, hits, params, span, params.rerank == "server")
            for spec, hits in zip(specs, results, strict=True)
        ]

    def _server_ranked(
        self,
        specs: Sequence[_Spec],
        queries: list[Query],
        params: Params,
        span: tuple[float, float],
    ) -> list[list[Hit]]:
        """The whole formula inside Qdrant: candidates come back ranked by relevance.

        Only the first k × VIEWS hits travel (enough for k distinct products unless a
        product has more views); a query short of k products is asked again for all.
        """

        def ask(rows: list[int], limit: int) -> list[list[Hit]]:
            formulas = [
                FormulaQuery(
                    queries[i], self._formula(specs[i], params, span), {"popularity": 0.0}, limit
                )
                for i in rows
            ]
            return self.store.formula_search(formulas, HIT_FIELDS)

        limit = min(params.candidates, params.k * VIEWS)
        results = ask(list(range(len(specs))), limit)
        short = [
            i for i, hits in enumerate(results)
            if len(hits) == limit < params.candidates
            and len({h.payload.get("product_id") for h in hits}) < params.k
        ]  # fmt: skip
        for i, hits in zip(short, ask(short, params.candidates) if short else [], strict=True):
            results[i] = hits
        return results

    def _formula(self, spec: _Spec, params: Params, span: tuple[float, float]) -> Expr:
        query = str(spec.item.payload["category"])
        values: dict[float, list[str]] = defaultdict(list)
        for category in CATEGORIES:
            values[self.category_similarity(query, category)].append(category)
        origin = None if spec.origin is None else (spec.origin.lat, spec.origin.lon)
        return relevance_formula(
            params.weights, spec.trendiness, span,
            {v: tuple(cs) for v, cs in values.items()}, origin,
        )  # fmt: skip

    def _rerank(
        self,
        spec: _Spec,
        hits: list[Hit],
        params: Params,
        span: tuple[float, float],
        scored: bool = False,
    ) -> list[Recommendation]:
        """Every term of every hit, the best view of each product, the top k.

        With `scored`, hit scores are already the relevance (computed in Qdrant) and the
        visual term is recovered from it; otherwise hit scores are the cosine similarity.
        """
        if not hits:
            return []
        query_category = str(spec.item.payload["category"])
        if self.popularity is not None:
            known = self.popularity.values
            popularity = np.array([known.get(str(h.payload["item_id"]), 0.0) for h in hits])
        else:
            popularity = np.array([float(h.payload.get("popularity", 0.0)) for h in hits])
        norm = normalise(popularity, *span)
        category = np.array(
            [self.category_similarity(query_category, str(h.payload.get("category"))) for h in hits]
        )
        distances = _distances(spec.origin, hits)
        scores = np.array([h.score for h in hits], dtype=np.float64)
        weights = params.weights
        if scored:
            rest = relevance(
                np.zeros(len(hits)), norm, spec.trendiness, category, weights, distances
            )
            score = scores
            visual = (
                (scores - rest) / weights.visual if weights.visual else np.full(len(hits), np.nan)
            )
        else:
            visual = scores
            score = relevance(visual, norm, spec.trendiness, category, weights, distances)
        pop_term = popularity_term(norm, spec.trendiness, weights.gamma)
        order = sorted(range(len(hits)), key=lambda i: (-score[i], str(hits[i].payload["item_id"])))
        best: list[int] = []
        products: set[str] = set()
        for i in order:  # the best view of each product, by relevance
            product = str(hits[i].payload.get("product_id"))
            if product not in products:
                products.add(product)
                best.append(i)
        return [
            Recommendation(
                rank=rank,
                item_id=str(hits[i].payload["item_id"]),
                product_id=str(hits[i].payload.get("product_id")),
                category=str(hits[i].payload.get("category")),
                gender=str(hits[i].payload.get("gender")),
                store_id=hits[i].payload.get("store_id"),
                distance_km=None if math.isnan(distances[i]) else float(distances[i]),
                visual=float(visual[i]),
                popularity=float(popularity[i]),
                norm_popularity=float(norm[i]),
                popularity_term=float(pop_term[i]),
                category_sim=float(category[i]),
                relevance=float(score[i]),
                query_item=str(spec.item.payload["item_id"]),
            )
            for rank, i in enumerate(best[: params.k], start=1)
        ]


def _distances(origin: Location | None, hits: list[Hit]) -> np.ndarray:
    """Kilometres from the origin to each hit's store (NaN where either is unknown)."""
    points = [h.payload.get("store_location") for h in hits]
    lats = np.array([p["lat"] if isinstance(p, dict) else np.nan for p in points], dtype=float)
    lons = np.array([p["lon"] if isinstance(p, dict) else np.nan for p in points], dtype=float)
    if origin is None:
        return np.full(len(hits), np.nan)
    return distances_km(origin, lats, lons)


def _ranked(rec: Recommendation, rank: int) -> Recommendation:
    return replace(rec, rank=rank)
