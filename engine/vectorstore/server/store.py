"""The Qdrant server store, through qdrant-client (a server, a cluster, or `:memory:` in
tests)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from qdrant_client import QdrantClient, models

from engine.vectorstore.base import (
    COLLECTION,
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
    VectorStore,
    make_record,
)
from engine.vectorstore.server.failures import guard, guarded
from engine.vectorstore.server.translate import (
    expression,
    hits,
    index_params,
    nearest,
    search_params,
    translate,
)
from engine.vocabulary.schema import IndexKind

UPLOAD_BATCH = 256  # points per request
UPLOAD_PARALLEL = 2  # concurrent upload workers against a remote server
UPLOAD_RETRIES = 3  # per request, with the client's backoff


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
        with guard(self.location):
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
        schema = index_params(kind, linked)
        self.client.create_payload_index(self.collection, key, schema)

    @guarded
    def ids_matching(self, flt: Filter, limit: int) -> set[str]:
        if not self._exists:
            return set()
        records, _ = self.client.scroll(
            self.collection,
            scroll_filter=translate(flt),
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
        with guard(self.location):
            yield from self._pages(fields, flt, page, vector)

    def _pages(
        self, fields: Sequence[str] | None, flt: Filter | None, page: int, vector: str | None
    ) -> Iterator[Record]:
        offset: Any = None
        while True:
            records, offset = self.client.scroll(
                self.collection,
                scroll_filter=translate(flt),
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
                query=nearest(q),
                using=q.using,
                filter=translate(q.filter),
                limit=q.limit,
                with_payload=list(fields) or False,
                with_vector=[q.using] if q.with_vector else False,
                params=search_params(q.limit if q.mmr is None else q.mmr.candidates),
            )
            for q in queries
        ]
        responses = self.client.query_batch_points(self.collection, requests)
        return hits(responses, [q.using if q.with_vector else None for q in queries])

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
                    filter=translate(fq.prefetch.filter),
                    limit=fq.prefetch.limit,
                    params=search_params(fq.prefetch.limit),
                ),
                query=models.FormulaQuery(formula=expression(fq.formula), defaults=fq.defaults),
                limit=fq.limit,
                with_payload=list(fields) or False,
                with_vector=[fq.prefetch.using] if fq.prefetch.with_vector else False,
            )
            for fq in queries
        ]
        responses = self.client.query_batch_points(self.collection, requests)
        named = [fq.prefetch.using if fq.prefetch.with_vector else None for fq in queries]
        return hits(responses, named)

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
        result = self.client.count(self.collection, count_filter=translate(flt), exact=True)
        return result.count

    @guarded
    def facet(self, key: str, flt: Filter | None = None) -> dict[str, int]:
        if not self._exists:
            return {}
        response = self.client.facet(
            self.collection, key, facet_filter=translate(flt), limit=1000, exact=True
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
