"""Search strategies, each named, chosen once per query (`strategy_for`): how a query's
candidates are found in Qdrant and how its list is picked from them.

- `client`: an ANN search by cosine; the relevance evaluated here, in numpy; the best view
  of the k most relevant products, or k by maximal marginal relevance when λ > 0.
- `qdrant-formula`: the relevance evaluated inside Qdrant (a formula query over the ANN
  candidates), which returns them ranked; λ > 0 diversifies them here.
- `qdrant-mmr`: Qdrant's own maximal marginal relevance over the cosine, whose order is
  kept: where the relevance is the visual similarity alone (w_v = 1, every other weight 0)
  and λ > 0.

Where candidates come from is chosen once too (`Source`): ids and scores from the search and
the rest from the table of rerank fields in this process when there is one and no vectors
travel, else every hit's payload.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

from engine.recommend.columns import Columns
from engine.recommend.params import Params
from engine.recommend.rerank import (
    Candidates,
    Listing,
    Recommendation,
    by_mmr,
    by_relevance,
    in_order,
)
from engine.recommend.scoring import Terms
from engine.vectorstore.base import FormulaQuery, Hit, Mmr, Query, Scored, VectorStore
from engine.vocabulary.schema import hit_fields

VIEWS: Final = 8  # views a product may have (DeepFashion: at most 7); sizes the server query
Searcher = Callable[[Sequence[Query], Sequence[str]], list[list[Hit]]]
Pick = Callable[[Listing, NDArray[np.float64], NDArray[np.float64], int], list[Recommendation]]
Ask = Callable[[list[int], int], list[Candidates]]


@dataclass(frozen=True)
class Source:
    """Where candidates come from: the store (or a searcher standing in for its search)
    and, when this process holds one and no vectors travel, the table of rerank fields."""

    store: VectorStore
    searcher: Searcher | None
    columns: Columns | None

    def cosine(self, queries: Sequence[Query], params: Params) -> list[Candidates]:
        """Each query's candidates, scored by cosine."""
        mode = params.ranked_by
        if self.columns is not None and not any(q.with_vector for q in queries):
            if self.searcher is None:
                scored = self.store.search_scored(queries)
            else:
                scored = [Scored.of_hits(hits) for hits in self.searcher(queries, ())]
            return [self.columns.candidates(s, mode) for s in scored]
        results = (self.searcher or self.store.search)(queries, hit_fields(mode))
        if any(q.with_vector for q in queries):
            results = self._with_vectors(results, params.searched)
        return [Candidates.of_hits(hits, mode) for hits in results]

    def formula(self, asked: Sequence[FormulaQuery], params: Params) -> list[Candidates]:
        """Each formula query's candidates, scored by the relevance inside Qdrant."""
        mode = params.ranked_by
        if self.columns is not None and not any(q.prefetch.with_vector for q in asked):
            return [self.columns.candidates(s, mode) for s in self.store.formula_scored(asked)]
        found = self.store.formula_search(asked, hit_fields(mode))
        return [Candidates.of_hits(hits, mode) for hits in found]

    def mmr(self, asked: Sequence[Query], params: Params) -> list[Candidates]:
        """Each query's candidates in the order Qdrant's MMR picks them."""
        found = self.store.search(asked, hit_fields(params.ranked_by))
        return [Candidates.of_hits(hits, params.ranked_by) for hits in found]

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


class Strategy(Protocol):
    """How one query's candidates are found and its list picked."""

    name: str

    def vectors(self, merging: bool) -> bool:
        """Whether the candidates' vectors must travel (to diversify here, in each list or
        in a user's merged list)."""
        ...

    def candidates(
        self, source: Source, queries: list[Query], formulas: Sequence[Terms], params: Params
    ) -> list[Candidates]:
        """Each query's candidates."""
        ...

    def listed(self, listing: Listing, params: Params) -> list[Recommendation]:
        """The query's list, picked from its candidates."""
        ...


