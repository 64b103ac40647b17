"""The evaluation protocol: shoppers (simulated in memory, or from the log), every system
(backbones, ablations, baselines), every metric; nothing is written to the store or log."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from engine.categories import PAPER_MATRIX, CategorySimilarity
from engine.errors import FashionrecError
from engine.evaluation import (
    Accuracy,
    Pair,
    accuracy,
    coverage,
    intra_list_diversity,
    novelty,
    trend_group,
)
from engine.eventlog import EventLog
from engine.geo import Region
from engine.recommender import Params, Popularity, Recommendation, Recommender, UserRecommendations
from engine.scoring import Weights
from engine.simulation import (
    CatalogView,
    Purchase,
    SimulationConfig,
    User,
    initial_popularity,
    simulate,
)
from engine.vectorstore.base import Filter, Hit, Query, VectorStore, point_id

FIELDS = ("item_id", "product_id", "gender", "category", "store_id", "popularity", "image")
SWEEP = tuple(round(0.1 * i, 1) for i in range(11))


@dataclass(frozen=True)
class Protocol:
    """Every knob of an evaluation run."""

    users: int = 50
    max_purchases: int = 5
    k: int = 5
    seed: int = 42
    backbones: tuple[str, ...] = ("resnet50", "densenet121", "vgg16")
    weights: Weights = field(default_factory=Weights)
    candidates: int = 100
    use_log: bool = False


@dataclass(frozen=True)
class Shoppers:
    """Users, their purchases in time order, and the popularity to rank with."""

    users: list[User]
    purchases: dict[str, list[Purchase]]
    popularity: Popularity


@dataclass
class Catalog:
    """The catalog's items (payloads) as the evaluation needs them."""

    items: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, store: VectorStore) -> Catalog:
        items = {str(r.payload["item_id"]): r.payload for r in store.scroll(FIELDS)}
        if not items:
            raise FashionrecError("the vector store is empty; run `fashionrec ingest PATH` first")
        return cls(items)

    def view(self) -> CatalogView:
        """Parallel arrays for the simulation."""
        ids = sorted(self.items)
        return CatalogView.build(
            ids,
            [str(self.items[i]["product_id"]) for i in ids],
            [str(self.items[i]["gender"]) for i in ids],
            [str(self.items[i].get("store_id") or "") for i in ids],
        )


def simulated_shoppers(catalog: Catalog, protocol: Protocol, region: Region) -> Shoppers:
    """Simulate the protocol's users in memory (the log and the store are not touched)."""
    view = catalog.view()
    config = SimulationConfig(users=protocol.users, max_purchases=protocol.max_purchases,
                              seed=protocol.seed)  # fmt: skip
    start = np.array(
        [initial_popularity(i, config.p_max, config.seed) for i in view.item_ids.tolist()],
        dtype=np.int64,
    )
    result = simulate(view, start, region, config)
    return _shoppers(result.users, result.purchases, dict(zip(view.item_ids.tolist(),
                     result.popularity.tolist(), strict=True)))  # fmt: skip


def logged_shoppers(catalog: Catalog, log: EventLog) -> Shoppers:
    """The users and purchases of the event log, with the catalog's current popularity."""
    users = [u for u in (log.user(i) for i in log.user_ids()) if u is not None]
    if not users:
        raise FashionrecError("the event log has no users; run `fashionrec simulate` first")
    values = {i: float(p.get("popularity", 0.0)) for i, p in catalog.items.items()}
    return _shoppers(users, list(log.purchases()), values)


def _shoppers(users: list[User], purchases: Sequence[Purchase], values: dict[str, Any]) -> Shoppers:
    by_user: dict[str, list[Purchase]] = defaultdict(list)
    for p in purchases:
        by_user[p.user_id].append(p)
    popularity = {k: float(v) for k, v in values.items()}
    low, high = min(popularity.values()), max(popularity.values())
    return Shoppers([u for u in users if by_user[u.id]], dict(by_user),
                    Popularity(popularity, low, high))  # fmt: skip


