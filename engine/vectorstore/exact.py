"""Exact search in numpy over every stored vector: the reference the ANN path is checked against."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from engine.helpers import number_or_nan
from engine.vectorstore.base import Filter, Hit, Payload, Query, VectorStore
from engine.vocabulary.geo import Location, coordinates, distances_km
from engine.vocabulary.schema import STORE_LOCATION


class ExactIndex:
    """All points of one backbone in RAM; brute-force cosine search with the same filters."""

    def __init__(
        self, ids: list[str], vectors: NDArray[np.float32], payloads: list[Payload]
    ) -> None:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.ids = ids
        self.vectors = vectors / np.where(norms == 0, 1, norms)
        self.payloads = payloads
        self._columns: dict[str, NDArray[np.str_]] = {}
        self.lat, self.lon = coordinates(p.get(STORE_LOCATION) for p in payloads)

    @classmethod
    def load(cls, store: VectorStore, backbone: str, fields: Sequence[str]) -> ExactIndex:
        """Every point that has the backbone's vector, with the given payload fields."""
        ids, vectors, payloads = [], [], []
        for record in store.scroll(fields, Filter(has_vector=backbone), vector=backbone):
            assert record.vector is not None
            ids.append(record.id)
            vectors.append(record.vector)
            payloads.append(record.payload)
        return cls(ids, np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1), payloads)

    def _column(self, key: str) -> NDArray[np.str_]:
        if key not in self._columns:
            self._columns[key] = np.array([str(p.get(key)) for p in self.payloads])
        return self._columns[key]

    def mask(self, flt: Filter | None) -> NDArray[np.bool_]:
        """Which points pass the filter."""
        keep: NDArray[np.bool_] = np.ones(len(self.ids), dtype=bool)
        if flt is None:
            return keep
        for key, value in flt.equals.items():
            keep &= self._column(key) == value
        for key, values in flt.within.items():
            keep &= np.isin(self._column(key), sorted(values))
        for key, values in flt.exclude.items():
            keep &= ~np.isin(self._column(key), sorted(values))
        if flt.ids is not None:
            keep &= np.isin(np.array(self.ids), sorted(flt.ids))
        for key, bounds in flt.ranges.items():
            numbers = np.array([number_or_nan(p.get(key)) for p in self.payloads])
            keep &= ~np.isnan(numbers)  # no value fails every bound
            if bounds.gt is not None:
                keep &= numbers > bounds.gt
            if bounds.gte is not None:
                keep &= numbers >= bounds.gte
            if bounds.lt is not None:
                keep &= numbers < bounds.lt
            if bounds.lte is not None:
                keep &= numbers <= bounds.lte
        if flt.near is not None:
            km = distances_km(Location(flt.near.lat, flt.near.lon), self.lat, self.lon)
            keep &= np.nan_to_num(km, nan=np.inf) <= flt.near.km
        return keep

    def search(self, queries: Sequence[Query], fields: Sequence[str]) -> list[list[Hit]]:
        """The exact top `limit` by cosine among the points passing each query's filter
        (with their unit vectors when asked)."""
        results = []
        for query in queries:
            if query.mmr is not None:
                raise ValueError("the exact reference has no MMR; rerank with the candidates")
            rows = np.flatnonzero(self.mask(query.filter))
            vector = query.vector / max(float(np.linalg.norm(query.vector)), 1e-12)
            scores = self.vectors[rows] @ vector.astype(np.float32)
            top = np.argsort(-scores, kind="stable")[: query.limit]
            results.append(
                [
                    Hit(
                        self.ids[rows[i]],
                        float(scores[i]),
                        {
                            k: self.payloads[rows[i]].get(k)
                            for k in fields
                            if k in self.payloads[rows[i]]
                        },
                        self.vectors[rows[i]] if query.with_vector else None,
                    )
                    for i in top
                ]
            )
        return results
