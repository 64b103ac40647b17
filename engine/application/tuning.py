"""Tuning's use-case: the ranking profile fitted on the home's own purchase log
(engine.recommend.tuning) and kept in the home."""

from __future__ import annotations

from engine.application.base import Home
from engine.recommend.blended import EPOCH, read_log
from engine.recommend.profile import Profile
from engine.recommend.recommender import check_space
from engine.recommend.shelf import Shelf
from engine.recommend.tuning import tune


class TuningUses(Home):
    """Fitting the ranking's weights to the shop's sales."""

    def tune(self, space: str | None = None) -> Profile:
        """Fit the profile on the log (earlier purchases; each shopper's later ones
        validate), save it in the home and return it; ConfigError, with nothing saved, when
        the log is too small."""
        space = self.space_in_force(space)
        check_space(self.store, space)  # as a recommendation checks it
        shelf = Shelf.of_store(self.store, space, self.taxonomy)
        half_life_days = self.log.popularity_settings().half_life_days
        log, _ = read_log(self.log, shelf, self.taxonomy, half_life_days)
        profile = tune(shelf, log, EPOCH, space)
        profile.save(self.settings.home)
        return profile
