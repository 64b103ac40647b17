"""The catalog as the blended ranking reads it (engine.recommend.pool): its items' fields
and unit vectors of one space, as arrays, read from the vector store once."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from engine.catalog.taxonomy import Taxonomy
from engine.errors import NotFoundError
from engine.vectorstore.base import VectorStore
from engine.vocabulary.schema import CATEGORY, GENDER, ITEM_ID, PRODUCT_ID


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
    vectors: NDArray[np.float32]  # unit rows of the searched space
    index: dict[str, int] = field(default_factory=dict)
    _shown: dict[frozenset[str], NDArray[np.bool_]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {item: row for row, item in enumerate(self.item_ids)}

    def __len__(self) -> int:
        return len(self.item_ids)

    def shown(self, genders: frozenset[str] | None) -> NDArray[np.bool_]:
        """Which items a shopper shown these genders sees (every item for None)."""
        if genders is None:
            return np.ones(len(self), dtype=bool)
        if genders not in self._shown:
            self._shown[genders] = np.isin(self.genders, sorted(genders))
        return self._shown[genders]

    @classmethod
    def of_store(cls, store: VectorStore, space: str, taxonomy: Taxonomy) -> Shelf:
        """Every item of the store with a vector of `space`, by item id."""
        records = [
            r
            for r in store.scroll((ITEM_ID, PRODUCT_ID, GENDER, CATEGORY), vector=space)
            if r.vector is not None
        ]
        if not records:
            raise NotFoundError(f"the vector store has no {space} vectors; ingest first")
        records.sort(key=lambda r: str(r.payload[ITEM_ID]))
        products = [str(r.payload[PRODUCT_ID]) for r in records]
        product_ids = sorted(set(products))
        codes = {p: n for n, p in enumerate(product_ids)}
        categories = [str(r.payload[CATEGORY]) for r in records]
        names = sorted(set(categories) | set(taxonomy.categories))
        position = {c: n for n, c in enumerate(names)}
        vectors = np.stack([np.asarray(r.vector, dtype=np.float32) for r in records])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return cls(
            [str(r.payload[ITEM_ID]) for r in records],
            np.array([codes[p] for p in products], dtype=np.int64),
            product_ids,
            np.array([str(r.payload[GENDER]) for r in records]),
            np.array([position[c] for c in categories], dtype=np.int64),
            names,
            np.array([[taxonomy(a, b) for b in names] for a in names], dtype=np.float64),
            (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32),
        )