def _pick(params: Params) -> Pick:
    """By relevance, or by maximal marginal relevance at the asked λ."""
    return partial(by_mmr, diversity=params.diversity) if params.diversity > 0 else by_relevance


def _enough(ask: Ask, rows: int, params: Params) -> list[Candidates]:
    """Ask for the first k × VIEWS candidates of each query (enough for k distinct products
    unless a product has more views); a query short of k products is asked again for all
    its candidates."""
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


class Client:
    """The `client` strategy (see the module)."""

    name = "client"

    def vectors(self, merging: bool) -> bool:
        return False

    def candidates(
        self, source: Source, queries: list[Query], formulas: Sequence[Terms], params: Params
    ) -> list[Candidates]:
        return source.cosine(queries, params)

    def listed(self, listing: Listing, params: Params) -> list[Recommendation]:
        visual, score = listing.from_cosine(params.weights)
        return _pick(params)(listing, visual, score, params.k)


class Diverse(Client):
    """The `client` strategy with λ > 0: every candidate's vector travels."""

    def vectors(self, merging: bool) -> bool:
        return True


class QdrantFormula:
    """The `qdrant-formula` strategy (see the module): only the first k × VIEWS hits travel
    (see _enough), or every candidate with its vector when the list is then diversified."""

    name = "qdrant-formula"

    def __init__(self, diverse: bool) -> None:
        self.diverse = diverse

    def vectors(self, merging: bool) -> bool:
        return self.diverse

    def candidates(
        self, source: Source, queries: list[Query], formulas: Sequence[Terms], params: Params
    ) -> list[Candidates]:
        def ask(rows: list[int], limit: int) -> list[Candidates]:
            asked = [
                FormulaQuery(
                    queries[i], formulas[i].relevance(params.weights), formulas[i].defaults, limit
                )
                for i in rows
            ]
            return source.formula(asked, params)

        if self.diverse:
            return ask(list(range(len(queries))), params.candidates)
        return _enough(ask, len(queries), params)

    def listed(self, listing: Listing, params: Params) -> list[Recommendation]:
        visual, score = listing.from_relevance(params.weights)
        return _pick(params)(listing, visual, score, params.k)


class QdrantMmr:
    """The `qdrant-mmr` strategy (see the module): hits come back in the order Qdrant's MMR
    picks them, relevance being the cosine to the query."""

    name = "qdrant-mmr"

    def vectors(self, merging: bool) -> bool:
        return merging  # the lists are kept as Qdrant ordered them; a merge diversifies

    def candidates(
        self, source: Source, queries: list[Query], formulas: Sequence[Terms], params: Params
    ) -> list[Candidates]:
        mmr = Mmr(params.diversity, params.candidates)

        def ask(rows: list[int], limit: int) -> list[Candidates]:
            return source.mmr([replace(queries[i], limit=limit, mmr=mmr) for i in rows], params)

        return _enough(ask, len(queries), params)

    def listed(self, listing: Listing, params: Params) -> list[Recommendation]:
        visual, score = listing.from_cosine(params.weights)
        return in_order(listing, visual, score, params.k)


@dataclass(frozen=True)
class Plan:
    """A query's strategy, and whether its candidates' vectors travel: chosen once."""

    strategy: Strategy
    vectors: bool

    @classmethod
    def of_lists(cls, params: Params) -> Plan:
        """An item's or a photo's query: its own list."""
        strategy = strategy_for(params)
        return cls(strategy, strategy.vectors(merging=False))

    @classmethod
    def of_merge(cls, params: Params) -> Plan:
        """A user's queries, whose lists are then merged (diversified when λ > 0)."""
        strategy = strategy_for(params)
        return cls(strategy, strategy.vectors(merging=params.diversity > 0))


def strategy_for(params: Params) -> Strategy:
    """The strategy a query's parameters call for (see the module)."""
    diverse = params.diversity > 0
    if params.rerank == "client":
        return Diverse() if diverse else Client()
    if diverse and params.weights.visual_only:
        return QdrantMmr()
    return QdrantFormula(diverse)
