"""The relevance formula over arrays: visual, trend-matched popularity, category, distance."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from engine.errors import ConfigError
from engine.schema import CATEGORY, POPULARITY, STORE_LOCATION
from engine.vectorstore.formula import (
    SCORE,
    Abs,
    Const,
    Exp,
    Expr,
    GeoMetres,
    InSet,
    Mult,
    Pow,
    Sum,
    Var,
)

FloatArray = NDArray[np.float64]


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


def popularity_term(norm_popularity: FloatArray, trendiness: float, gamma: float) -> FloatArray:
    """1 − |NormPop − t|^γ: 1 where popularity matches the user's trendiness."""
    return 1.0 - np.abs(norm_popularity - trendiness) ** gamma


def distance_term(distance_km: FloatArray, scale_km: float) -> FloatArray:
    """exp(−d / scale); 0 where the distance is unknown (NaN)."""
    return np.where(np.isnan(distance_km), 0.0, np.exp(-np.nan_to_num(distance_km) / scale_km))


def relevance(
    visual: FloatArray,
    norm_popularity: FloatArray,
    trendiness: float,
    category: FloatArray,
    weights: Weights,
    distance_km: FloatArray | None = None,
) -> FloatArray:
    """w_v·VisSim + w_p·(1 − |NormPop − t|^γ) + w_c·CatSim [+ w_d·exp(−d/scale)]."""
    score = (
        weights.visual * visual
        + weights.popularity * popularity_term(norm_popularity, trendiness, weights.gamma)
        + weights.category * category
    )
    if weights.distance and distance_km is not None:
        score = score + weights.distance * distance_term(distance_km, weights.distance_scale_km)
    return score


def relevance_formula(
    weights: Weights,
    trendiness: float,
    span: tuple[float, float],
    category_values: dict[float, tuple[str, ...]],
    origin: tuple[float, float] | None = None,
    field: str = POPULARITY,
) -> Expr:
    """The same relevance as an expression Qdrant evaluates over its candidates.

    category_values maps each CatSim value to the categories that have it against the
    query's category; origin (lat, lon) enables the distance term; field is the payload
    field holding the popularity (all-time or trending).
    """
    low, high = span
    norm: Expr = (
        Const(0.0)
        if high <= low
        else Mult((Sum((Var(field), Const(-low))), Const(1.0 / (high - low))))
    )
    gap = Pow(Abs(Sum((norm, Const(-trendiness)))), weights.gamma)
    terms: list[Expr] = [
        Mult((Const(weights.visual), Var(SCORE))),
        Mult((Const(weights.popularity), Sum((Const(1.0), Mult((Const(-1.0), gap)))))),
    ]
    terms += [
        Mult((Const(weights.category * value), InSet(CATEGORY, categories)))
        for value, categories in sorted(category_values.items())
        if value and weights.category
    ]
    if weights.distance and origin is not None:
        metres = GeoMetres(origin[0], origin[1], STORE_LOCATION)
        decay = Exp(Mult((Const(-1.0 / (1000.0 * weights.distance_scale_km)), metres)))
        terms.append(Mult((Const(weights.distance), decay)))
    return Sum(tuple(terms))
