"""An evaluation: runs the engine and the baselines over a cohort, and measures every metric.

Users are taken a chunk at a time; each user goes through every system (each backbone,
the baselines, the ablations, the w_p sweep and the MMR diversity sweep) before the
next, and what the tables need is added to running sums. So memory depends on the
catalog and the chunk, never on the number of users, and the searches of a user's first
run serve all their others from a small cache (but for the diversity sweep's: those bring
the candidates' vectors, so they are searched once more, then serve every λ > 0).
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

import numpy as np

from engine.catalog.taxonomy import Taxonomy, deepfashion
from engine.evaluate.baselines import Baseline, baseline_list
from engine.evaluate.blended import LeaveLastOut
from engine.evaluate.holdout import (
    HoldoutSum,
)
from engine.evaluate.metrics import (
    TREND_GROUPS,
    AccuracySum,
    Pair,
    Sum,
    list_diversity,
    surprisal,
    trend_group,
)
from engine.evaluate.protocol import (
    SWEEP,
    Cohort,
    Protocol,
    StoredItems,
    ablation_weights,
    sweep_weights,
)
from engine.recommend.columns import Columns
from engine.recommend.profile import Profile
from engine.recommend.recommender import Params, Recommender
from engine.recommend.rerank import Recommendation
from engine.recommend.scoring import Weights
from engine.recommend.shelf import Shelf
from engine.recommend.strategies import Searcher
from engine.vectorstore.base import Filter, Hit, Query, VectorStore
from engine.vocabulary.records import Purchase, User
from engine.vocabulary.schema import CATEGORY, GENDER, ITEM_ID, PRODUCT_ID, point_id

BASELINES: Final[tuple[tuple[Baseline, str], ...]] = (
    ("random", "random (same gender)"),
    ("popular", "most popular (same gender)"),
)
CHUNK: Final = 256  # users per chunk: one vector lookup per backbone each
CACHE: Final = 256  # searches kept (a user needs 2 per purchase and backbone, +1 for λ > 0)


class CachedSearch:
    """Memoises batch searches, the `capacity` most recently used: a user's ablations and
    sweeps reuse the candidates of their first run."""

    def __init__(self, search: Searcher, capacity: int = CACHE) -> None:
        self.inner = search
        self.capacity = capacity
        self.memo: OrderedDict[tuple[Any, ...], list[Hit]] = OrderedDict()

    @staticmethod
    def _key(query: Query, fields: Sequence[str]) -> tuple[Any, ...]:
        """Everything that shapes the hits: a search with vectors or by MMR never reuses
        hits of a plain one (nor the reverse)."""
        flt = query.filter or Filter()
        return (
            query.using,
            hashlib.sha1(query.vector.tobytes()).hexdigest(),
            query.limit,
            query.with_vector,
            query.mmr,
            tuple(sorted(flt.equals.items())),
            tuple(sorted((k, tuple(sorted(v))) for k, v in flt.within.items())),
            tuple(sorted((k, tuple(sorted(v))) for k, v in flt.exclude.items())),
            flt.near,
            flt.has_vector,
            None if flt.ids is None else tuple(sorted(flt.ids)),
            tuple(fields),
        )

    def __call__(self, queries: Sequence[Query], fields: Sequence[str]) -> list[list[Hit]]:
        keys = [self._key(q, fields) for q in queries]
        found: dict[tuple[Any, ...], list[Hit]] = {}
        for key in keys:
            if key in self.memo:
                self.memo.move_to_end(key)
                found[key] = self.memo[key]
        missing = [i for i, key in enumerate(keys) if key not in found]
        if missing:
            hits = self.inner([queries[i] for i in missing], fields)
            for i, result in zip(missing, hits, strict=True):
                found[keys[i]] = self.memo[keys[i]] = result
            while len(self.memo) > self.capacity:
                self.memo.popitem(last=False)
        return [found[key] for key in keys]


@dataclass
class SystemResult:
    """What one system recommended: (user, purchase, list) triples."""

    lists: list[tuple[User, Purchase, list[Recommendation]]] = field(default_factory=list)


@dataclass
class BeyondSum:
    """The running sums behind the beyond-accuracy metrics of one system."""

    backbone: str  # whose vectors measure diversity
    recommended: Counter[str] = field(default_factory=Counter)  # bounded by the catalog
    diversity: Sum = field(default_factory=Sum)
    novelty: Sum = field(default_factory=Sum)
    norm_popularity: Sum = field(default_factory=Sum)
    pending: list[list[str]] = field(default_factory=list)  # lists awaiting their vectors

    def result(self, catalog_size: int) -> dict[str, float]:
        """Coverage, diversity, novelty, average popularity."""
        return {
            "coverage": len(self.recommended) / catalog_size if catalog_size else float("nan"),
            "diversity": self.diversity.mean(),
            "novelty": self.novelty.mean(),
            "avg_norm_popularity": self.norm_popularity.mean(),
        }


@dataclass
class MmrSum:
    """The running sums of one MMR diversity λ of the first backbone: accuracy, and the
    lists' intra-list diversity and coverage (`lists`, measured on that backbone)."""

    accuracy: AccuracySum
    lists: BeyondSum

    def result(self, catalog_size: int) -> dict[str, float]:
        """Intra-list diversity, category similarity (%), popularity MAE, coverage, pairs."""
        score, lists = self.accuracy.result(), self.lists.result(catalog_size)
        return {
            "intra_list_diversity": lists["diversity"],
            "category_similarity": score.category_similarity,
            "popularity_mae": score.popularity_mae,
            "popularity_mae_x100": score.popularity_mae_x100,
            "coverage": lists["coverage"],
            "pairs": score.pairs,
        }


