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

Every mean is also kept as a running sum (`Sum`, `AccuracySum`), so an evaluation can add
its users a few at a time and keep no per-user list. The sums are exact until the final
rounding (as `math.fsum`), so a mean never depends on how the users were split up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

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


class Sum:
    """A running sum of floats with their count, exact until `total` rounds it once
    (Shewchuk's non-overlapping partials, the algorithm of `math.fsum`)."""

    __slots__ = ("count", "partials")

    def __init__(self) -> None:
        self.partials: list[float] = []
        self.count = 0

    def add(self, value: float) -> None:
        """Add one value."""
        x, kept = float(value), 0
        for y in self.partials:
            if abs(x) < abs(y):
                x, y = y, x
            high = x + y
            low = y - (high - x)
            if low:
                self.partials[kept] = low
                kept += 1
            x = high
        del self.partials[kept:]
        self.partials.append(x)
        self.count += 1

    def extend(self, values: Iterable[float]) -> None:
        """Add each value."""
        for value in values:
            self.add(value)

    @property
    def total(self) -> float:
        """The sum, correctly rounded."""
        return math.fsum(self.partials)

    def mean(self) -> float:
        """The mean, NaN for no values."""
        return self.total / self.count if self.count else math.nan


@dataclass
class AccuracySum:
    """The running sums behind `Accuracy`: add pairs a few at a time."""

    category_sim: Sum = field(default_factory=Sum)
    aligned: Sum = field(default_factory=Sum)
    popularity_error: Sum = field(default_factory=Sum)

    def add(self, pairs: Iterable[Pair]) -> None:
        """Add the pairs."""
        for p in pairs:
            self.category_sim.add(p.category_sim)
            self.aligned.add(p.gender_aligned)
            self.popularity_error.add(abs(p.norm_popularity - p.trendiness))

    def result(self) -> Accuracy:
        """The accuracy of every pair added."""
        if not self.category_sim.count:
            return Accuracy(math.nan, math.nan, math.nan, 0)
        return Accuracy(
            category_similarity=100 * self.category_sim.mean(),
            gender_alignment=100 * self.aligned.mean(),
            popularity_mae=self.popularity_error.mean(),
            pairs=self.category_sim.count,
        )


def accuracy(pairs: Iterable[Pair]) -> Accuracy:
    """Category similarity %, gender alignment % and popularity MAE of the pairs."""
    total = AccuracySum()
    total.add(pairs)
    return total.result()


def coverage(recommended: Iterable[str], catalog_size: int) -> float:
    """Share of the catalog that was recommended at least once."""
    return len(set(recommended)) / catalog_size if catalog_size else math.nan


def list_diversity(vectors: NDArray[np.float32]) -> float | None:
    """1 − mean pairwise cosine of one list's item vectors (rows); None under two items."""
    if len(vectors) < 2:
        return None
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    n = len(unit)
    return float(1.0 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))


def intra_list_diversity(lists: Iterable[NDArray[np.float32]]) -> float:
    """Mean over lists of 1 − mean pairwise cosine (rows are the list's item vectors)."""
    total = Sum()
    total.extend(d for d in map(list_diversity, lists) if d is not None)
    return total.mean()


def surprisal(popularity: Mapping[str, float]) -> Callable[[str], float]:
    """An item's −log2((pop + 1) / (Σ pop + N)) (N = catalog items), the novelty of
    recommending it."""
    total = sum(popularity.values()) + len(popularity)

    def bits(item_id: str) -> float:
        return -math.log2((popularity.get(item_id, 0.0) + 1) / total)

    return bits


def novelty(recommended: Iterable[str], popularity: Mapping[str, float]) -> float:
    """Mean −log2((pop + 1) / (Σ pop + N)) of recommended items (N = catalog items)."""
    total = Sum()
    total.extend(map(surprisal(popularity), recommended))
    return total.mean()


def trend_group(t: float) -> str:
    """low (t < 0.33), medium, high (t ≥ 0.66)."""
    return "low" if t < 0.33 else "high" if t >= 0.66 else "medium"


TREND_GROUPS: Final = ("low", "medium", "high")


def by_trend_group(pairs: Iterable[Pair]) -> dict[str, Accuracy]:
    """Accuracy per trendiness group."""
    groups = {g: AccuracySum() for g in TREND_GROUPS}
    for p in pairs:
        groups[trend_group(p.trendiness)].add([p])
    return {g: total.result() for g, total in groups.items()}


def markdown(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; floats with four significant digits."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "—" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
