"""Recommendations: item or user → gender-filtered ANN search in Qdrant → trend-aware rerank."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from engine.catalog.taxonomy import Taxonomy, deepfashion
from engine.errors import ConfigError, NotFoundError
from engine.events.trending import PopularityMode
from engine.helpers import choice
from engine.popularity.normpop import DEFAULT_NORMALISE, Stored
from engine.recommend.columns import Columns
from engine.recommend.diversity import check_diversity
from engine.recommend.rerank import (
    Candidates,
    Context,
    Popularity,
    Recommendation,
    best_per_product,
    diversify,
    rerank,
)
from engine.recommend.scoring import Terms, Weights, terms
from engine.spaces.registry import DEFAULT_BACKBONE
from engine.vectorstore.base import (
    Filter,
    FormulaQuery,
    Hit,
    Mmr,
    Near,
    Query,
    Range,
    Record,
    Scored,
    VectorStore,
)
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
    hit_fields,
    point_id,
    popularity_field,
)

PHOTO: Final = "photo"  # the query item of a search by photo
VIEWS: Final = 8  # views a product may have (DeepFashion: at most 7); sizes the server-side query
Searcher = Callable[[Sequence[Query], Sequence[str]], list[list[Hit]]]
Rerank = Literal["client", "server"]
Vectors = dict[str, NDArray[np.float32]]
Ask = Callable[[list[int], int], list[Candidates]]


@dataclass(frozen=True)
class Params:
    """What to recommend and how to rank it.

    diversity is λ of maximal marginal relevance (engine.recommend.diversity): 0 ranks by
    relevance alone; above 0 the candidates' vectors come with the search and each pick
    weighs its relevance against its likeness to the items already listed. The client
    rerank diversifies the trend-aware relevance; the rerank inside Qdrant uses Qdrant's
    MMR when the relevance is the visual similarity alone (w_v = 1, every other weight 0),
    and otherwise ranks by the formula in Qdrant and diversifies its candidates here.
    """

    space: str | None = None  # a backbone's or a compact space; None: the home's default
    k: int = 5
    candidates: int = 100
    weights: Weights = field(default_factory=Weights)
    trendiness: float = 0.5  # for item queries without a user
    gender: str | None = None  # item queries: override the item's gender
    max_km: float | None = None
    at: Location | None = None  # item queries: where distances are measured from
    rerank: Rerank = "client"
    diversity: float = 0.0
    popularity: PopularityMode | None = None  # which payload ranks; None: the home's mode
    normalise: Stored = DEFAULT_NORMALISE  # NormPop: percentile rank, or min–max (the paper's)
    category: str | None = None  # only items of this category
    min_price: float | None = None  # only items with a price in this range
    max_price: float | None = None
    in_stock: bool = True  # leave out items marked out of stock

    @property
    def searched(self) -> str:
        """The space searched: the one asked for, else resnet50 (engine/application.py gives
        a home's default)."""
        return self.space or DEFAULT_BACKBONE

    @property
    def ranked_by(self) -> PopularityMode:
        """The popularity that ranks: the one asked for, else all-time."""
        return self.popularity or "all-time"

    def validate(self) -> Params:
        """Raise ConfigError naming the first bad value."""
        if self.k <= 0:
            raise ConfigError(f"k must be positive, got {self.k}")
        if self.candidates < self.k:
            raise ConfigError(f"candidates ({self.candidates}) must be at least k ({self.k})")
        if not 0.0 <= self.trendiness <= 1.0:
            raise ConfigError(f"trendiness must be in [0, 1], got {self.trendiness}")
        choice(Rerank, self.rerank, "rerank")
        choice(PopularityMode, self.ranked_by, "popularity")
        choice(Stored, self.normalise, "normalise")
        check_diversity(self.diversity)
        for bound in (self.min_price, self.max_price):
            if bound is not None and not (math.isfinite(bound) and bound >= 0):
                raise ConfigError(f"prices must be 0 or more, got {bound}")
        low, high = self.min_price, self.max_price
        if low is not None and high is not None and low > high:
            raise ConfigError(f"--min-price {low:g} is above --max-price {high:g}")
        if self.max_km is not None and not self.max_km > 0:
            raise ConfigError(f"max km must be positive, got {self.max_km}")
        self.weights.validate()
        return self


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
        """NotFoundError or ConfigError naming what the store lacks, if it lacks `backbone`."""
        dims = self.store.vector_dims()
        if not dims:
            raise NotFoundError("the vector store is empty; run `fashionrec ingest PATH` first")
        if backbone not in dims and backbone not in BACKBONES:
            raise ConfigError(unknown_backbone(backbone, tuple(sorted(dims))))
        if backbone not in dims:
            raise NotFoundError(
                f"backbone {backbone} is not ingested (the store has {', '.join(sorted(dims))}); "
                f"run `fashionrec ingest PATH --backbone {backbone}`"
            )

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
        params.validate()
        item = self._query_items([item_id], params.searched)[item_id]
        spec = _Spec(
            item,
            params.gender or str(item.payload[GENDER]),
            params.trendiness,
            frozenset({str(item.payload[PRODUCT_ID])}),
            params.at,
        )
        return self._rank([spec], params, merging=False)[0][0]

    def for_vector(self, vector: NDArray[np.float32], params: Params) -> list[Recommendation]:
        """Items like a photo's vector (of the searched space): of the gender asked for,
        else any; its category for CatSim is its nearest item's."""
        params.validate()
        self._check_space(params.searched)
        shown = {} if params.gender is None else {GENDER: self.taxonomy.shown_to(params.gender)}
        nearest = self.store.search(
            [Query(vector, params.searched, limit=1, filter=Filter(within=shown))], (CATEGORY,)
        )[0]
        category = str(nearest[0].payload.get(CATEGORY)) if nearest else ""
        photo = Record(PHOTO, {ITEM_ID: PHOTO, CATEGORY: category}, vector)
        spec = _Spec(photo, params.gender, params.trendiness, frozenset(), params.at)
        return self._rank([spec], params, merging=False)[0][0]

    def for_user(
        self, user: User, purchases: Sequence[Purchase], params: Params
    ) -> UserRecommendations:
        """Top-k for each purchase (one batch search) and a merged list for the user."""
        params.validate()
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
            _Spec(items[p.item_id], user.gender, user.trendiness, bought, user.home)
            for p in purchases
        ]
        lists, vectors = self._rank(specs, params, merging=True)
        every = [rec for recs in lists for rec in recs]
        if params.diversity > 0:
            merged = diversify(every, vectors, params.diversity, params.k)
        else:
            merged = best_per_product(every, params.k)
        return UserRecommendations(user, list(zip(purchases, lists, strict=True)), merged)

    def _rank(
        self, specs: Sequence[_Spec], params: Params, merging: bool
    ) -> tuple[list[list[Recommendation]], Vectors]:
        """Each spec's list, and (when diversifying) the candidates' vectors by item id.

        The vectors travel only when λ > 0 and the client diversifies: the candidates'
        (client rerank, or after the formula in Qdrant), or those of Qdrant's MMR picks
        when the lists are then merged.
        """
        diverse = params.diversity > 0
        in_qdrant = params.rerank == "server"
        ordered = in_qdrant and diverse and params.weights.visual_only
        fetch = diverse and (merging or not ordered)
        if params.max_km is not None and any(s.origin is None for s in specs):
            raise ConfigError("--max-km needs a location: a user, or --at LAT,LON")
        if params.rerank == "server" and self.popularity is not None:
            raise ConfigError(
                "the rerank inside Qdrant ranks on the stored popularity; it cannot use a "
                "popularity held in memory (use the client rerank)"
            )
        queries = [
            Query(
                vector=spec.item.vector,  # type: ignore[arg-type]
                using=params.searched,
                limit=params.candidates,
                filter=Filter(
                    within={}
                    if spec.gender is None
                    else {GENDER: self.taxonomy.shown_to(spec.gender)},
                    exclude={
                        PRODUCT_ID: spec.exclude_products,
                        **({STOCK: frozenset({OUT})} if params.in_stock else {}),
                    },
                    equals={CATEGORY: params.category} if params.category else {},
                    ranges=_price_range(params),
                    near=None
                    if params.max_km is None or spec.origin is None
                    else Near(STORE_LOCATION, spec.origin.lat, spec.origin.lon, params.max_km),
                ),
                with_vector=fetch,
            )
            for spec in specs
        ]
        span = (0.0, 0.0)  # the catalog's range: min–max only
        if self.popularity is None and params.normalise == "minmax":
            field = popularity_field(params.ranked_by)
            if self.columns is not None:
                span = self.columns.value_range(field) or span
            else:
                span = self.store.value_range(field) or span
        formulas = [self._terms(spec, params, span) for spec in specs]
        if ordered:
            results = self._server_mmr(queries, params)
        elif in_qdrant:
            results = self._server_ranked(formulas, queries, params)
        else:
            results = self._searched(queries, params)
        vectors: Vectors = {}
        if fetch:
            vectors = {
                str(item): vector
                for found in results
                for item, vector in zip(found.item_id, found.vectors or (), strict=True)
                if vector is not None
            }
        lists = [
            rerank(
                found,
                spec.context(),
                formula,
                params.weights,
                params.k,
                self.popularity,
                scored=in_qdrant and not ordered,
                diversity=params.diversity,
                ordered=ordered,
            )
            for spec, formula, found in zip(specs, formulas, results, strict=True)
        ]
        return lists, vectors

    def _searched(self, queries: list[Query], params: Params) -> list[Candidates]:
        """The candidates of each query, by cosine: ids and scores from the search and the
        rest from the table when there is one (and no vectors are wanted), else payloads."""
        mode = params.ranked_by
        if self.columns is not None and not any(q.with_vector for q in queries):
            if self.searcher is None:
                scored = self.store.search_scored(queries)
            else:
                scored = [Scored.of_hits(hits) for hits in self.searcher(queries, ())]
            return [self.columns.candidates(s, mode) for s in scored]
        results = (self.searcher or self.store.search)(queries, hit_fields(params.ranked_by))
        if any(q.with_vector for q in queries):
            results = self._with_vectors(results, params.searched)
        return [Candidates.of_hits(hits, mode) for hits in results]

    def _with_vectors(self, results: list[list[Hit]], backbone: str) -> list[list[Hit]]:
        """The hits with their vectors, read from the store for any the search left out
        (a searcher that ignores `with_vector`)."""
        missing = sorted({h.id for hits in results for h in hits if h.vector is None})
        if not missing:
            return results
        found = {r.id: r.vector for r in self.store.retrieve(missing, vector=backbone)}
        return [
            [h if h.vector is not None else replace(h, vector=found.get(h.id)) for h in hits]
            for hits in results
        ]

    @staticmethod
    def _enough(ask: Ask, rows: int, params: Params) -> list[Candidates]:
        """Ask for the first k × VIEWS candidates of each query (enough for k distinct
        products unless a product has more views); a query short of k products is asked
        again for all its candidates."""
        limit = min(params.candidates, params.k * VIEWS)
        results = ask(list(range(rows)), limit)
        short = [
            i
            for i, found in enumerate(results)
            if len(found) == limit < params.candidates and len(set(found.product_id)) < params.k
        ]
        for i, found in zip(short, ask(short, params.candidates) if short else [], strict=True):
            results[i] = found
        return results

    def _server_mmr(self, queries: list[Query], params: Params) -> list[Candidates]:
        """Qdrant's MMR over each query's candidates: hits come back in the order it picks
        them, relevance being the cosine to the query (the whole relevance when w_v = 1 and
        every other weight is 0)."""
        mmr = Mmr(params.diversity, params.candidates)
        mode = params.ranked_by

        def ask(rows: list[int], limit: int) -> list[Candidates]:
            asked = [replace(queries[i], limit=limit, mmr=mmr) for i in rows]
            found = self.store.search(asked, hit_fields(params.ranked_by))
            return [Candidates.of_hits(hits, mode) for hits in found]

        return self._enough(ask, len(queries), params)

    def _server_ranked(
        self, formulas: Sequence[Terms], queries: list[Query], params: Params
    ) -> list[Candidates]:
        """The whole formula inside Qdrant: candidates come back ranked by relevance.

        Only the first k × VIEWS hits travel (see _enough), or every candidate with its
        vector when the list is then diversified here; ids and scores only when the table
        holds the rest.
        """
        mode = params.ranked_by

        def ask(rows: list[int], limit: int) -> list[Candidates]:
            asked = [
                FormulaQuery(
                    queries[i],
                    formulas[i].relevance(params.weights),
                    formulas[i].defaults,
                    limit,
                )
                for i in rows
            ]
            if self.columns is not None and params.diversity == 0:
                scored = self.store.formula_scored(asked)
                return [self.columns.candidates(s, mode) for s in scored]
            found = self.store.formula_search(asked, hit_fields(mode))
            return [Candidates.of_hits(hits, mode) for hits in found]

        if params.diversity > 0:
            return ask(list(range(len(formulas))), params.candidates)
        return self._enough(ask, len(formulas), params)

    def _terms(self, spec: _Spec, params: Params, span: tuple[float, float]) -> Terms:
        """The relevance's terms for one query, as both reranks evaluate them."""
        origin = None if spec.origin is None else (spec.origin.lat, spec.origin.lon)
        similar = self._category_values(str(spec.item.payload[CATEGORY]))
        # a popularity held in memory brings its NormPop, read where a stored rank is
        normalise = "rank" if self.popularity is not None else params.normalise
        return terms(
            params.weights, spec.trendiness, span, similar, origin, params.ranked_by, normalise
        )

    def _category_values(self, query: str) -> dict[float, tuple[str, ...]]:
        """Each CatSim value against the query's category, and the categories that have it."""
        if query not in self._similar:
            values: dict[float, list[str]] = defaultdict(list)
            for category in sorted({*self.taxonomy.categories, query}):
                values[self.taxonomy(query, category)].append(category)
            self._similar[query] = {v: tuple(cs) for v, cs in values.items()}
        return self._similar[query]


def _price_range(params: Params) -> dict[str, Range]:
    """The price condition of the parameters (none when no bound is given)."""
    if params.min_price is None and params.max_price is None:
        return {}
    return {PRICE: Range(gte=params.min_price, lte=params.max_price)}
