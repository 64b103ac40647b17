"""The Qdrant Edge store: Qdrant's engine in-process, one shard on local disk."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Final

import qdrant_edge as qe

from engine.errors import StoreError, StoreLockedError
from engine.vectorstore.base import (
    EF_CONSTRUCT,
    FULL_SCAN_KB,
    HNSW_M,
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
)
from engine.vectorstore.edge.lock import guard, guarded, locked, open_error, take_lock
from engine.vectorstore.edge.translate import expression, nearest, search_params, translate
from engine.vocabulary.schema import IndexKind

CONFIG_FILE: Final = "edge_config.json"
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
            self._lock = take_lock(path)
            if self._lock is not None:
                try:
                    self._shard = qe.EdgeShard.load(str(path))
                    return
                except Exception as exc:
                    self._release()
                    error = open_error(path, exc)
                    if not isinstance(error, StoreLockedError):
                        raise error from None
            if time.monotonic() >= deadline:
                raise locked(path)
            time.sleep(0.2)

    def _release(self) -> None:
        """Let another EdgeStore open the shard."""
        if self._lock is not None:
            self._lock.close()  # closing the file releases its flock
            self._lock = None

    def _update(self, operation: qe.UpdateOperation) -> None:
        """Apply one write; a failure (e.g. a full disk) becomes a one-line StoreError."""
        with guard(self.path, writing=True):
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
            self._lock = self._lock or take_lock(self.path)
            if self._lock is None:
                raise locked(self.path)
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
                raise open_error(self.path, exc) from None
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
            qe.ScrollRequest(limit=limit, filter=translate(flt), with_payload=False)
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
        with guard(self.path):
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
                    filter=translate(flt),
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
                query=nearest(q),
                filter=translate(q.filter),
                with_payload=list(fields) or False,
                with_vector=[q.using] if q.with_vector else False,
                params=search_params(q.limit if q.mmr is None else q.mmr.candidates),
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
                        filter=translate(fq.prefetch.filter),
                        params=search_params(fq.prefetch.limit),
                    )
                ],
                query=qe.Formula(expression(fq.formula), defaults=fq.defaults),
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
        return self.shard.count(qe.CountRequest(exact=True, filter=translate(flt)))

    @guarded
    def facet(self, key: str, flt: Filter | None = None) -> dict[str, int]:
        if self._shard is None:
            return {}
        response = self.shard.facet(
            qe.FacetRequest(key, limit=1000, exact=True, filter=translate(flt))
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
            with guard(self.path, writing=True):
                self._shard.optimize()
            self._written = False

    def flush(self) -> None:
        if self._shard is not None:
            with guard(self.path, writing=True):
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
                with guard(self.path, writing=True):
                    shard.flush()
                    shard.close()
            finally:
                self._release()
