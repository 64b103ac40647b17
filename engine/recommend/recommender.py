"""Recommendations: item, user or photo → gender-filtered ANN search in Qdrant → trend-aware
rerank, by the search strategy the query calls for (engine/recommend/strategies.py)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from engine.catalog.taxonomy import Taxonomy, deepfashion
from engine.errors import ConfigError, NotFoundError
from engine.recommend.columns import Columns
from engine.recommend.params import Params, Rerank
from engine.recommend.rerank import (
    Context,
    Listing,
    Popularity,
    Recommendation,
    best_per_product,
    diversify,
)
from engine.recommend.scoring import Terms, terms
from engine.recommend.strategies import Plan, Searcher, Source
from engine.vectorstore.base import Filter, Near, Query, Range, Record, VectorStore
from engine.vocabulary.backbones import BACKBONES, unknown_backbone
from engine.vocabulary.geo import Location
from engine.vocabulary.records import Purchase, User
from engine.vocabulary.schema import (
    CATEGORY,
    GENDER,
    ITEM_ID,
    OUT,
    PRICE,
    PRODUCT_ID,
    STOCK,
    STORE_LOCATION,
    point_id,
    popularity_field,
)

__all__ = ["PHOTO", "Params", "Recommender", "Rerank", "UserRecommendations"]

PHOTO: Final = "photo"  # the query item of a search by photo
SOFT: Final = 10  # the nearest items whose categories make a photo's (engine/recommend)
SHARPNESS: Final = 0.02  # their weights: exp(cosine / SHARPNESS), normalised (bench/photos.py)
VectorsByItem = dict[str, NDArray[np.float32]]


@dataclass(frozen=True)
class UserRecommendations:
    """The paper's output (top-k per purchase) and one merged list for the user."""

    user: User
    per_purchase: list[tuple[Purchase, list[Recommendation]]]
    merged: list[Recommendation]


@dataclass(frozen=True)
class _Spec:
    """One query: the item it starts from and the user context around it."""

    item: Record
    gender: str | None  # None: every gender (a photo of no one in particular)
    trendiness: float
    exclude_products: frozenset[str]
    origin: Location | None
    categories: dict[str, float] | None = None  # a photo's: its neighbours' categories, weighted

    def context(self) -> Context:
        payload = self.item.payload
        return Context(str(payload[ITEM_ID]), self.origin)