class CachedSearch:
    """Memoises batch searches: ablations and sweeps reuse the same candidates."""

    def __init__(self, search: Callable[[Sequence[Query], Sequence[str]], list[list[Hit]]]) -> None:
        self.inner = search
        self.memo: dict[tuple[Any, ...], list[Hit]] = {}

    @staticmethod
    def _key(query: Query, fields: Sequence[str]) -> tuple[Any, ...]:
        flt = query.filter or Filter()
        return (
            query.using, hashlib.sha1(query.vector.tobytes()).hexdigest(), query.limit,
            tuple(sorted(flt.equals.items())),
            tuple(sorted((k, tuple(sorted(v))) for k, v in flt.exclude.items())),
            flt.near, tuple(fields),
        )  # fmt: skip

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
    """Runs systems over the shoppers and computes every metric."""

    def __init__(
        self,
        store: VectorStore,
        shoppers: Shoppers,
        catalog: Catalog,
        protocol: Protocol,
        matrix: CategorySimilarity = PAPER_MATRIX,
    ) -> None:
        self.store, self.shoppers, self.catalog, self.protocol = store, shoppers, catalog, protocol
        self.matrix = matrix
        self.search = CachedSearch(store.search)
        self.rng = np.random.default_rng([protocol.seed, 3])

    def recommender(self) -> Recommender:
        return Recommender(self.store, self.matrix, self.search, self.shoppers.popularity)

    def run_model(self, backbone: str, weights: Weights, holdout: bool = True) -> SystemResult:
        """The engine with these weights, for every user (and the next-purchase hold-out)."""
        params = Params(backbone=backbone, k=self.protocol.k, candidates=self.protocol.candidates,
                        weights=weights)  # fmt: skip
        engine, result = self.recommender(), SystemResult()
        for user in self.shoppers.users:
            bought = self.shoppers.purchases[user.id]
            full: UserRecommendations = engine.for_user(user, bought, params)
            result.lists += [(user, p, recs) for p, recs in full.per_purchase]
            if holdout and len(bought) >= 2:
                earlier = engine.for_user(user, bought[:-1], params)
                target = str(self.catalog.items[bought[-1].item_id]["product_id"])
                result.hits.append(target in {r.product_id for r in earlier.merged})
                result.recalls.append(
                    any(target in {r.product_id for r in recs} for _, recs in earlier.per_purchase)
                )
        return result

    def run_baseline(self, kind: str) -> SystemResult:
        """Random or most-popular items of the user's gender, never a bought product."""
        result = SystemResult()
        by_gender: dict[str, list[str]] = defaultdict(list)
        for item_id in sorted(self.catalog.items):
            by_gender[str(self.catalog.items[item_id]["gender"])].append(item_id)
        for user in self.shoppers.users:
            bought = self.shoppers.purchases[user.id]
            for p in bought:
                result.lists.append((user, p, self._baseline_list(kind, user, bought, by_gender)))
            if len(bought) >= 2:
                recs = self._baseline_list(kind, user, bought[:-1], by_gender)
                target = str(self.catalog.items[bought[-1].item_id]["product_id"])
                result.hits.append(target in {r.product_id for r in recs})
                result.recalls.append(result.hits[-1])
        return result

    def _baseline_list(self, kind: str, user: User, bought: Sequence[Purchase],
                       by_gender: dict[str, list[str]]) -> list[Recommendation]:  # fmt: skip
        items = self.catalog.items
        excluded = {str(items[p.item_id]["product_id"]) for p in bought}
        pool = [i for i in by_gender[user.gender] if str(items[i]["product_id"]) not in excluded]
        values = self.shoppers.popularity.values
        if kind == "random":
            order = [pool[i] for i in self.rng.permutation(len(pool))]
        else:
            order = sorted(pool, key=lambda i: (-values.get(i, 0.0), i))
        chosen: list[str] = []
        products: set[str] = set()
        for item_id in order:
            if str(items[item_id]["product_id"]) not in products:
                products.add(str(items[item_id]["product_id"]))
                chosen.append(item_id)
            if len(chosen) == self.protocol.k:
                break
        low, high = self.shoppers.popularity.low, self.shoppers.popularity.high
        query = str(items[bought[-1].item_id]["category"])
        return [
            Recommendation(
                rank=n, item_id=i, product_id=str(items[i]["product_id"]),
                category=str(items[i]["category"]), gender=str(items[i]["gender"]),
                store_id=items[i].get("store_id"), distance_km=None, visual=float("nan"),
                popularity=values.get(i, 0.0),
                norm_popularity=0.0 if high <= low else (values.get(i, 0.0) - low) / (high - low),
                popularity_term=float("nan"), relevance=float("nan"),
                category_sim=self.matrix(query, str(items[i]["category"])),
                query_item=bought[-1].item_id,
            )
            for n, i in enumerate(chosen, start=1)
        ]  # fmt: skip

    def pairs(self, result: SystemResult) -> list[Pair]:
        """Every (purchase, recommendation) pair, with the actual categories and genders."""
        out = []
        for user, purchase, recs in result.lists:
            purchased = str(self.catalog.items[purchase.item_id]["category"])
            out += [
                Pair(user.gender, user.trendiness, purchased, r.item_id, r.category,
                     str(self.catalog.items[r.item_id]["gender"]), r.norm_popularity,
                     self.matrix(purchased, r.category))
                for r in recs
            ]  # fmt: skip
        return out

    def beyond(self, result: SystemResult, backbone: str) -> dict[str, float]:
        """Coverage, diversity, novelty, average popularity, next-purchase hit rate/recall."""
        recommended = [r.item_id for _, _, recs in result.lists for r in recs]
        unique = sorted(set(recommended))
        vectors = {
            str(r.payload["item_id"]): r.vector
            for r in self.store.retrieve([point_id(i) for i in unique], vector=backbone)
            if r.vector is not None
        }
        lists = [np.array([vectors[r.item_id] for r in recs if r.item_id in vectors])
                 for _, _, recs in result.lists]  # fmt: skip
        return {
            "coverage": coverage(recommended, len(self.catalog.items)),
            "diversity": intra_list_diversity([v for v in lists if len(v)]),
            "novelty": novelty(recommended, self.shoppers.popularity.values),
            "avg_norm_popularity": float(np.mean([r.norm_popularity for _, _, rs in result.lists
                                                  for r in rs])) if recommended else float("nan"),
            "hit_rate": float(np.mean(result.hits)) if result.hits else float("nan"),
            "recall": float(np.mean(result.recalls)) if result.recalls else float("nan"),
        }  # fmt: skip


def by_trend_group(pairs: Sequence[Pair]) -> dict[str, Accuracy]:
    """Accuracy per trendiness group."""
    groups: dict[str, list[Pair]] = defaultdict(list)
    for p in pairs:
        groups[trend_group(p.trendiness)].append(p)
    return {g: accuracy(groups[g]) for g in ("low", "medium", "high")}


def ablation_weights(weights: Weights) -> dict[str, Weights]:
    """The full model and each term switched off."""
    return {
        "full": weights,
        "no popularity": replace(weights, popularity=0.0),
        "no visual": replace(weights, visual=0.0),
        "no category": replace(weights, category=0.0),
    }


def sweep_weights(w_p: float) -> Weights:
    """The sweep: w_v = 1 − w_p, no category term (the paper's two-term model)."""
    return Weights(visual=round(1.0 - w_p, 6), popularity=w_p, category=0.0)