@dataclass
class Totals:
    """Everything the tables and figures need, summed over the users seen so far."""

    table1: dict[str, AccuracySum]  # per backbone, then per baseline
    beyond: dict[str, BeyondSum]  # the same systems
    table2: dict[str, AccuracySum]  # the first backbone's ablations ("full" is table 1's)
    table3: dict[str, AccuracySum]  # the first backbone's trendiness groups
    table3_other: dict[str, AccuracySum]  # the same, ranked on the other popularity mode
    sweep: dict[str, dict[float, AccuracySum]]  # per backbone, per w_p
    mmr: dict[float, MmrSum]  # the first backbone with the protocol's weights, per λ
    holdout: HoldoutSum  # leave-last-out, per shopper and system
    users: int = 0
    first: tuple[User, list[Purchase]] | None = None  # the grid's user

    def listed(self) -> list[BeyondSum]:
        """Every sum whose lists await or have their diversity measured."""
        return [*self.beyond.values(), *(point.lists for point in self.mmr.values())]


class Evaluation:
    """Runs systems over the cohort and computes every metric."""

    def __init__(
        self,
        store: VectorStore,
        cohort: Cohort,
        items: StoredItems,
        protocol: Protocol,
        taxonomy: Taxonomy | None = None,
        profile: Profile | None = None,
    ) -> None:
        self.store, self.cohort, self.items, self.protocol = store, cohort, items, protocol
        self.profile = profile  # the home's fitted one: one more leave-last-out row
        self.taxonomy = taxonomy or deepfashion()
        self.search = CachedSearch(store.search)
        # ids-only searches and the rerank's fields from a table, where this process is
        # the store's only writer (same results, most of a search's cost saved)
        self.columns = Columns(store) if store.exclusive else None
        self.rng = np.random.default_rng([protocol.seed, 3])
        self.engine = self.recommender()
        # Table 3 on the popularity mode the cohort does not rank on, as of its end
        self.other_mode, popularity = cohort.other(protocol.normalise, cohort.end)
        self.other_engine = Recommender(store, self.taxonomy, self.search, popularity, self.columns)
        self.bits = surprisal(cohort.popularity.values)
        self._by_gender: dict[str, list[str]] = defaultdict(list)
        for item_id in sorted(items.items):
            self._by_gender[str(items.items[item_id][GENDER])].append(item_id)
        self._pools: dict[str, list[str]] = {}
        self._products = {i: str(p[PRODUCT_ID]) for i, p in items.items.items()}
        self._categories = {i: str(p[CATEGORY]) for i, p in items.items.items()}
        self._lastout: LeaveLastOut | None = None

    def lastout(self) -> LeaveLastOut:
        """Leave-last-out's systems, fitted on the cohort once (walks it whole)."""
        if self._lastout is None:
            shoppers = [found for _, chunk in self.cohort.chunks(CHUNK) for found in chunk]
            space = self.protocol.backbones[0]
            self._lastout = LeaveLastOut(
                Shelf.of_store(self.store, space, self.taxonomy),
                shoppers,
                self.taxonomy,
                self.cohort.half_life_s,
                self.cohort.initial_popularity(),
                self.protocol.holdout,
                self.protocol.seed,
                self.protocol.split,
                timedelta(days=self.protocol.window_days),
                self.profile,
            )
        return self._lastout

    def recommender(self) -> Recommender:
        """The engine over the store, ranking on the cohort's popularity."""
        return Recommender(
            self.store, self.taxonomy, self.search, self.cohort.popularity, self.columns
        )

    def params(self, backbone: str, weights: Weights, diversity: float = 0.0) -> Params:
        """The protocol's recommendation parameters for one backbone, weights and MMR λ."""
        protocol = self.protocol
        return Params(backbone, protocol.k, protocol.candidates, weights, diversity=diversity)

    def _product(self, purchase: Purchase) -> str:
        return str(self.items.items[purchase.item_id][PRODUCT_ID])

    def model(
        self,
        user: User,
        bought: Sequence[Purchase],
        backbone: str,
        weights: Weights,
        diversity: float = 0.0,
    ) -> SystemResult:
        """The engine with these weights and MMR λ for one user."""
        params = self.params(backbone, weights, diversity)
        full = self.engine.for_user(user, bought, params)
        return SystemResult([(user, p, recs) for p, recs in full.per_purchase])

    def _pool(self, gender: str) -> list[str]:
        """The items a shopper of this gender is shown, by item id."""
        if gender not in self._pools:
            shown = self.taxonomy.shown_to(gender)
            self._pools[gender] = sorted(i for g in shown for i in self._by_gender.get(g, []))
        return self._pools[gender]

    def baseline(self, user: User, bought: Sequence[Purchase], kind: Baseline) -> SystemResult:
        """Random or most-popular items the user's gender is shown, never a bought product,
        for one user."""
        pool = self._pool(user.gender)

        def recommend(purchases: Sequence[Purchase]) -> list[Recommendation]:
            items, popularity = self.items.items, self.cohort.popularity
            taxonomy, k = self.taxonomy, self.protocol.k
            return baseline_list(kind, purchases, pool, items, popularity, taxonomy, k, self.rng)

        return SystemResult([(user, p, recommend(bought)) for p in bought])

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

    def totals(self) -> Totals:
        """Empty sums for every system of the protocol."""
        backbones = self.protocol.backbones
        names = [*backbones, *(name for _, name in BASELINES)]
        first = backbones[0]
        return Totals(
            table1={n: AccuracySum() for n in names},
            beyond={n: BeyondSum(n if n in backbones else first) for n in names},
            table2={n: AccuracySum() for n in ablation_weights(self.protocol.weights)},
            table3={g: AccuracySum() for g in TREND_GROUPS},
            table3_other={g: AccuracySum() for g in TREND_GROUPS},
            sweep={b: {w_p: AccuracySum() for w_p in SWEEP} for b in backbones},
            mmr={
                diversity: MmrSum(AccuracySum(), BeyondSum(first))
                for diversity in self.protocol.diversity_sweep
            },
            holdout=HoldoutSum(self.protocol.holdout_k),
        )

    def run(self, advance: Callable[[int], None] = lambda n: None, chunk: int = CHUNK) -> Totals:
        """Every system for every user, a chunk of users at a time; `advance` is told how
        many users each step walked through."""
        totals = self.totals()
        for walked, users in self.cohort.chunks(chunk):
            for user, bought in users:
                self.add_user(totals, user, bought)
                advance(1)
            if self.protocol.holdout or self.protocol.split:
                self.lastout().add(
                    totals.holdout, users, self.protocol.weights, self.protocol.candidates
                )
            self._measure_diversity(totals)
            if walked > len(users):
                advance(walked - len(users))
        return totals

    def add_user(self, totals: Totals, user: User, bought: Sequence[Purchase]) -> None:
        """Run every system for one user and add what it recommended to the totals."""
        protocol = self.protocol
        first = protocol.backbones[0]
        if totals.first is None:
            totals.first = (user, list(bought))
        totals.users += 1
        ranked: dict[tuple[str, Weights, float], tuple[SystemResult, list[Pair]]] = {}

        def pairs_for(backbone: str, weights: Weights, diversity: float = 0.0) -> list[Pair]:
            """One system's pairs; identical runs are computed once."""
            if (backbone, weights, diversity) not in ranked:
                result = self.model(user, bought, backbone, weights, diversity)
                ranked[backbone, weights, diversity] = (result, self.pairs(result))
            return ranked[backbone, weights, diversity][1]

        def system(name: str, result: SystemResult) -> list[Pair]:
            pairs = self.pairs(result)
            totals.table1[name].add(pairs)
            self._add_lists(totals.beyond[name], result)
            return pairs

        for backbone in protocol.backbones:
            result = self.model(user, bought, backbone, protocol.weights)
            pairs = system(backbone, result)
            ranked[backbone, protocol.weights, 0.0] = (result, pairs)
            if backbone == first:
                totals.table3[trend_group(user.trendiness)].add(pairs)
                params = self.params(first, protocol.weights)
                other = self.other_engine.for_user(user, bought, params)
                lists = SystemResult([(user, p, recs) for p, recs in other.per_purchase])
                totals.table3_other[trend_group(user.trendiness)].add(self.pairs(lists))
        for kind, name in BASELINES:
            system(name, self.baseline(user, bought, kind))
        for name, weights in ablation_weights(protocol.weights).items():
            totals.table2[name].add(pairs_for(first, weights))
        for backbone in protocol.backbones:
            for w_p in SWEEP:
                totals.sweep[backbone][w_p].add(pairs_for(backbone, sweep_weights(w_p)))
        for diversity, point in totals.mmr.items():
            point.accuracy.add(pairs_for(first, protocol.weights, diversity))
            self._add_lists(point.lists, ranked[first, protocol.weights, diversity][0])

    def _add_lists(self, beyond: BeyondSum, result: SystemResult) -> None:
        """Add a system's lists to its beyond-accuracy sums (the lists wait for their
        vectors: `_measure_diversity`)."""
        for _, _, recs in result.lists:
            ids = [r.item_id for r in recs]
            beyond.recommended.update(ids)
            beyond.novelty.extend(map(self.bits, ids))
            beyond.norm_popularity.extend(r.norm_popularity for r in recs)
            beyond.pending.append(ids)

    def _measure_diversity(self, totals: Totals) -> None:
        """The diversity of the lists awaiting it, with one vector lookup per backbone."""
        waiting: dict[str, set[str]] = defaultdict(set)
        for beyond in totals.listed():
            for ids in beyond.pending:
                waiting[beyond.backbone].update(ids)
        vectors: dict[str, dict[str, Any]] = {}
        for backbone, unique in waiting.items():
            records = self.store.retrieve([point_id(i) for i in sorted(unique)], vector=backbone)
            vectors[backbone] = {
                str(r.payload[ITEM_ID]): r.vector for r in records if r.vector is not None
            }
        for beyond in totals.listed():
            found = vectors.get(beyond.backbone, {})
            for ids in beyond.pending:
                rows = [found[i] for i in ids if i in found]
                value = list_diversity(np.array(rows)) if rows else None
                if value is not None:
                    beyond.diversity.add(value)
            beyond.pending.clear()
