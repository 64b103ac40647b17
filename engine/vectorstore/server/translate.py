"""The engine's filters, queries, formulas and hits in qdrant-client's terms
(engine/vectorstore/server/)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qdrant_client import models

from engine.vectorstore.base import OVERSAMPLING, Filter, Hit, Query, make_hit, search_ef
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
from engine.vocabulary.schema import IndexKind


def translate(flt: Filter | None) -> models.Filter | None:
    if flt is None:
        return None
    must: list[Any] = [
        models.FieldCondition(key=k, match=models.MatchValue(value=v))
        for k, v in flt.equals.items()
    ]
    must += [
        models.FieldCondition(key=k, match=models.MatchAny(any=sorted(vs)))
        for k, vs in flt.within.items()
    ]
    if flt.has_vector is not None:
        must.append(models.HasVectorCondition(has_vector=flt.has_vector))
    if flt.ids is not None:
        must.append(models.HasIdCondition(has_id=sorted(flt.ids)))
    if flt.empty is not None:
        must.append(models.IsEmptyCondition(is_empty=models.PayloadField(key=flt.empty)))
    if flt.near is not None:
        centre = models.GeoPoint(lon=flt.near.lon, lat=flt.near.lat)
        radius = models.GeoRadius(center=centre, radius=flt.near.km * 1000.0)
        must.append(models.FieldCondition(key=flt.near.field, geo_radius=radius))
    must += [
        models.FieldCondition(key=k, range=models.Range(gt=r.gt, gte=r.gte, lt=r.lt, lte=r.lte))
        for k, r in flt.ranges.items()
    ]
    must_not: list[Any] = [
        models.FieldCondition(key=k, match=models.MatchAny(any=sorted(values)))
        for k, values in flt.exclude.items()
        if values
    ]
    if not must and not must_not:
        return None
    return models.Filter(must=must or None, must_not=must_not or None)


def index_params(kind: IndexKind, hnsw: bool) -> models.PayloadSchemaParams:
    match kind:
        case "keyword":
            return models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, enable_hnsw=hnsw)
        case "bool":
            return models.BoolIndexParams(type=models.BoolIndexType.BOOL, enable_hnsw=hnsw)
        case "float":
            return models.FloatIndexParams(type=models.FloatIndexType.FLOAT, enable_hnsw=hnsw)
        case "geo":
            return models.GeoIndexParams(type=models.GeoIndexType.GEO, enable_hnsw=hnsw)


def search_params(limit: int) -> models.SearchParams:
    rescore = models.QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING)
    return models.SearchParams(hnsw_ef=search_ef(limit), quantization=rescore)


def expression(e: Expr) -> Any:
    match e:
        case Const(value):
            return value
        case Var(name):
            return name
        case Sum(terms):
            return models.SumExpression(sum=[expression(t) for t in terms])
        case Mult(factors):
            return models.MultExpression(mult=[expression(f) for f in factors])
        case Pow(base, exponent):
            return models.PowExpression(
                pow=models.PowParams(base=expression(base), exponent=exponent)
            )
        case Abs(inner):
            return models.AbsExpression(abs=expression(inner))
        case Exp(inner):
            return models.ExpExpression(exp=expression(inner))
        case InSet(field, values):
            return models.FieldCondition(key=field, match=models.MatchAny(any=list(values)))
        case Missing(field):
            return models.IsEmptyCondition(is_empty=models.PayloadField(key=field))
        case GeoMetres(lat, lon, field):
            origin = models.GeoPoint(lon=lon, lat=lat)
            return models.GeoDistance(
                geo_distance=models.GeoDistanceParams(origin=origin, to=field)
            )
    raise TypeError(f"not a formula node: {e!r}")


def hits(responses: list[models.QueryResponse], vectors: Sequence[str | None]) -> list[list[Hit]]:
    return [
        [make_hit(p.id, p.score, p.payload, p.vector, name) for p in response.points]
        for response, name in zip(responses, vectors, strict=True)
    ]


def nearest(q: Query) -> Any:
    """The nearest points, or Qdrant's MMR (server 1.15 or later) over the nearest
    `mmr.candidates`; to the best of several vectors, recommend with best_score."""
    if q.vector.ndim == 2:
        best = models.RecommendInput(
            positive=q.vector.tolist(), strategy=models.RecommendStrategy.BEST_SCORE
        )
        return models.RecommendQuery(recommend=best)
    if q.mmr is None:
        return q.vector.tolist()
    mmr = models.Mmr(diversity=q.mmr.diversity, candidates_limit=q.mmr.candidates)
    return models.NearestQuery(nearest=q.vector.tolist(), mmr=mmr)
