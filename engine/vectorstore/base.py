"""The one vector-store interface the engine sees: its filters, queries, results and contract."""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from engine.errors import StoreError
from engine.vectorstore.formula import Default, Expr
from engine.vocabulary.schema import (
    PAYLOAD_INDEXES,
    POPULARITY,
    SEARCH_FILTER_FIELDS,
    TRENDING,
    IndexKind,
    vector_fields,
    weights_field,
)

COLLECTION: Final = "fashionrec"
HNSW_M: Final = 16  # graph links per point
EF_CONSTRUCT: Final = 100  # candidate list while building the graph
FULL_SCAN_KB: Final = 10_000  # a filter leaving less vector data than this is scored exactly
SEARCH_EF: Final = 128  # least HNSW ef at query time; a search uses max(this, 2 × limit)
# Quantized candidates per result, rescored on the original vectors: 1.5 keeps the final
# lists' recall@5 against exact search ≥ 0.998 at 100K and 800K (1.0 fell to 0.987) and
# reads a quarter fewer originals than 2 (bench/profile.py, docs/performance.md).
OVERSAMPLING: Final = 1.5


def search_ef(limit: int) -> int:
    """The HNSW ef for a search of `limit` results."""
    return max(SEARCH_EF, 2 * limit)


Payload = dict[str, Any]


@dataclass(frozen=True)
class Layout:
    """How a new collection stores its vectors (fixed when it is created).

    quantized: int8 scalar copies (in RAM) drive the HNSW search, the originals rescore
    the best candidates. originals_on_disk: the float32 originals are memory-mapped and
    read on demand (a rescore reads ~200 per query), not held in RAM.
    """

    quantized: bool = True
    originals_on_disk: bool = True


@dataclass(frozen=True)
class Near:
    """Points whose geo field lies within km of a centre."""

    field: str
    lat: float
    lon: float
    km: float


@dataclass(frozen=True)
class Range:
    """A numeric field's bounds (None: unbounded); a point without the field fails it."""

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


@dataclass(frozen=True)
class Filter:
    """A conjunction of the conditions the engine needs; empty matches everything."""

    equals: Mapping[str, str] = field(default_factory=dict)  # keyword fields only
    within: Mapping[str, frozenset[str]] = field(default_factory=dict)  # keyword in set
    has_vector: str | None = None
    ids: frozenset[str] | None = None
    exclude: Mapping[str, frozenset[str]] = field(default_factory=dict)  # keyword not in set
    near: Near | None = None
    ranges: Mapping[str, Range] = field(default_factory=dict)  # numeric fields only
    empty: str | None = None  # a payload field the point lacks (or holds empty)


@dataclass(frozen=True)
class Mmr:
    """Qdrant's maximal marginal relevance over the `candidates` nearest points: relevance
    is the cosine to the query, diversity λ ∈ (0, 1] (engine.recommend.diversity)."""

    diversity: float
    candidates: int


@dataclass(frozen=True)
class Query:
    """One nearest-neighbour search: a vector of a named space, a filter and a size.

    vector: one vector, or several (one a row): points are then ranked by their best cosine
    to any of them (Qdrant's recommend query, best_score strategy, positives only), on
    Qdrant's scale for it (`best_cosine` reads it back).
    with_vector: the hits carry their `using` vector. mmr: the `limit` results are chosen
    by maximal marginal relevance among more candidates, in the order it picks them (one
    vector only).
    """

    vector: NDArray[np.float32]
    using: str
    limit: int
    filter: Filter | None = None
    with_vector: bool = False
    mmr: Mmr | None = None


