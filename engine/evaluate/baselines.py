"""The baselines every system is compared with: random or most-popular items of the user's
gender, never a product already bought (pure, seeded)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from engine.recommend.rerank import Popularity, Recommendation
from engine.vocabulary.records import Purchase
from engine.vocabulary.schema import CATEGORY, GENDER, PRODUCT_ID, STORE_ID

Baseline = Literal["random", "popular"]


def baseline_list(
    kind: Baseline,
    bought: Sequence[Purchase],
    pool: Sequence[str],
    items: Mapping[str, Mapping[str, Any]],
    popularity: Popularity,
    category_similarity: Callable[[str, str], float],
    k: int,
    rng: np.random.Generator,
) -> list[Recommendation]:
    """k items of distinct products from the pool (the user's gender, sorted by item id),
    never a bought product: in random order, or most popular first (ties by item id)."""
    excluded = {str(items[p.item_id][PRODUCT_ID]) for p in bought}
    candidates = [i for i in pool if str(items[i][PRODUCT_ID]) not in excluded]
    values = popularity.values
    if kind == "random":
        order = [candidates[i] for i in rng.permutation(len(candidates))]
    else:
        order = sorted(candidates, key=lambda i: (-values.get(i, 0.0), i))
    chosen: list[str] = []
    products: set[str] = set()
    for item_id in order:
        if str(items[item_id][PRODUCT_ID]) not in products:
            products.add(str(items[item_id][PRODUCT_ID]))
            chosen.append(item_id)
        if len(chosen) == k:
            break
    raw, norm = popularity.of(chosen)
    query = str(items[bought[-1].item_id][CATEGORY])
    nan = float("nan")
    return [
        Recommendation(
            rank=n,
            item_id=i,
            product_id=str(items[i][PRODUCT_ID]),
            category=str(items[i][CATEGORY]),
            gender=str(items[i][GENDER]),
            store_id=items[i].get(STORE_ID),
            distance_km=None,
            visual=nan,
            popularity=float(raw[n - 1]),
            norm_popularity=float(norm[n - 1]),
            popularity_term=nan,
            category_sim=category_similarity(query, str(items[i][CATEGORY])),
            relevance=nan,
            query_item=bought[-1].item_id,
        )
        for n, i in enumerate(chosen, start=1)
    ]
