"""Scoring formulas as one expression tree: sent to Qdrant (both back-ends translate it) and
evaluated here over the candidates' columns with numpy, with Qdrant's rules (pure).

qdrant-client's own evaluation of formula expressions (`qdrant_client/hybrid/formula.py`) is
the model: a variable or a geo point a payload lacks takes the formula's default, and a
formula that reads one with no default fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from engine.vocabulary.geo import Location, distances_km

SCORE = "$score"
FloatArray = NDArray[np.float64]
Default = float | dict[str, float]  # a number, or a geo point {"lat": .., "lon": ..}


@dataclass(frozen=True)
class Const:
    value: float


@dataclass(frozen=True)
class Var:
    """A payload number, or "$score" (the prefetch's similarity)."""

    name: str


@dataclass(frozen=True)
class Sum:
    terms: tuple[Expr, ...]


@dataclass(frozen=True)
class Mult:
    factors: tuple[Expr, ...]


@dataclass(frozen=True)
class Pow:
    base: Expr
    exponent: float


@dataclass(frozen=True)
class Abs:
    expr: Expr


@dataclass(frozen=True)
class Exp:
    expr: Expr


@dataclass(frozen=True)
class InSet:
    """1 when a keyword field's value is one of `values`, else 0."""

    field: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Missing:
    """1 when a point has no value for the field (Qdrant's is-empty condition), else 0."""

    field: str


@dataclass(frozen=True)
class GeoMetres:
    """Metres from a point to a geo field (the engines compute distances in metres)."""

    lat: float
    lon: float
    field: str


Expr = Const | Var | Sum | Mult | Pow | Abs | Exp | InSet | Missing | GeoMetres


def clipped(expr: Expr) -> Expr:
    """expr clipped to [0, 1], as ½·(|x| − |x − 1| + 1): sums and absolute values only, which
    every Qdrant version that has formulas evaluates."""
    spread = Sum((Abs(expr), Mult((Const(-1.0), Abs(Sum((expr, Const(-1.0))))))))
    return Mult((Const(0.5), Sum((spread, Const(1.0)))))


@dataclass(frozen=True)
class Frame:
    """What a formula reads of n points, column by column: the prefetch's scores, payload
    numbers (NaN where a point has none), keywords (None where none) and geo points (NaN)."""

    scores: FloatArray
    numbers: Mapping[str, FloatArray] = field(default_factory=dict)
    keywords: Mapping[str, NDArray[np.object_]] = field(default_factory=dict)
    points: Mapping[str, tuple[FloatArray, FloatArray]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.scores)

    def absent(self, name: str) -> NDArray[np.bool_]:
        """Where the points have no value for a field (every point, for a field not read)."""
        if name in self.numbers:
            return np.isnan(self.numbers[name])
        if name in self.keywords:
            return np.array([v is None for v in self.keywords[name]], dtype=bool)
        if name in self.points:
            return np.isnan(self.points[name][0])
        return np.ones(len(self), dtype=bool)


def evaluate(
    expr: Expr,
    frame: Frame,
    defaults: Mapping[str, Default],
    memo: dict[int, FloatArray | float] | None = None,
) -> FloatArray:
    """The formula's value at every point of the frame, as Qdrant computes it; ValueError
    when it reads a value a point lacks and the defaults do not give. `memo` keeps the value
    of every node by identity, so that trees sharing subtrees (the relevance and its terms)
    evaluate each once over the same frame."""
    value = _value(expr, frame, defaults, {} if memo is None else memo)
    if isinstance(value, float):
        return np.full(len(frame), value)
    return value


def _value(
    expr: Expr, frame: Frame, defaults: Mapping[str, Default], memo: dict[int, FloatArray | float]
) -> FloatArray | float:
    """A node's value: an array over the frame's points, or one number for all of them."""
    key = id(expr)
    if key not in memo:
        memo[key] = _computed(expr, frame, defaults, memo)
    return memo[key]


def _computed(
    expr: Expr, frame: Frame, defaults: Mapping[str, Default], memo: dict[int, FloatArray | float]
) -> FloatArray | float:
    n = len(frame)
    match expr:
        case Const(value):
            return float(value)
        case Var(name) if name == SCORE:
            return np.asarray(frame.scores, dtype=np.float64)
        case Var(name):
            values = frame.numbers.get(name, np.full(n, np.nan))
            return _filled(values, name, defaults.get(name))
        case Sum(terms):
            total: FloatArray | float = 0.0
            for term in terms:
                total = total + _value(term, frame, defaults, memo)
            return total
        case Mult(factors):
            product: FloatArray | float = 1.0
            for factor in factors:
                product = product * _value(factor, frame, defaults, memo)
            return product
        case Pow(base, exponent):
            return np.power(_value(base, frame, defaults, memo), exponent)
        case Abs(inner):
            return np.abs(_value(inner, frame, defaults, memo))
        case Exp(inner):
            return np.exp(_value(inner, frame, defaults, memo))
        case InSet(name, values):
            column = frame.keywords.get(name, np.full(n, None, dtype=object))
            return np.isin(column, list(values)).astype(np.float64)
        case Missing(name):
            return frame.absent(name).astype(np.float64)
        case GeoMetres(lat, lon, name):
            lats, lons = frame.points.get(name, (np.full(n, np.nan), np.full(n, np.nan)))
            default = defaults.get(name)
            if isinstance(default, dict):
                lats = np.where(np.isnan(lats), default["lat"], lats)
                lons = np.where(np.isnan(lons), default["lon"], lons)
            metres = 1000.0 * distances_km(Location(lat, lon), lats, lons)
            return _filled(metres, name, None)
    raise TypeError(f"not a formula node: {expr!r}")


def _filled(values: FloatArray, name: str, default: Default | None) -> FloatArray:
    """values with a number default where they are NaN; ValueError when some stay NaN."""
    values = np.asarray(values, dtype=np.float64)
    if isinstance(default, int | float):
        values = np.where(np.isnan(values), float(default), values)
    if np.isnan(values).any():
        raise ValueError(f"no value for {name} in a payload nor in the formula's defaults")
    return values
