"""Recommendation quality metrics over arrays and lists (pure), and their markdown tables.

- category similarity: mean CatSim(purchased item, recommended item), in %;
- gender alignment: share of recommended items whose own (payload) gender is one the user's
  gender is shown (the taxonomy's compatibility: MEN sees MEN and UNISEX, …);
- popularity MAE: mean |NormPop(recommended) − t|, on [0, 1] and ×100;
- catalog coverage: distinct recommended items / catalog items;
- intra-list diversity: 1 − mean pairwise cosine of the items within a list;
- novelty: mean −log2 of a recommended item's popularity share, with add-one smoothing
  (pop + 1) / (Σ pop + N), so unpurchased items stay finite;
- next-purchase hit rate@k: the user's held-out last purchase (its product) is in the
  merged top-k built from the earlier purchases; recall@k: it is in any per-purchase top-k.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Pair:
    """One (purchase, recommendation) pair of an evaluation."""

    user_gender: str
    trendiness: float
    purchased_category: str
    item_id: str
    category: str
    gender: str
    norm_popularity: float
    category_sim: float
    shown: frozenset[str] = frozenset()  # the item genders the user is shown (default: theirs)

    @property
    def gender_aligned(self) -> bool:
        """Whether the recommended item's own gender is one the user is shown."""
        return self.gender in (self.shown or {self.user_gender})


@dataclass(frozen=True)
class Accuracy:
    """The paper's three accuracy metrics over a set of pairs."""

    category_similarity: float  # %, mean CatSim
    gender_alignment: float  # %
    popularity_mae: float  # on [0, 1]
    pairs: int

    @property
    def popularity_mae_x100(self) -> float:
        """Popularity MAE on the ×100 scale."""
        return self.popularity_mae * 100


def accuracy(pairs: Sequence[Pair]) -> Accuracy:
    """Category similarity %, gender alignment % and popularity MAE of the pairs."""
    if not pairs:
        return Accuracy(math.nan, math.nan, math.nan, 0)
    return Accuracy(
        category_similarity=100 * float(np.mean([p.category_sim for p in pairs])),
        gender_alignment=100 * float(np.mean([p.gender_aligned for p in pairs])),
        popularity_mae=float(np.mean([abs(p.norm_popularity - p.trendiness) for p in pairs])),
        pairs=len(pairs),
    )


def coverage(recommended: Iterable[str], catalog_size: int) -> float:
    """Share of the catalog that was recommended at least once."""
    return len(set(recommended)) / catalog_size if catalog_size else math.nan


def intra_list_diversity(lists: Sequence[NDArray[np.float32]]) -> float:
    """Mean over lists of 1 − mean pairwise cosine (rows are the list's item vectors)."""
    values = []
    for vectors in lists:
        if len(vectors) < 2:
            continue
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        sims = unit @ unit.T
        n = len(unit)
        values.append(1.0 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))
    return float(np.mean(values)) if values else math.nan


def novelty(recommended: Sequence[str], popularity: Mapping[str, float]) -> float:
    """Mean −log2((pop + 1) / (Σ pop + N)) of recommended items (N = catalog items)."""
    if not recommended:
        return math.nan
    total = sum(popularity.values()) + len(popularity)
    return float(np.mean([-math.log2((popularity.get(i, 0.0) + 1) / total) for i in recommended]))


def trend_group(t: float) -> str:
    """low (t < 0.33), medium, high (t ≥ 0.66)."""
    return "low" if t < 0.33 else "high" if t >= 0.66 else "medium"


def by_trend_group(pairs: Sequence[Pair]) -> dict[str, Accuracy]:
    """Accuracy per trendiness group."""
    groups: dict[str, list[Pair]] = defaultdict(list)
    for p in pairs:
        groups[trend_group(p.trendiness)].append(p)
    return {g: accuracy(groups[g]) for g in ("low", "medium", "high")}


def markdown(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; floats with four significant digits."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "—" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
