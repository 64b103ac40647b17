"""Diversity: maximal marginal relevance (MMR) over ranked candidates, and intra-list diversity.

MMR with diversity λ ∈ [0, 1] picks greedily from the candidates. The first pick is the
most relevant candidate; every later pick is, among the candidates not picked yet,

    argmax  (1 − λ)·relevance_i − λ·max_{j picked} cos(v_i, v_j)

until k distinct products are listed or the candidates run out. Every pick counts as
picked (it weighs in the max), but only the first pick of each product is listed: a later
view of a listed product is passed over. λ = 0 is the relevance order (the one view per
product of `best_per_product`); λ = 1 ignores relevance after the first pick.

With relevance = cos(query, v_i) this is exactly Qdrant's MMR (`diversity` = λ; Qdrant
Edge's `lambda_` = 1 − λ) followed by one view per product, which is how the rerank
inside Qdrant uses it. Ties go to the earlier candidate: callers order the candidates by
relevance, then item id.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from engine.errors import ConfigError

FloatArray = NDArray[np.float64]


def unit_rows(vectors: NDArray[np.floating]) -> FloatArray:
    """The rows scaled to unit length (zero rows stay zero), in float64."""
    rows = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms == 0, 1.0, norms)


def check_diversity(diversity: float) -> float:
    """λ itself; ConfigError unless it lies in [0, 1]."""
    if not 0.0 <= diversity <= 1.0:
        raise ConfigError(f"diversity must be in [0, 1], got {diversity}")
    return diversity


def mmr(
    relevance: Sequence[float] | FloatArray,
    vectors: NDArray[np.floating],
    diversity: float,
    k: int,
    products: Sequence[str] | None = None,
) -> list[int]:
    """Indices of the listed candidates in the order MMR picks them (see the module).

    relevance and vectors have one entry (row) per candidate; products, when given, lists
    one view per product (None: every candidate is its own product).
    """
    check_diversity(diversity)
    scores = np.asarray(relevance, dtype=np.float64)
    n = len(scores)
    if n == 0 or k <= 0:
        return []
    units = unit_rows(np.asarray(vectors).reshape(n, -1))
    groups = list(range(n)) if products is None else list(products)
    pending = np.ones(n, dtype=bool)
    closest = np.full(n, -np.inf)  # max cosine to anything picked so far
    listed: list[int] = []
    seen: set[object] = set()
    pick = int(np.argmax(scores))
    while True:
        pending[pick] = False
        if groups[pick] not in seen:
            seen.add(groups[pick])
            listed.append(pick)
            if len(listed) == k:
                return listed
        if not pending.any():
            return listed
        np.maximum(closest, units @ units[pick], out=closest)
        marginal = (1.0 - diversity) * scores - diversity * closest
        pick = int(np.argmax(np.where(pending, marginal, -np.inf)))


def intra_list_diversity(vectors: NDArray[np.floating]) -> float:
    """Mean pairwise 1 − cos over a list's vectors (0 for fewer than two items).

    0 when every item looks the same, 1 when they are orthogonal on average (up to 2
    for opposite vectors; CNN features after a ReLU are non-negative, so at most 1).
    """
    rows = np.asarray(vectors)
    n = len(rows)
    if n < 2:
        return 0.0
    units = unit_rows(rows.reshape(n, -1))
    cosines = units @ units.T
    upper = cosines[np.triu_indices(n, k=1)]
    return float(np.mean(1.0 - upper))
