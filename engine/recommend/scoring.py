"""The relevance formula: weights and presets, and its terms (visual, trend-matched popularity,
category, distance) as one expression tree."""

from __future__ import annotations

from dataclasses import dataclass, replace

from engine.errors import ConfigError
from engine.helpers import choice
from engine.popularity.normpop import DEFAULT_NORMALISE, Stored
from engine.vectorstore.formula import (
    SCORE,
    Abs,
    Const,
    Default,
    Exp,
    Expr,
    GeoMetres,
    InSet,
    Missing,
    Mult,
    Pow,
    Sum,
    Var,
    clipped,
)
from engine.vocabulary.schema import CATEGORY, STORE_LOCATION, popularity_field, rank_field


@dataclass(frozen=True)
class Weights:
    """w_v, w_p, w_c, γ and the optional distance term w_d·exp(−d / scale)."""

    visual: float = 0.6
    popularity: float = 0.2
    category: float = 0.2
    gamma: float = 2.0
    distance: float = 0.0
    distance_scale_km: float = 5.0

    @property
    def visual_only(self) -> bool:
        """Whether the relevance is the visual similarity alone (w_v = 1, every other 0)."""
        return self.visual == 1.0 and not (self.popularity or self.category or self.distance)

    def validate(self) -> Weights:
        """Raise ConfigError naming the first value out of range."""
        for name in ("visual", "popularity", "category", "distance"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"weight {name} must be in [0, 1], got {value}")
        if not self.gamma > 0:
            raise ConfigError(f"gamma must be positive, got {self.gamma}")
        if not self.distance_scale_km > 0:
            raise ConfigError(f"distance scale must be positive, got {self.distance_scale_km}")
        return self


PAPER = Weights(visual=0.7, popularity=0.3, category=0.0, gamma=2.0)
PRESETS = {"default": Weights(), "paper": PAPER}
PRESET_NORMALISE: dict[str, Stored] = {"default": DEFAULT_NORMALISE, "paper": "minmax"}


def preset_normalise(preset: str, normalise: str | None = None) -> Stored:
    """How NormPop is made: as asked, else the preset's (the paper's: min–max)."""
    how = normalise or PRESET_NORMALISE.get(preset, DEFAULT_NORMALISE)
    return choice(Stored, how, "normalise")  # type: ignore[return-value]


def preset_weights(preset: str, **overrides: float | None) -> Weights:
    """A preset's weights with the given fields replaced (None leaves a field as it is);
    ConfigError for an unknown preset, or weights that are all 0 (nothing would rank)."""
    if preset not in PRESETS:
        raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    weights = replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
    if not (weights.visual or weights.popularity or weights.category or weights.distance):
        raise ConfigError(
            "every weight is 0 (visual, popularity, category and distance), so every item "
            "would score 0; give at least one a positive value, e.g. --w-visual 0.6"
        )
    return weights


@dataclass(frozen=True)
class Terms:
    """The relevance's terms as expressions over a candidate's score and payload: one tree
    that Qdrant evaluates (the rerank inside Qdrant) and numpy evaluates (the client rerank,
    engine.vectorstore.formula.evaluate), so both rank alike at every edge.

    NormPop is the popularity's stored percentile rank, or (min–max) the popularity scaled
    onto [0, 1] over the catalog's range; clipped to [0, 1] either way. The distance term
    is 0 where the item's shop has no location (its default, the origin, only keeps the
    engines from failing on a missing point).
    """

    visual: Expr  # VisSim: the prefetch's cosine
    norm_popularity: Expr
    popularity: Expr  # 1 − |NormPop − t|^γ
    category: Expr  # CatSim against the query's category
    distance: Expr | None  # exp(−d / scale), with an origin
    field: str  # the payload field of the popularity in force
    rank_field: str  # the payload field of its percentile rank
    defaults: dict[str, Default]

    def relevance(self, weights: Weights) -> Expr:
        """w_v·VisSim + w_p·(1 − |NormPop − t|^γ) + w_c·CatSim [+ w_d·exp(−d/scale)], without
        the terms whose weight is 0."""
        weighted = (
            (weights.visual, self.visual),
            (weights.popularity, self.popularity),
            (weights.category, self.category),
            (weights.distance, self.distance),
        )
        return Sum(
            tuple(Mult((Const(w), term)) for w, term in weighted if w and term is not None)
            or (Const(0.0),)
        )


def terms(
    weights: Weights,
    trendiness: float,
    span: tuple[float, float],
    category_values: dict[float, tuple[str, ...]],
    origin: tuple[float, float] | None = None,
    mode: str = "all-time",
    normalise: Stored = DEFAULT_NORMALISE,
) -> Terms:
    """The terms for one query: trendiness t, the catalog-wide popularity range `span`
    (min–max only), category_values mapping each CatSim value to the categories that have
    it against the query's category, the origin (lat, lon) of distances, the popularity
    mode (all-time or trending: which payload fields, 0 where an item has none) and how
    NormPop is made of it."""
    field, ranked = popularity_field(mode), rank_field(mode)
    low, high = span
    norm: Expr
    if normalise == "rank":
        norm = clipped(Var(ranked))
    elif high <= low:
        norm = Const(0.0)
    else:
        norm = clipped(Mult((Sum((Var(field), Const(-low))), Const(1.0 / (high - low)))))
    gap = Pow(Abs(Sum((norm, Const(-trendiness)))), weights.gamma)
    category: Expr = Sum(
        tuple(
            Mult((Const(value), InSet(CATEGORY, categories)))
            for value, categories in sorted(category_values.items())
            if value
        )
        or (Const(0.0),)
    )
    defaults: dict[str, Default] = {field: 0.0, ranked: 0.0}
    distance: Expr | None = None
    if origin is not None:
        lat, lon = origin
        known = Sum((Const(1.0), Mult((Const(-1.0), Missing(STORE_LOCATION)))))
        metres = GeoMetres(lat, lon, STORE_LOCATION)
        decay = Exp(Mult((Const(-1.0 / (1000.0 * weights.distance_scale_km)), metres)))
        distance = Mult((known, decay))
        defaults[STORE_LOCATION] = {"lat": lat, "lon": lon}
    return Terms(
        visual=Var(SCORE),
        norm_popularity=norm,
        popularity=Sum((Const(1.0), Mult((Const(-1.0), gap)))),
        category=category,
        distance=distance,
        field=field,
        rank_field=ranked,
        defaults=defaults,
    )
