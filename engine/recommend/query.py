"""The ranking query: every option of a recommendation, defined once. The command line's
options (cli/ranking.py makes them of it), the service's query parameters (FastAPI reads
the model), `evaluate`'s weights and the page's controls are this; `params()` makes the
engine's Params of it in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.errors import ConfigError
from engine.events.trending import PopularityMode
from engine.helpers import choice
from engine.popularity.normpop import Stored
from engine.recommend.params import Tuned
from engine.recommend.recommender import Params, Rerank
from engine.recommend.scoring import Weights, preset_normalise, preset_weights
from engine.vocabulary.geo import Location

# what only a query that is not a user's takes: a user has their own t, gender and residence
QUERY_ONLY: Final = ("trendiness", "gender", "lat", "lon")
DEFAULT_TRENDINESS: Final = 0.5
TUNED: Final = "tuned"  # the preset of the home's fitted profile


class RankingQuery(BaseModel):
    """How to rank: what to search, the relevance's weights, the filters."""

    model_config = ConfigDict(frozen=True)

    k: int = Field(5, le=100, description="Recommendations per list.")
    space: str | None = Field(
        None,
        description="Vector space to search: a backbone's or a compact space (default: the "
        "store's, `fashionrec compact default`, else resnet50).",
    )
    backbone: str | None = Field(
        None, description="The former name of space.", json_schema_extra={"deprecated": True}
    )
    candidates: int = Field(100, le=1000, description="ANN candidates before the rerank.")
    preset: str | None = Field(
        None,
        description="tuned (the weights `fashionrec tune` fitted to the shop's sales: the "
        "default once they exist), default (hand-set, 0.6/0.2/0.2) or paper (0.7/0.3/0).",
    )
    w_visual: float | None = Field(None, description="w_v, visual similarity.")
    w_popularity: float | None = Field(None, description="w_p, trend-matched popularity.")
    w_category: float | None = Field(None, description="w_c, category similarity.")
    gamma: float | None = Field(None, description="γ of 1 − |NormPop − t|^γ.")
    w_distance: float = Field(0.0, description="w_d of w_d·exp(−d/scale).")
    distance_scale_km: float = Field(5.0, description="scale of the distance term.")
    max_km: float | None = Field(None, description="Only stores within this many km.")
    trendiness: float | None = Field(
        None, description="Item and photo queries: t, the shopper's trendiness (default 0.5)."
    )
    gender: str | None = Field(
        None, description="Item and photo queries: only items shown to this gender."
    )
    lat: float | None = Field(None, description="Item and photo queries: where distances start.")
    lon: float | None = Field(None, description="(with lat)")
    rerank: Rerank = Field("client", description="client (numpy) or server (in Qdrant).")
    diversity: float = Field(
        0.0,
        description="λ of maximal marginal relevance: 0 ranks by relevance (off), 1 by "
        "unlikeness to what is already listed.",
    )
    popularity: PopularityMode | None = Field(
        None, description="all-time or trending (default: the store's, `popularity mode`)."
    )
    normalise: Stored | None = Field(
        None,
        description="NormPop: rank (percentile of the popularity) or minmax (the paper's; "
        "the default of the paper preset).",
    )
    category: str | None = Field(
        None, description="Only items of this category (the shop's words)."
    )
    min_price: float | None = Field(None, description="Only items priced at least this.")
    max_price: float | None = Field(None, description="Only items priced at most this.")
    in_stock: bool = Field(
        True, description="Leave out items marked out of stock (the default), or list them too."
    )

    @field_validator("rerank", "popularity", "normalise", mode="before")
    @classmethod
    def _one_of(cls, value: Any, info: Any) -> Any:
        """A value of a closed list, or ConfigError naming the list (not a validation error:
        every face words it as its other mistakes)."""
        allowed = {"rerank": Rerank, "popularity": PopularityMode, "normalise": Stored}
        return value if value is None else choice(allowed[info.field_name], value, info.field_name)

    def weights(self) -> Weights:
        """The preset's weights with the ones given (ConfigError: an unknown preset, or
        every weight 0)."""
        return preset_weights(
            self.hand_set,
            visual=self.w_visual,
            popularity=self.w_popularity,
            category=self.w_category,
            gamma=self.gamma,
            distance=self.w_distance,
            distance_scale_km=self.distance_scale_km,
        )

    @property
    def hand_set(self) -> str:
        """The hand-set preset the weights start from (tuned and none start from default)."""
        return "default" if self.preset in (None, TUNED) else self.preset

    @property
    def tuned(self) -> Tuned:
        """When the home's fitted profile ranks: always with `--preset tuned`, never with a
        hand-set preset or a weight given, else when the home has one."""
        given = (self.w_visual, self.w_popularity, self.w_category, self.gamma)
        if any(w is not None for w in given) or self.preset not in (None, TUNED):
            return "never"
        return "always" if self.preset == TUNED else "auto"

    @property
    def location(self) -> Location | None:
        """Where distances start; ConfigError for one of lat and lon without the other."""
        if (self.lat is None) != (self.lon is None):
            raise ConfigError("give both lat and lon, or neither")
        if self.lat is None or self.lon is None:
            return None
        return Location.of(self.lat, self.lon, f"lat,lon {self.lat:g},{self.lon:g}")

    def for_user(self, named: Callable[[str], str] = str) -> Params:
        """The Params of a user's query; ConfigError for options only an item's or a
        photo's query takes (a user has their own t, gender and residence), named as the face
        names them."""
        given = list(dict.fromkeys(named(n) for n in QUERY_ONLY if getattr(self, n) is not None))
        if given:
            shown = ", ".join(given)
            raise ConfigError(
                f"{shown} {'is' if len(given) == 1 else 'are'} for item and photo queries; a "
                "user's recommendations use their own trendiness, gender and residence: drop "
                f"{shown}"
            )
        return self.params()

    def params(self) -> Params:
        """The engine's Params (the application fills in the home's defaults and validates
        them once)."""
        return Params(
            space=self.space or self.backbone,
            k=self.k,
            candidates=self.candidates,
            weights=self.weights(),
            trendiness=DEFAULT_TRENDINESS if self.trendiness is None else self.trendiness,
            gender=self.gender,
            max_km=self.max_km,
            at=self.location,
            rerank=self.rerank,
            diversity=self.diversity,
            popularity=self.popularity,
            normalise=preset_normalise(self.hand_set, self.normalise),
            category=self.category,
            min_price=self.min_price,
            max_price=self.max_price,
            in_stock=self.in_stock,
            tuned=self.tuned,
        )
