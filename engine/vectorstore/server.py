"""Qdrant server back-end through qdrant-client (a server, a cluster, or `:memory:` in tests)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import ValidationError
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from engine.errors import StoreError, one_line
from engine.vectorstore.base import (
    COLLECTION,
    EF_CONSTRUCT,
    FULL_SCAN_KB,
    HNSW_M,
    OVERSAMPLING,
    Filter,
    FormulaQuery,
    Hit,
    Layout,
    Payload,
    PointBatch,
    Query,
    Record,
    VectorStore,
    make_hit,
    make_record,
    search_ef,
)
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


def _translate(flt: Filter | None) -> models.Filter | None:
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


T = TypeVar("T")
UPLOAD_BATCH = 256  # points per request
UPLOAD_PARALLEL = 2  # concurrent upload workers against a remote server
UPLOAD_RETRIES = 3  # per request, with the client's backoff


def _index_params(kind: IndexKind, hnsw: bool) -> models.PayloadSchemaParams:
    match kind:
        case "keyword":
            return models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, enable_hnsw=hnsw)
        case "bool":
            return models.BoolIndexParams(type=models.BoolIndexType.BOOL, enable_hnsw=hnsw)
        case "float":
            return models.FloatIndexParams(type=models.FloatIndexType.FLOAT, enable_hnsw=hnsw)
        case "geo":
            return models.GeoIndexParams(type=models.GeoIndexType.GEO, enable_hnsw=hnsw)


def _params(limit: int) -> models.SearchParams:
    rescore = models.QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING)
    return models.SearchParams(hnsw_ef=search_ef(limit), quantization=rescore)


def _expression(e: Expr) -> Any:
    match e:
        case Const(value):
            return value
        case Var(name):
            return name
        case Sum(terms):
            return models.SumExpression(sum=[_expression(t) for t in terms])
        case Mult(factors):
            return models.MultExpression(mult=[_expression(f) for f in factors])
        case Pow(base, exponent):
            return models.PowExpression(
                pow=models.PowParams(base=_expression(base), exponent=exponent)
            )
        case Abs(inner):
            return models.AbsExpression(abs=_expression(inner))
        case Exp(inner):
            return models.ExpExpression(exp=_expression(inner))
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


@contextmanager
def _guard(location: str) -> Iterator[None]:
    """Turn transport and server errors into one-line StoreErrors."""
    try:
        yield
    except UnexpectedResponse as exc:
        detail = one_line(exc.content.decode(errors="replace")) if exc.content else ""
        raise StoreError(
            f"the Qdrant server at {location} answered {exc.status_code}: {detail}"
        ) from None
    except (json.JSONDecodeError, ValidationError) as exc:
        raise StoreError(
            f"the server for {location} did not answer as Qdrant does ({one_line(exc)}); "
            "check that the URL points at a Qdrant server"
        ) from None
    except (ResponseHandlingException, OSError, TimeoutError) as exc:
        reason = one_line(getattr(exc, "source", None) or exc)
        raise StoreError(
            f"cannot reach the Qdrant server for {location} ({reason}); "
            "check the URL and that the server runs"
        ) from None


def guarded(method: Callable[..., T]) -> Callable[..., T]:
    """Run a store method under _guard."""

    @functools.wraps(method)
    def wrapper(self: ServerStore, *args: Any, **kwargs: Any) -> T:
        with _guard(self.location):
            return method(self, *args, **kwargs)

    return wrapper


def _hits(responses: list[models.QueryResponse], vectors: Sequence[str | None]) -> list[list[Hit]]:
    return [
        [make_hit(p.id, p.score, p.payload, p.vector, name) for p in response.points]
        for response, name in zip(responses, vectors, strict=True)
    ]


def _nearest(q: Query) -> Any:
    """The nearest points, or Qdrant's MMR (server 1.15 or later) over the nearest
    `mmr.candidates`."""
    if q.mmr is None:
        return q.vector.tolist()
    mmr = models.Mmr(diversity=q.mmr.diversity, candidates_limit=q.mmr.candidates)
    return models.NearestQuery(nearest=q.vector.tolist(), mmr=mmr)


class ServerStore(VectorStore):
    """A collection on a Qdrant server (or any QdrantClient, e.g. `QdrantClient(":memory:")`)."""

    def __init__(
        self,
        client: QdrantClient,
        collection: str = COLLECTION,
        layout: Layout = Layout(),
        shards: int | None = None,
        replicas: int | None = None,
    ) -> None:
        self.client = client
        self.collection = collection
        self.layout, self.shards, self.replicas = layout, shards, replicas
        self.location = f"{collection} on {client.init_options.get('url') or 'a local client'}"
        with _guard(self.location):
            self._exists = client.collection_exists(collection)

    @classmethod
    def connect(
        cls,
        url: str,
        collection: str = COLLECTION,
        timeout: int = 30,
        shards: int | None = None,
        replicas: int | None = None,
        api_key: str | None = None,
    ) -> ServerStore:
        """Connect to a Qdrant server (or cluster) by URL; `api_key` for a secured one (a
        server with an API key, Qdrant Cloud)."""
        client = QdrantClient(
            url=url, api_key=api_key or None, timeout=timeout, check_compatibility=False
        )
        return cls(client, collection, Layout(), shards, replicas)

    def _cluster_peers(self) -> int:
        """Peers of the cluster the server belongs to (1 when it runs alone)."""
        try:
            status = self.client.cluster_status()
        except (NotImplementedError, AttributeError, ValueError):
            return 1  # the local client has no cluster
        peers = getattr(status, "peers", None)
        return len(peers) if peers else 1

    @guarded
    def vector_dims(self) -> dict[str, int]:
        if not self._exists:
            return {}
        vectors = self.client.get_collection(self.collection).config.params.vectors
        if not isinstance(vectors, dict):
            return {}
        return {name: params.size for name, params in vectors.items()}

    @guarded
    def _add_vector(self, name: str, dim: int) -> None:
        params = models.VectorParams(
            size=dim, distance=models.Distance.COSINE, on_disk=self.layout.originals_on_disk
        )
        if not self._exists:
            peers = self._cluster_peers()
            quantization = models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(
                    type=models.ScalarType.INT8, quantile=0.99, always_ram=True
                )
            )
            self.client.create_collection(
                self.collection,
                vectors_config={name: params},
                hnsw_config=models.HnswConfigDiff(
                    m=HNSW_M, ef_construct=EF_CONSTRUCT, full_scan_threshold=FULL_SCAN_KB
                ),
                quantization_config=quantization if self.layout.quantized else None,
                shard_number=self.shards or (peers if peers > 1 else None),
                replication_factor=self.replicas or (2 if peers > 1 else None),
            )
            self._create_indexes()
            self._exists = True
        else:
            config = models.DenseVectorNameConfig(
                dense=models.DenseVectorConfig(size=dim, distance=models.Distance.COSINE)
            )
            self.client.create_vector_name(self.collection, name, config)

    @guarded
    def _indexed(self) -> set[str]:
        return set(self.client.get_collection(self.collection).payload_schema)

    @guarded
    def _index(self, key: str, kind: IndexKind, linked: bool) -> None:
        params = _index_params(kind, linked)
        self.client.create_payload_index(self.collection, key, params)

    @guarded
    def ids_matching(self, flt: Filter, limit: int) -> set[str]:
        if not self._exists:
            return set()
        records, _ = self.client.scroll(
            self.collection,
            scroll_filter=_translate(flt),
            limit=limit,
            with_payload=False,
            with_vectors=False,
        )
        return {str(r.id) for r in records}

    @guarded
    def upsert(self, batch: PointBatch) -> None:
        points = [
            models.PointStruct(id=pid, vector={batch.vector_name: vector.tolist()}, payload=p)
            for pid, vector, p in zip(batch.ids, batch.vectors, batch.payloads, strict=True)
        ]
        remote = bool(self.client.init_options.get("url"))
        self.client.upload_points(
            self.collection,
            points,
            batch_size=UPLOAD_BATCH,
            parallel=UPLOAD_PARALLEL if remote and len(points) > UPLOAD_BATCH else 1,
            max_retries=UPLOAD_RETRIES,
            wait=True,
        )
        self._changed(batch.ids)

    @guarded
    def add_vectors(self, batch: PointBatch) -> None:
        operations: list[Any] = [
            models.UpdateVectorsOperation(
                update_vectors=models.UpdateVectors(
                    points=[
                        models.PointVectors(id=pid, vector={batch.vector_name: vector.tolist()})
                        for pid, vector in zip(batch.ids, batch.vectors, strict=True)
                    ]
                )
            )
        ]
        operations += [
            models.SetPayloadOperation(set_payload=models.SetPayload(payload=p, points=[pid]))
            for pid, p in zip(batch.ids, batch.payloads, strict=True)
        ]
        self.client.batch_update_points(self.collection, operations, wait=True)
        self._changed(batch.ids)

    def scroll(
        self,
        fields: Sequence[str] | None,
        flt: Filter | None = None,
        page: int = 1000,
        vector: str | None = None,
    ) -> Iterator[Record]:
        if not self._exists:
            return
        with _guard(self.location):
            yield from self._pages(fields, flt, page, vector)

    def _pages(
        self, fields: Sequence[str] | None, flt: Filter | None, page: int, vector: str | None
    ) -> Iterator[Record]:
        offset: Any = None
        while True:
            records, offset = self.client.scroll(
                self.collection,
                scroll_filter=_translate(flt),
                limit=page,
                offset=offset,
                with_payload=True if fields is None else list(fields),
                with_vectors=[vector] if vector else False,
            )
            yield from (make_record(r.id, r.payload, r.vector, vector) for r in records)
            if offset is None:
                return

    @guarded
    def search(self, queries: Sequence[Query], fields: Sequence[str]) -> list[list[Hit]]:
        if not queries:
            return []
        requests = [
            models.QueryRequest(
                query=_nearest(q),
                using=q.using,
                filter=_translate(q.filter),
                limit=q.limit,
                with_payload=list(fields) or False,
                with_vector=[q.using] if q.with_vector else False,
                params=_params(q.limit if q.mmr is None else q.mmr.candidates),
            )
            for q in queries
        ]
        responses = self.client.query_batch_points(self.collection, requests)
        return _hits(responses, [q.using if q.with_vector else None for q in queries])

    @guarded
    def formula_search(
        self, queries: Sequence[FormulaQuery], fields: Sequence[str]
    ) -> list[list[Hit]]:
        if not queries:
            return []
        requests = [
            models.QueryRequest(
                prefetch=models.Prefetch(
                    query=fq.prefetch.vector.tolist(),
                    using=fq.prefetch.using,
                    filter=_translate(fq.prefetch.filter),
                    limit=fq.prefetch.limit,
                    params=_params(fq.prefetch.limit),
                ),
                query=models.FormulaQuery(formula=_expression(fq.formula), defaults=fq.defaults),
                limit=fq.limit,
                with_payload=list(fields) or False,
                with_vector=[fq.prefetch.using] if fq.prefetch.with_vector else False,
            )
            for fq in queries
        ]
        responses = self.client.query_batch_points(self.collection, requests)
        named = [fq.prefetch.using if fq.prefetch.with_vector else None for fq in queries]
        return _hits(responses, named)

    @guarded
    def value_range(self, key: str) -> tuple[float, float] | None:
        if not self._exists:
            return None
        ends = []
        for direction in (models.Direction.ASC, models.Direction.DESC):
            records, _ = self.client.scroll(
                self.collection,
                limit=1,
                with_payload=[key],
                order_by=models.OrderBy(key=key, direction=direction),
            )
            if not records or (records[0].payload or {}).get(key) is None:
                return None
            ends.append(float(records[0].payload[key]))  # type: ignore[index]
        return ends[0], ends[1]

    @guarded
    def set_payload(self, ids: Sequence[str], payload: Payload) -> None:
        if ids:
            self.client.set_payload(self.collection, payload, points=list(ids), wait=True)
            self._changed(ids)

    @guarded
    def delete(self, ids: Sequence[str]) -> None:
        if ids and self._exists:
            selector = models.PointIdsList(points=list(ids))
            self.client.delete(self.collection, points_selector=selector, wait=True)
            self._changed(ids)

    @guarded
    def count(self, flt: Filter | None = None) -> int:
        if not self._exists:
            return 0
        result = self.client.count(self.collection, count_filter=_translate(flt), exact=True)
        return result.count

    @guarded
    def facet(self, key: str, flt: Filter | None = None) -> dict[str, int]:
        if not self._exists:
            return {}
        response = self.client.facet(
            self.collection, key, facet_filter=_translate(flt), limit=1000, exact=True
        )
        return {str(hit.value): hit.count for hit in response.hits}

    @guarded
    def retrieve(self, ids: Sequence[str], vector: str | None = None) -> list[Record]:
        if not self._exists:
            return []
        records = self.client.retrieve(
            self.collection,
            list(ids),
            with_payload=True,
            with_vectors=[vector] if vector else False,
        )
        return [make_record(r.id, r.payload, r.vector, vector) for r in records]

    def close(self) -> None:
        self.client.close()
