"""Tuning's use-case: the ranking profile fitted on the home's own purchase log
(engine.recommend.tuning) and kept in the home."""

from __future__ import annotations

from engine.application.base import Home
from engine.events.trending import DAY_S
from engine.recommend.profile import Profile
from engine.recommend.shelf import Shelf
from engine.recommend.tuning import Log, tune
from engine.spaces.registry import space_in_force


class TuningUses(Home):
    """Fitting the ranking's weights to the shop's sales."""

    def tune(self, space: str | None = None) -> Profile:
        """Fit the profile on the log (earlier purchases; each shopper's later ones
        validate), save it in the home and return it; ConfigError, with nothing saved, when
        the log is too small."""
        space = space_in_force(self.settings.home, space, self.store.vector_dims())
        shelf = Shelf.of_store(self.store, space, self.taxonomy)
        users = [u for u in map(self.log.user, self.log.user_ids()) if u is not None]
        purchases = list(self.log.purchases())
        half_life_s = self.log.popularity_settings().half_life_days * DAY_S
        start = min((p.timestamp for p in purchases), default=self.log.trend_anchor())
        initial = {i: float(v) for i, v in self.log.initial_popularity().items()}
        log = Log.of(users, purchases, shelf, self.taxonomy, half_life_s, start, initial)
        profile = tune(shelf, log, start, space)
        profile.save(self.settings.home)
        return profile