class Recommender:
    """Ranks catalog items for an item or a user, over one vector store.

    The taxonomy gives CatSim and which item genders a shopper's gender is shown. With
    `columns` (a table of the rerank's fields, engine.recommend.columns), searches return
    ids and scores only, which is most of a search's cost saved; results are the same.
    """

    def __init__(
        self,
        store: VectorStore,
        taxonomy: Taxonomy | None = None,
        searcher: Searcher | None = None,
        popularity: Popularity | None = None,
        columns: Columns | None = None,
    ) -> None:
        self.store = store
        self.taxonomy = taxonomy or deepfashion()
        self.searcher = searcher  # None: the store's own search
        self.popularity = popularity
        self.columns = columns
        self._similar: dict[str, dict[float, tuple[str, ...]]] = {}  # by the query's category

    def _check_space(self, backbone: str) -> None:
        check_space(self.store, backbone)

    def _query_items(
        self, item_ids: Sequence[str], backbone: str, missing_ok: bool = False
    ) -> dict[str, Record]:
        """The items' points with their vectors; NotFoundError for an unknown item (left
        out with `missing_ok`: a purchase of an item deleted since)."""
        self._check_space(backbone)
        records = self.store.retrieve([point_id(i) for i in item_ids], vector=backbone)
        found = {str(r.payload.get(ITEM_ID)): r for r in records}
        for item_id in item_ids:
            if item_id not in found:
                if missing_ok:
                    continue
                raise NotFoundError(f"unknown item {item_id!r}")
            if found[item_id].vector is None:
                raise NotFoundError(f"item {item_id!r} has no {backbone} vector; ingest it again")
        return found

    def for_item(self, item_id: str, params: Params) -> list[Recommendation]:
        """Items like this one: same gender (unless overridden), other products only."""
        item = self._query_items([item_id], params.searched)[item_id]
        spec = _Spec(
            item,
            params.gender or str(item.payload[GENDER]),
            params.trendiness,
            frozenset({str(item.payload[PRODUCT_ID])}),
            params.at,
        )
        return self._rank([spec], params, Plan.of_lists(params))[0][0]

    def for_vector(self, vector: NDArray[np.float32], params: Params) -> list[Recommendation]:
        """Items like a photo's vector (of the searched space): of the gender asked for,
        else any. A photo has no category of its own: its CatSim to an item is the mean
        CatSim of its SOFT nearest items' categories to the item's, each weighted by its
        cosine (one wrong neighbour no longer turns the whole list)."""
        self._check_space(params.searched)
        shown = {} if params.gender is None else {GENDER: self.taxonomy.shown_to(params.gender)}
        nearest = self.store.search(
            [Query(vector, params.searched, limit=SOFT, filter=Filter(within=shown))],
            (CATEGORY,),
        )[0]
        shares: dict[str, float] = defaultdict(float)
        best = max((hit.score for hit in nearest), default=0.0)
        for hit in nearest:  # softmax of the cosines: a clear nearest item all but decides
            shares[str(hit.payload.get(CATEGORY))] += math.exp((hit.score - best) / SHARPNESS)
        category = max(sorted(shares), key=shares.__getitem__) if shares else ""
        photo = Record(PHOTO, {ITEM_ID: PHOTO, CATEGORY: category}, vector)
        total = sum(shares.values())
        soft = {c: w / total for c, w in shares.items()} if total else None
        spec = _Spec(photo, params.gender, params.trendiness, frozenset(), params.at, soft)
        return self._rank([spec], params, Plan.of_lists(params))[0][0]

    def for_user(
        self, user: User, purchases: Sequence[Purchase], params: Params
    ) -> UserRecommendations:
        """Top-k for each purchase (one batch search) and a merged list for the user."""
        if not purchases:
            raise NotFoundError(f"user {user.id!r} has no purchases to recommend from")
        items = self._query_items(
            sorted({p.item_id for p in purchases}), params.searched, missing_ok=True
        )
        purchases = [p for p in purchases if p.item_id in items]  # deleted items: left out
        if not purchases:
            raise NotFoundError(
                f"user {user.id!r} bought only items no longer in the catalog; nothing to "
                "recommend from"
            )
        bought = frozenset(str(items[p.item_id].payload[PRODUCT_ID]) for p in purchases)
        specs = [
            _Spec(items[p.item_id], user.gender, user.trendiness, bought, user.residence)
            for p in purchases
        ]
        lists, vectors = self._rank(specs, params, Plan.of_merge(params))
        every = [rec for recs in lists for rec in recs]
        if params.diversity > 0:
            merged = diversify(every, vectors, params.diversity, params.k)
        else:
            merged = best_per_product(every, params.k)
        return UserRecommendations(user, list(zip(purchases, lists, strict=True)), merged)

    def _rank(
        self, specs: Sequence[_Spec], params: Params, plan: Plan
    ) -> tuple[list[list[Recommendation]], VectorsByItem]:
        """Each spec's list by the strategy the parameters call for, and (when a merge or
        a list diversifies here) the candidates' vectors by item id."""
        if params.max_km is not None and any(s.origin is None for s in specs):
            raise ConfigError("--max-km needs a location: a user, or --at LAT,LON")
        if params.rerank == "server" and self.popularity is not None:
            raise ConfigError(
                "the rerank inside Qdrant ranks on the stored popularity; it cannot use a "
                "popularity held in memory (use the client rerank)"
            )
        strategy, fetch = plan.strategy, plan.vectors
        queries = [self._query(spec, params, fetch) for spec in specs]
        span = (0.0, 0.0)  # the catalog's range: min–max only
        if self.popularity is None and params.normalise == "minmax":
            field = popularity_field(params.ranked_by)
            held = self.columns if self.columns is not None else self.store
            span = held.value_range(field) or span
        formulas = [self._terms(spec, params, span) for spec in specs]
        source = Source(self.store, self.searcher, self.columns)
        results = strategy.candidates(source, queries, formulas, params)
        vectors: VectorsByItem = {}
        if fetch:
            vectors = {
                str(item): vector
                for found in results
                for item, vector in zip(found.item_id, found.vectors or (), strict=True)
                if vector is not None
            }
        lists = [
            strategy.listed(Listing(found, spec.context(), formula, self.popularity), params)
            for spec, formula, found in zip(specs, formulas, results, strict=True)
        ]
        return lists, vectors

    def _query(self, spec: _Spec, params: Params, fetch: bool) -> Query:
        """One spec's filtered ANN search: the genders its shopper is shown, no product they
        bought, in stock, the category, price and distance asked for."""
        vector = spec.item.vector
        if vector is None:
            raise NotFoundError(f"item {spec.item.id!r} has no {params.searched} vector")
        genders = None if spec.gender is None else self.taxonomy.shown_to(spec.gender)
        return Query(
            vector=vector,
            using=params.searched,
            limit=params.candidates,
            filter=search_filter(params, genders, spec.exclude_products, spec.origin),
            with_vector=fetch,
        )

    def _terms(self, spec: _Spec, params: Params, span: tuple[float, float]) -> Terms:
        """The relevance's terms for one query, as both reranks evaluate them."""
        origin = None if spec.origin is None else (spec.origin.lat, spec.origin.lon)
        if spec.categories:
            similar = self._soft_values(spec.categories)
        else:
            similar = self._category_values(str(spec.item.payload[CATEGORY]))
        # a popularity held in memory brings its NormPop, read where a stored rank is
        normalise = "rank" if self.popularity is not None else params.normalise
        return terms(
            params.weights, spec.trendiness, span, similar, origin, params.ranked_by, normalise
        )

    def _soft_values(self, shares: dict[str, float]) -> dict[float, tuple[str, ...]]:
        """Each soft CatSim value (the shares' weighted mean) and the categories that have
        it."""
        values: dict[float, list[str]] = defaultdict(list)
        for category in sorted({*self.taxonomy.categories, *shares}):
            value = sum(w * self.taxonomy(q, category) for q, w in shares.items())
            values[round(value, 9)].append(category)
        return {v: tuple(cs) for v, cs in values.items()}

    def _category_values(self, query: str) -> dict[float, tuple[str, ...]]:
        """Each CatSim value against the query's category, and the categories that have it."""
        if query not in self._similar:
            values: dict[float, list[str]] = defaultdict(list)
            for category in sorted({*self.taxonomy.categories, query}):
                values[self.taxonomy(query, category)].append(category)
            self._similar[query] = {v: tuple(cs) for v, cs in values.items()}
        return self._similar[query]


