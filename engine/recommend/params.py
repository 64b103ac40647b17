"""What to recommend and how to rank it: the engine's parameters of a query, checked when
they are made (engine/recommend/query.py makes them of what a face was asked)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from engine.errors import ConfigError
from engine.events.trending import PopularityMode
from engine.helpers import choice
from engine.popularity.normpop import DEFAULT_NORMALISE, Stored
from engine.recommend.diversity import check_diversity
from engine.recommend.profile import Profile
from engine.recommend.scoring import Weights
from engine.spaces.registry import DEFAULT_BACKBONE
from engine.vocabulary.geo import Location

Rerank = Literal["client", "server"]
Tuned = Literal["auto", "always", "never"]


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
    tuned: Tuned = "auto"  # the home's fitted profile: when it has one, always (or fail), never
    profile: Profile | None = None  # the blended ranking's profile in force (the application's)

    @property
    def searched(self) -> str:
        """The space searched: the one asked for, else resnet50 (engine/application.py gives
        a home's default)."""
        return self.space or DEFAULT_BACKBONE

    @property
    def ranked_by(self) -> PopularityMode:
        """The popularity that ranks: the one asked for, else all-time."""
        return self.popularity or "all-time"

    def __post_init__(self) -> None:
        """ConfigError naming the first bad value: no Params holds one."""
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
