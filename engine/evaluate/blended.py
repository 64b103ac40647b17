"""Leave-last-out's blended systems: candidates from every source scored by weights fitted
on the cohort's own earlier purchases (engine.recommend.tuning), never on a held-out one;
the same pool with a source left out, a term switched off, or the hand-set presets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Final

import numpy as np

from engine.catalog.taxonomy import Taxonomy
from engine.errors import ConfigError
from engine.evaluate.holdout import PRESET_ROWS, SOURCE_ABLATIONS
from engine.recommend.pool import SOURCES, Pool, pool
from engine.recommend.profile import PRESET_PROFILES, Profile, ranked
from engine.recommend.shelf import Shelf
from engine.recommend.tuning import Log, fit
from engine.vocabulary.records import Purchase, User

TERMS: Final = {  # the features of each term (ABLATIONS) its ablation switches off
    "no popularity": ("popularity", "match", "sales", "trendy_popularity"),
    "no visual": ("visual_best", "visual_mean", "visual_last", "untrendy_visual"),
    "no category": ("category", "category_share"),
}


class Blended:
    """The cohort's purchases as a log over the shelf, and the profile fitted on them with
    each shopper's last `holdout` purchases left out."""

    def __init__(
        self,
        shelf: Shelf,
        users: Sequence[User],
        purchases: Sequence[Purchase],
        taxonomy: Taxonomy,
        half_life_s: float,
        holdout: int,
    ) -> None:
        self.shelf = shelf
        self.start = min((p.timestamp for p in purchases), default=datetime.now())
        self.log = Log.of(users, purchases, shelf, taxonomy, half_life_s, self.start)
        self.code = {u.id: n for n, u in enumerate(users)}
        kept = np.ones(len(self.log.items), dtype=bool)
        for shopper in np.unique(self.log.shoppers):
            kept[np.flatnonzero(self.log.shoppers == shopper)[-holdout:]] = False
        try:
            weights = fit(shelf, self.log, self.log.examples(kept), kept)
            self.profile = Profile("tuned", weights)
        except ConfigError:  # too few earlier purchases: the hand-set weights rank
            self.profile = replace(PRESET_PROFILES["default"], name="default (too few to fit)")

    @staticmethod
    def names(full: str) -> list[str]:
        """The systems' names, the full model's first."""
        return [
            full,
            *SOURCE_ABLATIONS.values(),
            *TERMS,
            *PRESET_ROWS.values(),
        ]

    def lists(
        self, user: User, earlier: Sequence[Purchase], when: datetime, k: int, full: str
    ) -> dict[str, list[str]]:
        """Every blended system's top-k products for a shopper who bought `earlier`, with
        the sales just before `when`."""
        shelf, log = self.shelf, self.log
        history = [shelf.index[p.item_id] for p in earlier if p.item_id in shelf.index]
        if not history:
            return {name: [] for name in self.names(full)}
        moment = log.moment((when - self.start).total_seconds())
        shopper = self.code.get(user.id)
        shown = None if shopper is None else log.shown[shopper]
        allowed = shelf.allowed(history, shown)
        found = pool(shelf, shelf, moment, history, user.trendiness, allowed, shopper)
        tuned = self.profile.scores(found)

        def products(p: Pool, relevance: np.ndarray) -> list[str]:
            rows = ranked(p, relevance, shelf.products, k)
            return [shelf.product_ids[shelf.products[r]] for r in rows]

        out = {full: products(found, tuned)}
        for source in SOURCES:
            keep = np.array([s != (source,) for s in found.sources], dtype=bool)
            out[SOURCE_ABLATIONS[source]] = products(_subset(found, keep), tuned[keep])
        for name, features in TERMS.items():
            weights = {f: w for f, w in self.profile.weights.items() if f not in features}
            out[name] = products(found, replace(self.profile, weights=weights).scores(found))
        for name, preset in PRESET_PROFILES.items():
            out[PRESET_ROWS[name]] = products(found, preset.scores(found))
        return out


def _subset(found: Pool, keep: np.ndarray) -> Pool:
    return Pool(
        found.rows[keep],
        [s for s, kept in zip(found.sources, keep, strict=True) if kept],
        found.features[keep],
        found.closest[keep],
    )
