"""An evaluation: runs the engine and the baselines over a cohort, and measures every metric."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.catalog.taxonomy import Taxonomy, deepfashion
from engine.evaluate.baselines import Baseline, baseline_list
from engine.evaluate.metrics import Pair, coverage, intra_list_diversity, novelty
from engine.evaluate.protocol import Cohort, Protocol, StoredItems
from engine.recommend.recommender import Params, Recommender, Searcher
from engine.recommend.rerank import Recommendation
from engine.recommend.scoring import Weights
from engine.records import Purchase, User
from engine.schema import CATEGORY, GENDER, ITEM_ID, PRODUCT_ID, point_id
from engine.vectorstore.base import Filter, Hit, Query, VectorStore


class CachedSearch:
    """Memoises batch searches: ablations and sweeps reuse the same candidates."""

    def __init__(self, search: Searcher) -> None:
        self.inner = search
        self.memo: dict[tuple[Any, ...], list[Hit]] = {}

    @staticmethod
    def _key(query: Query, fields: Sequence[str]) -> tuple[Any, ...]:
        flt = query.filter or Filter()
        return (
            query.using,
            hashlib.sha1(query.vector.tobytes()).hexdigest(),
            query.limit,
            tuple(sorted(flt.equals.items())),
            tuple(sorted((k, tuple(sorted(v))) for k, v in flt.within.items())),
            tuple(sorted((k, tuple(sorted(v))) for k, v in flt.exclude.items())),
            flt.near,
            tuple(fields),
        )

    def __call__(self, queries: Sequence[Query], fields: Sequence[str]) -> list[list[Hit]]:
        keys = [self._key(q, fields) for q in queries]
        missing = [i for i, key in enumerate(keys) if key not in self.memo]
        if missing:
            found = self.inner([queries[i] for i in missing], fields)
            self.memo.update({keys[i]: hits for i, hits in zip(missing, found, strict=True)})
        return [self.memo[key] for key in keys]


@dataclass
class SystemResult:
    """What one system recommended: (user, purchase, list) triples and hold-out outcomes."""

    lists: list[tuple[User, Purchase, list[Recommendation]]] = field(default_factory=list)
    hits: list[bool] = field(default_factory=list)
    recalls: list[bool] = field(default_factory=list)


class Evaluation:
    """Runs systems over the cohort and computes every metric."""

    def __init__(
        self,
        store: VectorStore,
        cohort: Cohort,
        items: StoredItems,
        protocol: Protocol,
        taxonomy: Taxonomy | None = None,
    ) -> None:
        self.store, self.cohort, self.items, self.protocol = store, cohort, items, protocol
        self.taxonomy = taxonomy or deepfashion()
        self.search = CachedSearch(store.search)
        self.rng = np.random.default_rng([protocol.seed, 3])

    def recommender(self) -> Recommender:
        """The engine over the store, ranking on the cohort's popularity."""
        return Recommender(self.store, self.taxonomy, self.search, self.cohort.popularity)

    def params(self, backbone: str, weights: Weights) -> Params:
        """The protocol's recommendation parameters for one backbone and weights."""
        protocol = self.protocol
        return Params(backbone, protocol.k, protocol.candidates, weights)

    def _product(self, purchase: Purchase) -> str:
        return str(self.items.items[purchase.item_id][PRODUCT_ID])

    def run_model(self, backbone: str, weights: Weights, holdout: bool = True) -> SystemResult:
        """The engine with these weights, for every user (and the next-purchase hold-out)."""
        params = self.params(backbone, weights)
        engine, result = self.recommender(), SystemResult()
        for user in self.cohort.users:
            bought = self.cohort.purchases[user.id]
            full = engine.for_user(user, bought, params)
            result.lists += [(user, p, recs) for p, recs in full.per_purchase]
            if holdout and len(bought) >= 2:
                earlier = engine.for_user(user, bought[:-1], params)
                target = self._product(bought[-1])
                result.hits.append(target in {r.product_id for r in earlier.merged})
                result.recalls.append(
                    any(target in {r.product_id for r in recs} for _, recs in earlier.per_purchase)
                )
        return result

    def run_baseline(self, kind: Baseline) -> SystemResult:
        """Random or most-popular items the user's gender is shown, never a bought product."""
        items = self.items.items
        by_gender: dict[str, list[str]] = defaultdict(list)
        for item_id in sorted(items):
            by_gender[str(items[item_id][GENDER])].append(item_id)

        def recommend(user: User, bought: Sequence[Purchase]) -> list[Recommendation]:
            shown = self.taxonomy.shown_to(user.gender)
            pool = sorted(i for g in shown for i in by_gender.get(g, []))
            popularity, k = self.cohort.popularity, self.protocol.k
            return baseline_list(kind, bought, pool, items, popularity, self.taxonomy, k, self.rng)

        result = SystemResult()
        for user in self.cohort.users:
            bought = self.cohort.purchases[user.id]
            for p in bought:
                result.lists.append((user, p, recommend(user, bought)))
            if len(bought) >= 2:
                target = self._product(bought[-1])
                result.hits.append(target in {r.product_id for r in recommend(user, bought[:-1])})
                result.recalls.append(result.hits[-1])
        return result

    def pairs(self, result: SystemResult) -> list[Pair]:
        """Every (purchase, recommendation) pair, with the actual categories and genders."""
        items = self.items.items
        out = []
        for user, purchase, recs in result.lists:
            purchased = str(items[purchase.item_id][CATEGORY])
            out += [
                Pair(
                    user.gender,
                    user.trendiness,
                    purchased,
                    r.item_id,
                    r.category,
                    str(items[r.item_id][GENDER]),
                    r.norm_popularity,
                    self.taxonomy(purchased, r.category),
                    self.taxonomy.shown_to(user.gender),
                )
                for r in recs
            ]
        return out

    def beyond(self, result: SystemResult, backbone: str) -> dict[str, float]:
        """Coverage, diversity, novelty, average popularity, next-purchase hit rate/recall."""
        recommended = [r.item_id for _, _, recs in result.lists for r in recs]
        unique = sorted(set(recommended))
        vectors = {
            str(r.payload[ITEM_ID]): r.vector
            for r in self.store.retrieve([point_id(i) for i in unique], vector=backbone)
            if r.vector is not None
        }
        lists = [
            np.array([vectors[r.item_id] for r in recs if r.item_id in vectors])
            for _, _, recs in result.lists
        ]
        norm = [r.norm_popularity for _, _, recs in result.lists for r in recs]
        return {
            "coverage": coverage(recommended, len(self.items.items)),
            "diversity": intra_list_diversity([v for v in lists if len(v)]),
            "novelty": novelty(recommended, self.cohort.popularity.values),
            "avg_norm_popularity": _mean(norm),
            "hit_rate": _mean(result.hits),
            "recall": _mean(result.recalls),
        }


def _mean(values: Sequence[float]) -> float:
    """The mean, NaN for no values."""
    return float(np.mean(values)) if len(values) else float("nan")
