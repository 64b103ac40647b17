"""Qdrant Edge back-end: Qdrant's engine in-process, one shard on local disk."""

from __future__ import annotations

import fcntl
import functools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Final, TypeVar

import qdrant_edge as qe

from engine.errors import StoreError, StoreLockedError, one_line
from engine.vectorstore.base import (
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
    Scored,
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

CONFIG_FILE: Final = "edge_config.json"
LOCK_FILE: Final = ".lock"  # flock-ed by the EdgeStore that has the shard open
INDEX_PARAMS: Final = {
    "keyword": qe.KeywordIndexParams,
    "bool": qe.BoolIndexParams,
    "float": qe.FloatIndexParams,
    "geo": qe.GeoIndexParams,
}
HNSW: Final = qe.HnswIndexConfig(
    m=HNSW_M, ef_construct=EF_CONSTRUCT, full_scan_threshold=FULL_SCAN_KB
)
# int8 copies of the vectors drive the HNSW search (4x less to read), originals rescore the top
INT8: Final = qe.ScalarQuantizationConfig(
    qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Cached
)


def _translate(flt: Filter | None) -> qe.Filter | None:
    if flt is None:
        return None
    must: list[Any] = [qe.FieldCondition(k, match=qe.MatchValue(v)) for k, v in flt.equals.items()]
    must += [qe.FieldCondition(k, match=qe.MatchAny(sorted(vs))) for k, vs in flt.within.items()]
    if flt.has_vector is not None:
        must.append(qe.HasVectorCondition(flt.has_vector))
    if flt.ids is not None:
        must.append(qe.HasIdCondition(set(flt.ids)))
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


def _params(limit: int) -> qe.SearchParams:
    rescore = qe.QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING)
    return qe.SearchParams(hnsw_ef=search_ef(limit), quantization=rescore)


def _nearest(q: Query) -> qe.Query | qe.Mmr:
    """The nearest points, or Qdrant's MMR over the nearest `mmr.candidates` (Edge's
    lambda_ weighs relevance: 1 − diversity)."""
    if q.mmr is None:
        return qe.Query.Nearest(q.vector.tolist(), using=q.using)
    return qe.Mmr(q.vector.tolist(), 1.0 - q.mmr.diversity, q.mmr.candidates, using=q.using)


def _expression(e: Expr) -> qe.Expression:
    match e:
        case Const(value):
            return qe.Expression.Constant(value)
        case Var(name):
            return qe.Expression.Variable(name)
        case Sum(terms):
            return qe.Expression.Sum([_expression(t) for t in terms])
        case Mult(factors):
            return qe.Expression.Mult([_expression(f) for f in factors])
        case Pow(base, exponent):
            return qe.Expression.Pow(_expression(base), qe.Expression.Constant(exponent))
        case Abs(inner):
            return qe.Expression.Abs(_expression(inner))
        case Exp(inner):
            return qe.Expression.Exp(_expression(inner))
        case InSet(field, values):
            condition = qe.FieldCondition(field, match=qe.MatchAny(list(values)))
            return qe.Expression.Condition(condition)
        case Missing(field):
            return qe.Expression.Condition(qe.IsEmptyCondition(field))
        case GeoMetres(lat, lon, field):
            return qe.Expression.GeoDistance(qe.GeoPoint(lon=lon, lat=lat), field)
    raise TypeError(f"not a formula node: {e!r}")


T = TypeVar("T")


