"""The engine's filters, queries and formulas in Qdrant Edge's terms (engine/vectorstore/edge/)."""

from __future__ import annotations

from typing import Any

import qdrant_edge as qe

from engine.vectorstore.base import OVERSAMPLING, Filter, Query, search_ef
from engine.vectorstore.formula import (
    Abs,
    Const,
    Exp,
    Expr,
    GeoMetres,
    InSet,
    Missing,
    Mult,
    Pow,
    Sum,
    Var,
)


def translate(flt: Filter | None) -> qe.Filter | None:
    if flt is None:
        return None
    must: list[Any] = [qe.FieldCondition(k, match=qe.MatchValue(v)) for k, v in flt.equals.items()]
    must += [qe.FieldCondition(k, match=qe.MatchAny(sorted(vs))) for k, vs in flt.within.items()]
    if flt.has_vector is not None:
        must.append(qe.HasVectorCondition(flt.has_vector))
    if flt.ids is not None:
        must.append(qe.HasIdCondition(set(flt.ids)))
    if flt.empty is not None:
        must.append(qe.IsEmptyCondition(flt.empty))
    if flt.near is not None:
        centre = qe.GeoPoint(lon=flt.near.lon, lat=flt.near.lat)
        radius = qe.GeoRadius(center=centre, radius=flt.near.km * 1000.0)
        must.append(qe.FieldCondition(flt.near.field, geo_radius=radius))
    must += [
        qe.FieldCondition(k, range=qe.RangeFloat(gte=r.gte, gt=r.gt, lte=r.lte, lt=r.lt))
        for k, r in flt.ranges.items()
    ]
    must_not: list[Any] = [
        qe.FieldCondition(k, match=qe.MatchAny(sorted(values)))
        for k, values in flt.exclude.items()
        if values
    ]
    if not must and not must_not:
        return None
    return qe.Filter(must=must or None, must_not=must_not or None)


def search_params(limit: int) -> qe.SearchParams:
    rescore = qe.QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING)
    return qe.SearchParams(hnsw_ef=search_ef(limit), quantization=rescore)


def nearest(q: Query) -> qe.Query | qe.Mmr:
    """The nearest points (to the best of several: recommend, best_score), or Qdrant's MMR
    over the nearest `mmr.candidates` (Edge's lambda_ weighs relevance: 1 − diversity)."""
    if q.vector.ndim == 2:
        best = qe.RecommendQuery(positives=q.vector.tolist(), negatives=[])
        return qe.Query.RecommendBestScore(best, using=q.using)
    if q.mmr is None:
        return qe.Query.Nearest(q.vector.tolist(), using=q.using)
    return qe.Mmr(q.vector.tolist(), 1.0 - q.mmr.diversity, q.mmr.candidates, using=q.using)


def expression(e: Expr) -> qe.Expression:
    match e:
        case Const(value):
            return qe.Expression.Constant(value)
        case Var(name):
            return qe.Expression.Variable(name)
        case Sum(terms):
            return qe.Expression.Sum([expression(t) for t in terms])
        case Mult(factors):
            return qe.Expression.Mult([expression(f) for f in factors])
        case Pow(base, exponent):
            return qe.Expression.Pow(expression(base), qe.Expression.Constant(exponent))
        case Abs(inner):
            return qe.Expression.Abs(expression(inner))
        case Exp(inner):
            return qe.Expression.Exp(expression(inner))
        case InSet(field, values):
            condition = qe.FieldCondition(field, match=qe.MatchAny(list(values)))
            return qe.Expression.Condition(condition)
        case Missing(field):
            return qe.Expression.Condition(qe.IsEmptyCondition(field))
        case GeoMetres(lat, lon, field):
            return qe.Expression.GeoDistance(qe.GeoPoint(lon=lon, lat=lat), field)
    raise TypeError(f"not a formula node: {e!r}")
