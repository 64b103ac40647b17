"""The catalog as the blended ranking reads it (engine.recommend.pool): its items' fields
and unit vectors of one space, as arrays, read from the vector store once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

from engine.catalog.taxonomy import Taxonomy
from engine.errors import NotFoundError
from engine.vectorstore.base import Filter, VectorStore
from engine.vocabulary.geo import coordinates
from engine.vocabulary.schema import (
    CATEGORY,
    COLOUR,
    GENDER,
    ITEM_ID,
    OUT,
    PRICE,
    PRODUCT_ID,
    STOCK,
    STORE_ID,
    STORE_LOCATION,
    point_id,
)

SHELF_FIELDS: Final = (
    COLOUR,
    ITEM_ID,
    PRODUCT_ID,
    GENDER,
    CATEGORY,
    STORE_ID,
    STORE_LOCATION,
    STOCK,
    PRICE,
)


@dataclass
class Shelf:
    """The catalog as the blended ranking reads it: one row per item."""

    item_ids: list[str]
    products: NDArray[np.int64]  # codes into `product_ids`
    product_ids: list[str]
    genders: NDArray[np.str_]
    categories: NDArray[np.int64]  # codes into `category_names`
    category_names: list[str]
    catsim: NDArray[np.float64]  # CatSim between category codes
    vectors: NDArray[np.float32] | None  # unit rows of the searched space, if held here
    shops: list[str | None] = field(default_factory=list)  # each item's shop, if any
    out_of_stock: NDArray[np.bool_] | None = None  # the filters' fields (None: not read)
    prices: NDArray[np.float64] | None = None  # NaN: no price
    lat: NDArray[np.float64] | None = None  # the shop's, NaN: no shop
    lon: NDArray[np.float64] | None = None
    colours: NDArray[np.float32] | None = None  # each item's colour histogram (ingest/colour.py)
    index: dict[str, int] = field(default_factory=dict)
    _shown: dict[frozenset[str], NDArray[np.bool_]] = field(default_factory=dict)
    _point_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.index = {item: row for row, item in enumerate(self.item_ids)}

    def __len__(self) -> int:
        return len(self.item_ids)

    def allowed(self, history: Sequence[int], genders: frozenset[str] | None) -> NDArray[np.bool_]:
        """The items a shopper shown these genders may be offered: no product of history."""
        bought = np.zeros(len(self.product_ids), dtype=bool)
        bought[self.products[list(history)]] = True
        return self.shown(genders) & ~bought[self.products]

    def neighbours(
        self, history: NDArray[np.int64], allowed: NDArray[np.bool_], n: int
    ) -> NDArray[np.int64]:
        """The n allowed rows with the best cosine to any history row (exact)."""
        return Cosines(self, history).looks(history).neighbours(history, allowed, n)

    def similarity(
        self, history: NDArray[np.int64], rows: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """The cosine of each history row to each of the rows."""
        return Cosines(self, history).looks(history).similarity(history, rows)

    def point_ids(self) -> list[str]:
        """Each item's point id in the vector store (computed once)."""
        if not self._point_ids:
            self._point_ids.extend(point_id(i) for i in self.item_ids)
        return self._point_ids

    def shown(self, genders: frozenset[str] | None) -> NDArray[np.bool_]:
        """Which items a shopper shown these genders sees (every item for None)."""
        if genders is None:
            return np.ones(len(self), dtype=bool)
        if genders not in self._shown:
            self._shown[genders] = np.isin(self.genders, sorted(genders))
        return self._shown[genders]

    @classmethod
    def of_store(
        cls, store: VectorStore, space: str, taxonomy: Taxonomy, vectors: bool = True
    ) -> Shelf:
        """Every item of the store with a vector of `space`, by item id; its vectors only
        with `vectors` (the store's search finds neighbours otherwise)."""
        records = [
            r
            for r in store.scroll(SHELF_FIELDS, Filter(has_vector=space), vector=space)
            if r.vector is not None or not vectors
        ]
        if not records:
            raise NotFoundError(f"the vector store has no {space} vectors; ingest first")
        records.sort(key=lambda r: str(r.payload[ITEM_ID]))
        payloads = [r.payload for r in records]
        products = [str(p[PRODUCT_ID]) for p in payloads]
        product_ids = sorted(set(products))
        codes = {p: n for n, p in enumerate(product_ids)}
        categories = [str(p[CATEGORY]) for p in payloads]
        names = sorted(set(categories) | set(taxonomy.categories))
        position = {c: n for n, c in enumerate(names)}
        matrix = None
        if vectors:
            matrix = np.stack([np.asarray(r.vector, dtype=np.float32) for r in records])
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix = (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        lat, lon = coordinates(p.get(STORE_LOCATION) for p in payloads)
        colours = None
        sizes = {len(p[COLOUR]) for p in payloads if p.get(COLOUR)}
        if len(sizes) == 1:  # items stored before colours were have none: zeros
            (size,) = sizes
            colours = np.array(
                [p.get(COLOUR) or [0.0] * size for p in payloads], dtype=np.float32
            ).reshape(len(payloads), size)
        prices = [p.get(PRICE) for p in payloads]
        return cls(
            [str(p[ITEM_ID]) for p in payloads],
            np.array([codes[p] for p in products], dtype=np.int64),
            product_ids,
            np.array([str(p[GENDER]) for p in payloads]),
            np.array([position[c] for c in categories], dtype=np.int64),
            names,
            np.array([[taxonomy(a, b) for b in names] for a in names], dtype=np.float64),
            matrix,
            [None if p.get(STORE_ID) is None else str(p[STORE_ID]) for p in payloads],
            np.array([p.get(STOCK) == OUT for p in payloads], dtype=bool),
            np.array([np.nan if v is None else float(v) for v in prices], dtype=np.float64),
            lat,
            lon,
            colours,
        )


def best_rows(
    score: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    n: int,
    ties: NDArray[np.int64] | None = None,
) -> NDArray[np.int64]:
    """The rows of the n highest scores among the allowed, in order (ties by `ties`, a
    value per row, then by row)."""
    rows = np.flatnonzero(allowed)
    values = score[rows]
    if n > 0 and 4 * n < len(rows):  # only those at or above the n-th best are sorted
        nth = np.partition(values, len(values) - n)[len(values) - n]
        if not np.isnan(nth):
            top = values >= nth
            rows, values = rows[top], values[top]
    keys = (rows, -values) if ties is None else (rows, ties[rows], -values)
    return rows[np.lexsort(keys)[:n]].astype(np.int64)


class Cosines:
    """The cosines of some rows of a shelf holding vectors to every item, in one matrix
    product (a batch of shoppers' purchases at once)."""

    def __init__(self, shelf: Shelf, rows: Iterable[int]) -> None:
        if shelf.vectors is None:
            raise ValueError("this shelf holds no vectors; the store's search finds neighbours")
        self.rows = sorted({int(r) for r in rows})
        self.at = {row: n for n, row in enumerate(self.rows)}
        self.matrix = shelf.vectors[self.rows] @ shelf.vectors.T

    def looks(self, history: Sequence[int] | NDArray[np.int64]) -> Looked:
        """How items look to one history (rows among those computed)."""
        return Looked(self.matrix[[self.at[int(r)] for r in history]])


class Looked:
    """The cosines of one history's rows to every item (engine.recommend.pool.Looks)."""

    def __init__(self, matrix: NDArray[np.float32]) -> None:
        self.matrix = matrix

    def neighbours(
        self, history: NDArray[np.int64], allowed: NDArray[np.bool_], n: int
    ) -> NDArray[np.int64]:
        best = self.matrix.max(axis=0).astype(np.float64)
        return best_rows(best, allowed, n)

    def similarity(
        self, history: NDArray[np.int64], rows: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        return self.matrix[:, rows].astype(np.float64)