@contextmanager
def _guard(path: Path, writing: bool = False) -> Iterator[None]:
    """Turn any failure of the engine (or of reading its files) into a one-line StoreError."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        if writing:
            raise StoreError(
                f"the store at {path} could not write ({one_line(exc)}); what was written "
                "before stays, and the same command resumes once the cause is fixed"
            ) from None
        raise StoreError(
            f"the store at {path} could not be read ({one_line(exc)}); check the folder, "
            "or restore a snapshot (`fashionrec snapshot restore`)"
        ) from None


def guarded(method: Callable[..., T]) -> Callable[..., T]:
    """Run a read of the store under _guard."""

    @functools.wraps(method)
    def wrapper(self: EdgeStore, *args: Any, **kwargs: Any) -> T:
        with _guard(self.path):
            return method(self, *args, **kwargs)

    return wrapper


def _locked(path: Path) -> StoreLockedError:
    return StoreLockedError(
        f"the store at {path} is held by another fashionrec process (an ingest?); "
        "wait for it to finish, or point FASHIONREC_HOME at another folder"
    )


def _open_error(path: Path, exc: Exception) -> StoreError:
    if "WouldBlock" in str(exc):
        return _locked(path)
    return StoreError(f"cannot open the store at {path}: {one_line(exc)}")


def _lock(path: Path) -> IO[bytes] | None:
    """The store's lock, taken; None while another EdgeStore (in any process) holds it.

    Taken before Qdrant Edge touches the shard: its load opens the segments' files before it
    finds the write-ahead log locked, and such a refused open once broke the holder's next
    flush (a service that failed as it stopped, after `fashionrec info` was refused).
    """
    handle = (path / LOCK_FILE).open("a+b")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


class EdgeStore(VectorStore):
    """The embedded store: a Qdrant Edge shard in a folder, locked by the process using it."""

    exclusive = True

    def __init__(self, path: Path, layout: Layout = Layout(), wait_s: float = 0.0) -> None:
        """Open (or prepare) the shard at path; wait up to wait_s for another process's lock."""
        self.path = path
        self.layout = layout
        self.location = str(path)
        self._shard: qe.EdgeShard | None = None
        self._lock: IO[bytes] | None = None
        self._written = False  # since the last optimize: points may sit in unindexed segments
        deadline = time.monotonic() + wait_s
        while (path / CONFIG_FILE).is_file():
            self._lock = _lock(path)
            if self._lock is not None:
                try:
                    self._shard = qe.EdgeShard.load(str(path))
                    return
                except Exception as exc:
                    self._release()
                    error = _open_error(path, exc)
                    if not isinstance(error, StoreLockedError):
                        raise error from None
            if time.monotonic() >= deadline:
                raise _locked(path)
            time.sleep(0.2)

    def _release(self) -> None:
        """Let another EdgeStore open the shard."""
        if self._lock is not None:
            self._lock.close()  # closing the file releases its flock
            self._lock = None

    def _update(self, operation: qe.UpdateOperation) -> None:
        """Apply one write; a failure (e.g. a full disk) becomes a one-line StoreError."""
        with _guard(self.path, writing=True):
            self.shard.update(operation)
        self._written = True

    @property
    def exists(self) -> bool:
        """Whether the shard has been created."""
        return self._shard is not None

    @property
    def shard(self) -> qe.EdgeShard:
        """The open shard; StoreError if nothing was ingested yet."""
        if self._shard is None:
            raise StoreError(f"the store at {self.path} is empty; run `fashionrec ingest` first")
        return self._shard

    @guarded
    def vector_dims(self) -> dict[str, int]:
        if self._shard is None:
            return {}
        config = json.loads((self.path / CONFIG_FILE).read_text())
        return {name: int(params["size"]) for name, params in config["vectors"].items()}

    def _add_vector(self, name: str, dim: int) -> None:
        memory = qe.Memory.Cold if self.layout.originals_on_disk else qe.Memory.Cached
        params = qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine, memory=memory)
        if self._shard is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = self._lock or _lock(self.path)
            if self._lock is None:
                raise _locked(self.path)
            config = qe.EdgeConfig(
                vectors={name: params},
                hnsw_config=HNSW,
                quantization_config=INT8 if self.layout.quantized else None,
                payload_memory=qe.Memory.Cached,
            )
            try:
                self._shard = qe.EdgeShard.create(str(self.path), config)
            except Exception as exc:
                self._release()
                raise _open_error(self.path, exc) from None
            self._create_indexes()
        else:
            self._update(qe.UpdateOperation.create_dense_vector(name, dim, qe.Distance.Cosine))

    @guarded
    def _indexed(self) -> set[str]:
        return set(self.shard.info().payload_schema)

    def _index(self, key: str, kind: IndexKind, linked: bool) -> None:
        params = INDEX_PARAMS[kind](enable_hnsw=linked)
        self._update(qe.UpdateOperation.create_field_index(key, params))

    @guarded
    def ids_matching(self, flt: Filter, limit: int) -> set[str]:
        if self._shard is None:
            return set()
        records, _ = self.shard.scroll(
            qe.ScrollRequest(limit=limit, filter=_translate(flt), with_payload=False)
        )
        return {str(r.id) for r in records}

    def upsert(self, batch: PointBatch) -> None:
        points = [
            qe.Point(pid, {batch.vector_name: vector.tolist()}, payload)
            for pid, vector, payload in zip(batch.ids, batch.vectors, batch.payloads, strict=True)
        ]
        self._update(qe.UpdateOperation.upsert_points(points))
        self._changed(batch.ids)

    def add_vectors(self, batch: PointBatch) -> None:
        vectors = [
            qe.PointVectors(pid, {batch.vector_name: vector.tolist()})
            for pid, vector in zip(batch.ids, batch.vectors, strict=True)
        ]
        self._update(qe.UpdateOperation.update_vectors(vectors))
        for pid, payload in zip(batch.ids, batch.payloads, strict=True):
            self._update(qe.UpdateOperation.set_payload([pid], payload))
        self._changed(batch.ids)

    def scroll(
        self,
        fields: Sequence[str] | None,
        flt: Filter | None = None,
        page: int = 1000,
        vector: str | None = None,
    ) -> Iterator[Record]:
        if self._shard is None:
            return
        with _guard(self.path):
            yield from self._pages(fields, flt, page, vector)

    def _pages(
        self, fields: Sequence[str] | None, flt: Filter | None, page: int, vector: str | None
    ) -> Iterator[Record]:
        offset: qe.PointId | None = None
        while True:
            records, offset = self.shard.scroll(
                qe.ScrollRequest(
                    offset=offset,
                    limit=page,
                    filter=_translate(flt),
                    with_payload=True if fields is None else list(fields),
                    with_vector=[vector] if vector else False,
                )
            )
            yield from (make_record(r.id, r.payload, r.vector, vector) for r in records)
            if offset is None:
                return

    def search(self, queries: Sequence[Query], fields: Sequence[str]) -> list[list[Hit]]:
        if not queries:
            return []
        requests = self._searches(queries, fields)
        return self._query(requests, [q.using if q.with_vector else None for q in queries])

    def search_scored(self, queries: Sequence[Query]) -> list[Scored]:
        return self._scored(self._searches(queries, ())) if queries else []

    def formula_scored(self, queries: Sequence[FormulaQuery]) -> list[Scored]:
        return self._scored(self._formulas(queries, ())) if queries else []

    @staticmethod
    def _searches(queries: Sequence[Query], fields: Sequence[str]) -> list[qe.QueryRequest]:
        return [
            qe.QueryRequest(
                limit=q.limit,
                query=_nearest(q),
                filter=_translate(q.filter),
                with_payload=list(fields) or False,
                with_vector=[q.using] if q.with_vector else False,
                params=_params(q.limit if q.mmr is None else q.mmr.candidates),
            )
            for q in queries
        ]

    def formula_search(
        self, queries: Sequence[FormulaQuery], fields: Sequence[str]
    ) -> list[list[Hit]]:
        if not queries:
            return []
        named = [fq.prefetch.using if fq.prefetch.with_vector else None for fq in queries]
        return self._query(self._formulas(queries, fields), named)

    @staticmethod
    def _formulas(queries: Sequence[FormulaQuery], fields: Sequence[str]) -> list[qe.QueryRequest]:
        return [
            qe.QueryRequest(
                limit=fq.limit,
                prefetches=[
                    qe.Prefetch(
                        limit=fq.prefetch.limit,
                        query=qe.Query.Nearest(
                            fq.prefetch.vector.tolist(), using=fq.prefetch.using
                        ),
                        filter=_translate(fq.prefetch.filter),
                        params=_params(fq.prefetch.limit),
                    )
                ],
                query=qe.Formula(_expression(fq.formula), defaults=fq.defaults),
                with_payload=list(fields) or False,
                with_vector=[fq.prefetch.using] if fq.prefetch.with_vector else False,
            )
            for fq in queries
        ]

    @guarded
    def _scored(self, requests: list[qe.QueryRequest]) -> list[Scored]:
        results = self.shard.query_batch(qe.QueryBatchRequest(requests))
        return [Scored.of([p.id for p in hits], [p.score for p in hits]) for hits in results]

    @guarded
    def _query(
        self, requests: list[qe.QueryRequest], vectors: Sequence[str | None]
    ) -> list[list[Hit]]:
        results = self.shard.query_batch(qe.QueryBatchRequest(requests))
        return [
            [make_hit(p.id, p.score, p.payload, p.vector, name) for p in hits]
            for hits, name in zip(results, vectors, strict=True)
        ]

    @guarded
    def value_range(self, key: str) -> tuple[float, float] | None:
        if self._shard is None:
            return None
        ends = []
        for direction in (qe.Direction.Asc, qe.Direction.Desc):
            records, _ = self.shard.scroll(
                qe.ScrollRequest(limit=1, with_payload=[key], order_by=qe.OrderBy(key, direction))
            )
            if not records or (records[0].payload or {}).get(key) is None:
                return None
            ends.append(float(records[0].payload[key]))  # type: ignore[index]
        return ends[0], ends[1]

    def set_payload(self, ids: Sequence[str], payload: Payload) -> None:
        if ids:
            self._update(qe.UpdateOperation.set_payload(list(ids), payload))
            self._changed(ids)

    def delete(self, ids: Sequence[str]) -> None:
        if ids and self._shard is not None:
            self._update(qe.UpdateOperation.delete_points(list(ids)))
            self._changed(ids)

    @guarded
    def count(self, flt: Filter | None = None) -> int:
        if self._shard is None:
            return 0
        return self.shard.count(qe.CountRequest(exact=True, filter=_translate(flt)))

    @guarded
    def facet(self, key: str, flt: Filter | None = None) -> dict[str, int]:
        if self._shard is None:
            return {}
        response = self.shard.facet(
            qe.FacetRequest(key, limit=1000, exact=True, filter=_translate(flt))
        )
        return {str(hit.value): hit.count for hit in response.hits}

    @guarded
    def retrieve(self, ids: Sequence[str], vector: str | None = None) -> list[Record]:
        if self._shard is None:
            return []
        records = self.shard.retrieve(
            list(ids), with_payload=True, with_vector=[vector] if vector else False
        )
        return [make_record(r.id, r.payload, r.vector, vector) for r in records]

    def optimize(self) -> None:
        """Run Qdrant's optimizers (Edge has no background ones): any write, a payload
        update included, moves points out of the indexed segments into a plain one that
        every search scans, until the optimizers index them again. Cheap when they find
        little to do (well under 1 ms after a few points moved)."""
        if self._shard is not None:
            with _guard(self.path, writing=True):
                self._shard.optimize()
            self._written = False

    def flush(self) -> None:
        if self._shard is not None:
            with _guard(self.path, writing=True):
                self._shard.flush()

    def close(self) -> None:
        """Index what was written since the last optimize, flush, release the lock."""
        if self._shard is None:
            self._release()
            return
        try:
            if self._written:
                self.optimize()
        finally:
            shard, self._shard = self._shard, None
            try:
                with _guard(self.path, writing=True):
                    shard.flush()
                    shard.close()
            finally:
                self._release()
