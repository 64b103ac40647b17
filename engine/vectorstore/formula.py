"""A small expression tree for scoring formulas that run inside Qdrant (pure; both back-ends)."""

from __future__ import annotations

from dataclasses import dataclass

SCORE = "$score"


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
class GeoMetres:
    """Metres from a point to a geo field (the engines compute distances in metres)."""

    lat: float
    lon: float
    field: str


Expr = Const | Var | Sum | Mult | Pow | Abs | Exp | InSet | GeoMetres
