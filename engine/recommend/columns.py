"""The rerank's fields of every item, in columns in this process: searches then return ids
and scores only, and the rerank reads the rest here.

Moving payloads out of the engine is most of a search's cost (500 hits per user
recommendation); this table holds the few fields the rerank reads (item, product,
category, gender, shop and its location, both popularities), a few bytes per item
beside the store. It keeps in step with the store it was read from: the store tells it
which points each write touched, and it reads those again before it is next used. Only
for a store no other process writes (the embedded one): a Qdrant server may be written
by others, so it is searched with payloads.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from engine.errors import StoreError
from engine.helpers import batched
from engine.recommend.rerank import Candidates
from engine.vectorstore.base import Record, Scored, VectorStore, key_id, point_keys
from engine.vocabulary.geo import coordinates
from engine.vocabulary.schema import (
    CATEGORY,
    GENDER,
    HIT_FIELDS,
    ITEM_ID,
    POPULARITY,
    POPULARITY_RANK,
    PRODUCT_ID,
    STORE_ID,
    STORE_LOCATION,
    TRENDING,
    TRENDING_RANK,
    point_id,
    popularity_field,
    rank_field,
)

BYTES: Final = (ITEM_ID, PRODUCT_ID)  # one value per item or product: UTF-8 bytes
CODED: Final = (CATEGORY, GENDER, STORE_ID)  # few distinct values: codes into a vocabulary
NUMBERS: Final = (POPULARITY, TRENDING, POPULARITY_RANK, TRENDING_RANK)
PAGE: Final = 4096
Arrays = dict[str, NDArray[Any]]


class Columns:
    """Every point's rerank fields by row; rows found by the point id's 128 bits.

    No Python object per item: a million strings in arrays would make every full
    collection of the garbage collector visit them (~40 ms at 800K items, a request's p99).
    """

    def __init__(self, store: VectorStore) -> None:
        """Read every point of the store (one scroll), then follow its writes."""
        self.store = store
        self._lock = threading.RLock()  # writes arrive from other threads (a service's)
        self._dirty: set[str] = set()
        self._vocabulary: dict[str, dict[str | None, int]] = {k: {} for k in CODED}
        self._names: dict[str, NDArray[np.object_]] = {}  # code → value, per coded column
        self._columns: Arrays = {k: np.empty(0, dtype="S1") for k in BYTES}
        self._columns |= {k: np.empty(0, dtype=np.int32) for k in CODED}
        self._columns |= {k: np.empty(0) for k in (*NUMBERS, "lat", "lon")}
        self._keys = np.empty((0, 2), dtype=np.uint64)  # (hi, lo) of each row's point id
        self._order = np.empty(0, dtype=np.int64)  # rows by key
        self._high = np.empty(0, dtype=np.uint64)  # the keys' high halves, in that order
        self._ranges: dict[str, tuple[float, float] | None] = {}
        store.watch(self._changed)
        parts = [
            self._read(page) for page in batched(store.scroll(list(HIT_FIELDS), page=PAGE), PAGE)
        ]
        if parts:
            self._keys = np.concatenate([keys for keys, _ in parts])
            for name in self._columns:
                self._columns[name] = np.concatenate([columns[name] for _, columns in parts])
            self._sort()

    def __len__(self) -> int:
        return len(self._keys)

    def _changed(self, ids: Sequence[str]) -> None:
        with self._lock:
            self._dirty.update(ids)

    def _refresh(self) -> None:
        """Read again the points written since the last use."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            for ids in batched(sorted(dirty), PAGE):
                records = self.store.retrieve(ids)
                self._put(records)
                gone = sorted(set(ids) - {str(r.id) for r in records})
                if gone:  # deleted: their rows go
                    self._drop(point_keys(gone))

    def _code(self, name: str, value: Any) -> int:
        vocabulary = self._vocabulary[name]
        key = None if value is None else str(value)
        if key not in vocabulary:
            vocabulary[key] = len(vocabulary)
            names = np.empty(len(vocabulary), dtype=object)
            names[:] = list(vocabulary)
            self._names[name] = names
        return vocabulary[key]

    def _read(self, records: Sequence[Record]) -> tuple[NDArray[np.uint64], Arrays]:
        """The keys and columns of some points (absent text: empty)."""
        keys = point_keys(r.id for r in records)
        columns: Arrays = {
            name: np.array([_encoded(r.payload.get(name)) for r in records], dtype=bytes)
            for name in BYTES
        }
        for name in CODED:
            codes = [self._code(name, r.payload.get(name)) for r in records]
            columns[name] = np.array(codes, dtype=np.int32)
        for name in NUMBERS:
            columns[name] = np.array([float(r.payload.get(name) or 0.0) for r in records])
        columns["lat"], columns["lon"] = coordinates(r.payload.get(STORE_LOCATION) for r in records)
        return keys, columns

    def _put(self, records: Sequence[Record]) -> None:
        """Overwrite the rows of known points, append the others."""
        if not records:
            return
        keys, columns = self._read(records)
        rows = self._find(keys)
        new = rows < 0
        if new.any():
            self._keys = np.concatenate([self._keys, keys[new]])
            for name, column in self._columns.items():
                self._columns[name] = np.concatenate([column, columns[name][new]])
            self._sort()
        old = ~new
        for name, values in columns.items():
            held = self._columns[name]
            if values.dtype.kind == "S" and values.itemsize > held.itemsize:  # widen first
                held = self._columns[name] = held.astype(values.dtype)
            held[rows[old]] = values[old]
        self._ranges.clear()

    def _drop(self, keys: NDArray[np.uint64]) -> None:
        """Remove the rows of these keys (those it holds)."""
        rows = self._find(keys)
        rows = rows[rows >= 0]
        if not len(rows):
            return
        self._keys = np.delete(self._keys, rows, axis=0)
        for name, column in self._columns.items():
            self._columns[name] = np.delete(column, rows)
        self._sort()
        self._ranges.clear()

    def _sort(self) -> None:
        self._order = np.lexsort((self._keys[:, 1], self._keys[:, 0]))
        self._high = self._keys[self._order, 0]

    def _find(self, keys: NDArray[np.uint64]) -> NDArray[np.int64]:
        """Rows of the given keys ((n, 2) high, low); -1 where unknown."""
        rows = np.full(len(keys), -1, dtype=np.int64)
        if not len(self._order) or not len(keys):
            return rows
        high = self._high
        at = np.minimum(np.searchsorted(high, keys[:, 0]), len(high) - 1)
        found = self._order[at]
        hit = (self._keys[found, 0] == keys[:, 0]) & (self._keys[found, 1] == keys[:, 1])
        rows[hit] = found[hit]
        for i in np.flatnonzero(~hit & (high[at] == keys[:, 0])):  # 64-bit prefixes shared
            j = int(at[i])  # by two points: with probability ~n²/2⁶⁵, walk the tie
            while j < len(high) and high[j] == keys[i, 0]:
                if self._keys[self._order[j], 1] == keys[i, 1]:
                    rows[i] = self._order[j]
                    break
                j += 1
        return rows

    def _rows(self, keys: NDArray[np.uint64]) -> NDArray[np.int64]:
        """Rows of point keys, reading any point not held yet from the store."""
        with self._lock:
            if self._dirty:
                self._refresh()
            rows = self._find(keys)
            if (rows < 0).any():
                self._put(self.store.retrieve([key_id(k) for k in keys[rows < 0]]))
                rows = self._find(keys)
                if (rows < 0).any():
                    raise StoreError(
                        f"{self.store.location}: a search returned a point the store does not "
                        "have; restart the service if the store was replaced under it"
                    )
            return rows

    def candidates(self, scored: Scored, mode: str = "all-time") -> Candidates:
        """One search's results with their fields, the popularity of `mode` and its rank."""
        rows = self._rows(scored.keys)
        columns, names = self._columns, self._names
        return Candidates(
            scores=np.asarray(scored.scores, dtype=np.float64),
            item_id=_decoded(columns[ITEM_ID][rows]),
            product_id=_decoded(columns[PRODUCT_ID][rows]),
            category=names[CATEGORY][columns[CATEGORY][rows]],
            gender=names[GENDER][columns[GENDER][rows]],
            store_id=names[STORE_ID][columns[STORE_ID][rows]],
            lat=columns["lat"][rows],
            lon=columns["lon"][rows],
            popularity=columns[popularity_field(mode)][rows],
            ranks=columns[rank_field(mode)][rows],
        )

    def value_range(self, field: str) -> tuple[float, float] | None:
        """(min, max) of a popularity column over every point (None when empty)."""
        with self._lock:
            if self._dirty:
                self._refresh()
            if field not in self._ranges:
                values = self._columns[field]
                self._ranges[field] = (
                    (float(values.min()), float(values.max())) if len(values) else None
                )
            return self._ranges[field]

    def popularity_columns(self) -> tuple[list[str], dict[str, NDArray[np.float64]]]:
        """Every item's id, and its popularities and their stored ranks by payload field (what
        engine.popularity.upkeep.sync_ranks reads; a rank not stored reads 0)."""
        with self._lock:
            if self._dirty:
                self._refresh()
            ids = _decoded(self._columns[ITEM_ID]).tolist()
            return ids, {name: self._columns[name].copy() for name in NUMBERS}

    def popularity_values(
        self, item_ids: Sequence[str] | None = None
    ) -> dict[str, NDArray[np.float64]]:
        """By payload field, the popularities and stored ranks of these items (in this
        order; read from the store if not held yet), or of every item."""
        with self._lock:
            if item_ids is None:
                if self._dirty:
                    self._refresh()
                return {name: self._columns[name].copy() for name in NUMBERS}
            rows = self._rows(point_keys(point_id(i) for i in item_ids))
            return {name: self._columns[name][rows] for name in NUMBERS}

    def nbytes(self) -> int:
        """What the table holds in memory."""
        arrays = [self._keys, self._order, self._high, *self._columns.values()]
        return sum(a.nbytes for a in arrays)


def _encoded(value: Any) -> bytes:
    return b"" if value is None else str(value).encode()


def _decoded(values: NDArray[np.bytes_]) -> NDArray[np.object_]:
    """Bytes → an array of Python strings (what the rerank reads)."""
    out = np.empty(len(values), dtype=object)
    out[:] = [v.decode() for v in values.tolist()]
    return out