def best_cosine(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """The best cosines behind the scores of a search from several vectors: Qdrant's
    best_score maps a best cosine x to (1 + x / (1 + |x|)) / 2 (a sigmoid that keeps the
    order); this is its inverse."""
    scaled = 2.0 * np.asarray(scores, dtype=np.float64) - 1.0
    cosines: NDArray[np.float64] = scaled / (1.0 - np.abs(scaled))
    return cosines


@dataclass(frozen=True)
class FormulaQuery:
    """Prefetch the ANN candidates, then rank them by the formula; `limit` results (with
    their `using` vector when the prefetch asks for it)."""

    prefetch: Query
    formula: Expr
    defaults: dict[str, Default]  # numbers, or geo points {"lat": .., "lon": ..}
    limit: int


@dataclass(frozen=True)
class Hit:
    """A search result: point id, cosine similarity, the asked payload fields and the
    searched vector when the query asked for it."""

    id: str
    score: float
    payload: Payload
    vector: NDArray[np.float32] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Scored:
    """A search's results without payloads: point ids as keys, and scores."""

    keys: NDArray[np.uint64]  # (n, 2): each point id's 128 bits, high half then low
    scores: NDArray[np.float64]

    @classmethod
    def of(cls, ids: Iterable[object], scores: Iterable[float]) -> Scored:
        """From point ids (UUIDs or their text) and their scores."""
        return cls(point_keys(ids), np.fromiter(scores, dtype=np.float64))

    @classmethod
    def of_hits(cls, hits: Sequence[Hit]) -> Scored:
        """The ids and scores of hits."""
        return cls.of((h.id for h in hits), (h.score for h in hits))


def point_keys(ids: Iterable[object]) -> NDArray[np.uint64]:
    """Point ids (UUIDs, or their text) as (n, 2) unsigned 64-bit halves."""
    raw = b"".join((i if isinstance(i, uuid.UUID) else uuid.UUID(str(i))).bytes for i in ids)
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(-1, 2)


def key_id(key: NDArray[np.uint64]) -> str:
    """The point id (text) of one key."""
    return str(uuid.UUID(int=(int(key[0]) << 64) | int(key[1])))


@dataclass(frozen=True)
class Record:
    """A stored point: id, payload and, when asked for, one named vector."""

    id: str
    payload: Payload
    vector: NDArray[np.float32] | None = None


def named_vector(vectors: object, name: str) -> NDArray[np.float32] | None:
    """One named vector of a client's point (named vectors come back as a dict of lists)."""
    values = vectors.get(name) if isinstance(vectors, dict) else None
    return None if values is None else np.asarray(values, dtype=np.float32)


def make_record(pid: object, payload: Payload | None, vectors: object, name: str | None) -> Record:
    """A Record from a client's point and its named vector `name` (None: no vector)."""
    return Record(str(pid), dict(payload or {}), named_vector(vectors, name) if name else None)


def make_hit(
    pid: object, score: float, payload: Payload | None, vectors: object, name: str | None
) -> Hit:
    """A Hit from a client's scored point and its named vector `name` (None: no vector)."""
    return Hit(str(pid), score, dict(payload or {}), named_vector(vectors, name) if name else None)


@dataclass(frozen=True)
class PointBatch:
    """Points to write: ids, their payloads, and one backbone's vectors (row per id)."""

    ids: Sequence[str]
    payloads: Sequence[Payload]
    vector_name: str
    vectors: NDArray[np.float32]

    def subset(self, rows: Sequence[int], extra: Payload | None = None) -> PointBatch:
        """The given rows, with `extra` fields added where a payload lacks them."""
        return PointBatch(
            ids=[self.ids[i] for i in rows],
            payloads=[{**(extra or {}), **self.payloads[i]} for i in rows],
            vector_name=self.vector_name,
            vectors=self.vectors[list(rows)],
        )


class VectorStore(ABC):
    """A Qdrant collection of items: one named cosine vector per backbone, payload indexes.

    The error contract: every failure of a back-end call, a read or a write, whatever
    the engine or transport raised, reaches the caller as a StoreError with a one-line
    message naming the store; nothing else escapes. A failed write leaves what was
    written before it in place.
    """

    location: str
    # Whether this process is the store's only writer (so an in-process copy of its
    # payloads, told of every write, stays true): the embedded store locks its folder.
    exclusive: bool = False

    def watch(self, listener: Callable[[Sequence[str]], None]) -> None:
        """Call listener with the ids of the points each later write touches."""
        self._listeners = [*getattr(self, "_listeners", ()), listener]

    def _changed(self, ids: Sequence[str]) -> None:
        for listener in getattr(self, "_listeners", ()):
            listener(ids)

    @abstractmethod
    def vector_dims(self) -> dict[str, int]:
        """The named vectors the collection has, with their sizes."""

    @abstractmethod
    def _index(self, key: str, kind: IndexKind, linked: bool) -> None:
        """Create a payload index of one kind on a field, with HNSW links of its own if linked."""

    def _create_indexes(self) -> None:
        """Every payload index queries filter or rank on (before the first point)."""
        for key, kind in PAYLOAD_INDEXES:
            self._index(key, kind, key in SEARCH_FILTER_FIELDS)

    @abstractmethod
    def _indexed(self) -> set[str]:
        """The payload fields that have an index."""

    def ensure_indexes(self) -> None:
        """Create the payload indexes a store made by an earlier version lacks (none while
        the collection does not exist: it gets them all when it is made)."""
        if not self.vector_dims():
            return
        have = self._indexed()
        for key, kind in PAYLOAD_INDEXES:
            if key not in have:
                self._index(key, kind, key in SEARCH_FILTER_FIELDS)

    @abstractmethod
    def _add_vector(self, name: str, dim: int) -> None:
        """Create the named vector (and the collection with its indexes, if it is the first)."""

    def ensure_vector(self, name: str, dim: int) -> None:
        """Create the collection or the named vector if missing; StoreError on a size clash."""
        existing = self.vector_dims().get(name)
        if existing is None:
            self._add_vector(name, dim)
        elif existing != dim:
            raise StoreError(
                f"{self.location} holds {name} vectors of size {existing}, not {dim}; "
                f"use another store (--home or --qdrant-url) for a different {name}"
            )
        have = self._indexed()
        for key in vector_fields(name):  # what made the vectors: counted by facets
            if key not in have:
                self._index(key, "keyword", linked=False)

    @abstractmethod
    def ids_matching(self, flt: Filter, limit: int) -> set[str]:
        """Ids of up to `limit` points matching the filter."""

    @abstractmethod
    def upsert(self, batch: PointBatch) -> None:
        """Insert (or replace) points with exactly this payload and one vector."""

    @abstractmethod
    def add_vectors(self, batch: PointBatch) -> None:
        """Set one vector and the given payload fields of existing points, keeping the rest."""

    @abstractmethod
    def scroll(
        self,
        fields: Sequence[str] | None,
        flt: Filter | None = None,
        page: int = 1000,
        vector: str | None = None,
    ) -> Iterator[Record]:
        """Every point matching the filter, with the given payload fields (None: all) and
        optionally one named vector, page by page."""

    @abstractmethod
    def search(self, queries: Sequence[Query], fields: Sequence[str]) -> list[list[Hit]]:
        """Run several filtered nearest-neighbour searches in one batch call."""

    @abstractmethod
    def formula_search(
        self, queries: Sequence[FormulaQuery], fields: Sequence[str]
    ) -> list[list[Hit]]:
        """Several prefetch-then-formula queries in one batch; scores are the formula's."""

    def search_scored(self, queries: Sequence[Query]) -> list[Scored]:
        """`search` returning ids and scores only (no payload, no vector)."""
        return [Scored.of_hits(hits) for hits in self.search(queries, ())]

    def formula_scored(self, queries: Sequence[FormulaQuery]) -> list[Scored]:
        """`formula_search` returning ids and scores only (no payload, no vector)."""
        return [Scored.of_hits(hits) for hits in self.formula_search(queries, ())]

    @abstractmethod
    def value_range(self, key: str) -> tuple[float, float] | None:
        """(min, max) of a numeric payload field over all points, via its index."""

    @abstractmethod
    def set_payload(self, ids: Sequence[str], payload: Payload) -> None:
        """Set the same payload fields on the given points, keeping the others."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None:
        """Remove the given points (ids it does not hold are ignored)."""

    @abstractmethod
    def count(self, flt: Filter | None = None) -> int:
        """Number of points matching the filter (exact)."""

    @abstractmethod
    def facet(self, key: str, flt: Filter | None = None) -> dict[str, int]:
        """Counts of each value of a keyword field."""

    @abstractmethod
    def retrieve(self, ids: Sequence[str], vector: str | None = None) -> list[Record]:
        """The given points that exist, with payload and optionally one named vector."""

    def provenance(self, backbone: str) -> dict[str, int]:
        """Which weights embedded a backbone's vectors: label (imagenet-keras, random, …) →
        points; more than one label means the store mixes weights for that backbone."""
        return self.facet(weights_field(backbone))

    def optimize(self) -> None:  # noqa: B027 - optional hook
        """Build indexes after a bulk load (no-op where the server does it)."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Make written points durable (no-op where writes are already durable)."""

    @abstractmethod
    def close(self) -> None:
        """Release the store."""

    def write(self, batch: PointBatch) -> None:
        """Write a batch: new points are inserted (popularity 0, all-time and trending), known
        ones get this vector."""
        known = self.ids_matching(Filter(ids=frozenset(batch.ids)), limit=len(batch.ids))
        new = [i for i, pid in enumerate(batch.ids) if pid not in known]
        old = [i for i, pid in enumerate(batch.ids) if pid in known]
        if new:
            self.upsert(batch.subset(new, extra={POPULARITY: 0.0, TRENDING: 0.0}))
        if old:
            self.add_vectors(batch.subset(old))
