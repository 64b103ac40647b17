"""Leave-last-out over a shelf that holds every vector (exact, a chunk of shoppers per
matrix product): the full model (candidates from every source, weights fitted on the
cohort's earlier purchases, never on a held-out one), without each source, with each term
switched off, with the hand-set presets; the rerank's formula and the cosine alone over the
visual neighbours; and the baselines. Every list is of products; nothing is written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

import numpy as np
from numpy.typing import NDArray

from engine.catalog.taxonomy import Taxonomy
from engine.errors import ConfigError
from engine.evaluate.holdout import (
    FULL,
    HOME,
    LABELS,
    POPULAR,
    PRESET_ROWS,
    RANDOM,
    RERANK,
    SOURCE_ABLATIONS,
    TRENDING,
    VISUAL,
    HoldoutSum,
)
from engine.evaluate.protocol import AUTO
from engine.recommend.pool import SOURCES, Moment, Pool, pool
from engine.recommend.profile import PRESET_PROFILES, Profile, first_of_products, ranked
from engine.recommend.scoring import Weights
from engine.recommend.shelf import Cosines, Shelf, best_rows
from engine.recommend.tuning import Log, fit
from engine.vocabulary.records import Purchase, User

TERMS: Final = {  # the features of each term (ABLATIONS) its ablation switches off
    "no popularity": (
        "popularity",
        "match",
        "sales",
        "trendy_popularity",
        "all_time",
        "trendy_all_time",
    ),
    "no visual": ("visual_best", "visual_mean", "visual_last", "untrendy_visual"),
    "no category": ("category", "category_share"),
    "no colour": ("colour_best", "colour_mean", "untrendy_colour"),
}
Shopper = tuple[User, Sequence[Purchase]]
BASELINE_ROWS: Final = 8  # a baseline's best rows per product listed, first looked at


class LeaveLastOut:
    """The cohort's purchases as a log over the shelf, the profile fitted on them without
    the targets, and every system's lists. The targets: each shopper's last `holdout`
    purchases (leave-last-out), or with `split` (a date, or AUTO: `window` before the last
    purchase) each shopper's purchases in the `window` after it, every purchase before it
    their history (a time split, as retailers score). `home`: the home's fitted profile,
    ranked as one more system."""

    def __init__(
        self,
        shelf: Shelf,
        shoppers: Sequence[Shopper],
        taxonomy: Taxonomy,
        half_life_s: float,
        initial: Mapping[str, float],
        holdout: int,
        seed: int,
        split: str | None = None,
        window: timedelta = timedelta(days=14),
        home: Profile | None = None,
    ) -> None:
        self.shelf, self.taxonomy, self.holdout, self.window = shelf, taxonomy, holdout, window
        self.home = home
        users = [user for user, _ in shoppers]
        purchases = [p for _, bought in shoppers for p in bought]
        self.start = min((p.timestamp for p in purchases), default=datetime.now(UTC))
        self.log = Log.of(users, purchases, shelf, taxonomy, half_life_s, self.start, initial)
        self.code = {u.id: n for n, u in enumerate(users)}
        self.split: datetime | None = None
        if split is not None:
            last = max((p.timestamp for p in purchases), default=self.start)
            self.split = last - window if split == AUTO else _date(split, last.tzinfo)
            kept = self.log.seconds < (self.split - self.start).total_seconds()
        else:
            kept = np.ones(len(self.log.items), dtype=bool)
            for shopper in np.unique(self.log.shoppers):
                kept[np.flatnonzero(self.log.shoppers == shopper)[-holdout:]] = False
        try:
            weights = fit(shelf, self.log, self.log.examples(kept), kept)
            self.profile = Profile("tuned", weights)
        except ConfigError:  # too few earlier purchases: the hand-set weights rank
            self.profile = replace(PRESET_PROFILES["default"], name="default (too few to fit)")
        self.rng = np.random.default_rng([seed, 13])

    def add(
        self, totals: HoldoutSum, shoppers: Sequence[Shopper], weights: Weights, candidates: int
    ) -> None:
        """Every system's list for each of these shoppers who has a held-out product new to
        them, measured into the totals; the rerank's `weights` over `candidates` visual
        neighbours."""
        shelf, k = self.shelf, totals.k
        asked: list[tuple[User, list[int], set[str], datetime]] = []
        for user, bought in shoppers:
            earlier, later = self._parts(bought)
            history = [shelf.index[p.item_id] for p in earlier if p.item_id in shelf.index]
            later_products = {self._product(p) for p in later}
            new = {p for p in later_products - {self._product(p) for p in earlier} if p}
            if history and new:
                when = later[0].timestamp if self.split is None else self.split
                asked.append((user, history, new, when))
        if not asked:
            return
        cosines = Cosines(shelf, (row for _, history, _, _ in asked for row in history))
        rerank = Profile.of_weights(RERANK, weights)
        for user, history, held, when in asked:
            code = self.code.get(user.id)
            moment = self.log.moment((when - self.start).total_seconds())
            shown = frozenset(self.taxonomy.shown_to(user.gender))
            allowed = shelf.allowed(history, shown)
            looks = cosines.looks(history)
            found = pool(shelf, looks, moment, history, user.trendiness, allowed, code)
            visual = pool(
                shelf,
                looks,
                moment,
                history,
                user.trendiness,
                allowed,
                code,
                ("visual",),
                weights.gamma,
                max(k, candidates),
            )
            for name, listed in self._lists(found, visual, rerank, k).items():
                totals.add(name, listed, held)
            for name, listed in self._baselines(moment, history, allowed, user, weights, k):
                totals.add(name, listed, held)
            totals.shoppers += 1

    def _parts(self, bought: Sequence[Purchase]) -> tuple[list[Purchase], list[Purchase]]:
        """A shopper's history and targets."""
        if self.split is None:
            if len(bought) <= self.holdout:
                return list(bought), []
            return list(bought[: -self.holdout]), list(bought[-self.holdout :])
        end = self.split + self.window
        return (
            [p for p in bought if p.timestamp < self.split],
            [p for p in bought if self.split <= p.timestamp < end],
        )

    def _lists(self, found: Pool, visual: Pool, rerank: Profile, k: int) -> dict[str, list[str]]:
        """The systems that rank a pool: the full model and its ablations, the presets, the
        rerank and the cosine over the visual neighbours."""
        tuned = self.profile.scores(found)
        out = {FULL: self._products(found, tuned, k)}
        for source in SOURCES:
            keep = found.without(source)
            out[SOURCE_ABLATIONS[source]] = self._products(found.subset(keep), tuned[keep], k)
        for name, features in TERMS.items():
            weights = {f: w for f, w in self.profile.weights.items() if f not in features}
            out[name] = self._products(
                found, replace(self.profile, weights=weights).scores(found), k
            )
        for name, preset in PRESET_PROFILES.items():
            out[PRESET_ROWS[name]] = self._products(found, preset.scores(found), k)
        if self.home is not None:
            out[HOME] = self._products(found, self.home.scores(found), k)
        out[RERANK] = self._products(visual, rerank.scores(visual), k)
        out[VISUAL] = self._products(visual, visual.features[:, 0], k)
        return out

    def _baselines(
        self,
        moment: Moment,
        history: list[int],
        allowed: NDArray[np.bool_],
        user: User,
        weights: Weights,
        k: int,
    ) -> list[tuple[str, list[str]]]:
        """Over every item the shopper is shown (no product they bought): labels only
        (w_c·CatSim + w_p·match, no vision), random, most popular, trending now; ties in a
        seeded random order."""
        shelf = self.shelf
        catsim = shelf.catsim[np.unique(shelf.categories[history])].max(axis=0)
        match = 1.0 - np.abs(moment.norm - user.trendiness) ** weights.gamma
        labels = weights.category * catsim[shelf.categories] + weights.popularity * match
        scores = {
            LABELS: labels,
            RANDOM: np.zeros(len(shelf)),
            POPULAR: moment.all_time,
            TRENDING: moment.sales,
        }
        rows = np.flatnonzero(allowed)
        ties = np.zeros(len(shelf), dtype=np.int64)
        ties[rows] = self.rng.permutation(len(rows))
        out = []
        for name, score in scores.items():
            found: list[str] = []
            for n in (BASELINE_ROWS * k, len(rows)):  # the best rows, or all when too few
                found = self._distinct(best_rows(score, allowed, n, ties), k)
                if len(found) == k:
                    break
            out.append((name, found))
        return out

    def _products(self, found: Pool, relevance: NDArray[np.float64], k: int) -> list[str]:
        return self._named(ranked(found, relevance, self.shelf.products, k))

    def _distinct(self, order: NDArray[np.int64], k: int) -> list[str]:
        """The first k distinct products of the rows in order."""
        return self._named(first_of_products(order, self.shelf.products, k))

    def _named(self, rows: list[int]) -> list[str]:
        return [self.shelf.product_ids[self.shelf.products[r]] for r in rows]

    def _product(self, purchase: Purchase) -> str | None:
        row = self.shelf.index.get(purchase.item_id)
        return None if row is None else self.shelf.product_ids[self.shelf.products[row]]


def _date(text: str, zone: tzinfo | None) -> datetime:
    """A split date (YYYY-MM-DD, or a time) in the purchases' time zone."""
    found = datetime.fromisoformat(text)
    return found if found.tzinfo is not None else found.replace(tzinfo=zone or UTC)