def check_space(store: VectorStore, backbone: str) -> None:
    """NotFoundError or ConfigError naming what the store lacks, if it lacks `backbone`."""
    dims = store.vector_dims()
    if not dims:
        raise NotFoundError("the vector store is empty; run `fashionrec ingest PATH` first")
    if backbone not in dims and backbone not in BACKBONES:
        raise ConfigError(unknown_backbone(backbone, tuple(sorted(dims))))
    if backbone not in dims:
        raise NotFoundError(
            f"backbone {backbone} is not ingested (the store has {', '.join(sorted(dims))}); "
            f"run `fashionrec ingest PATH --backbone {backbone}`"
        )


def search_filter(
    params: Params,
    genders: frozenset[str] | None,
    bought: frozenset[str],
    origin: Location | None,
) -> Filter:
    """A query's filtered ANN search condition: the genders its shopper is shown (None:
    every gender), no product they bought, in stock, the category, price and distance
    asked for."""
    near = None
    if params.max_km is not None and origin is not None:
        near = Near(STORE_LOCATION, origin.lat, origin.lon, params.max_km)
    ranges = {}
    if params.min_price is not None or params.max_price is not None:
        ranges = {PRICE: Range(gte=params.min_price, lte=params.max_price)}
    return Filter(
        within={} if genders is None else {GENDER: genders},
        exclude={PRODUCT_ID: bought, **({STOCK: frozenset({OUT})} if params.in_stock else {})},
        equals={CATEGORY: params.category} if params.category else {},
        ranges=ranges,
        near=near,
    )
