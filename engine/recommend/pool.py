"""Candidates from several sources in one pool, and the features every candidate has.

A user's candidates come from four sources, each the best `n` of the items the shopper is
shown (never a product they bought):
- `visual`: the nearest neighbours of their purchases (the best cosine to any of them);
- `trending`: what sells now (the decayed purchase counts);
- `category`: the best sellers now of each category they bought;
- `copurchase`: what the shoppers who bought their items also bought.

Every candidate then gets the same features, whichever source brought it (FEATURES), for
one linear scorer (engine.recommend.profile). Pure: the catalog is a `Shelf` of arrays, the
moment's sales a `Moment`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from engine.popularity.normpop import normalised
from engine.recommend.shelf import Shelf

SOURCES: Final = ("visual", "trending", "category", "copurchase")
FEATURES: Final = (
    "visual_best",  # the best cosine to a purchase
    "visual_mean",  # the mean cosine to the purchases
    "visual_last",  # the cosine to the latest purchase
    "popularity",  # NormPop: the percentile rank of the sales now
    "match",  # the paper's 1 − |NormPop − t|^γ
    "sales",  # log(1 + sales now)
    "category",  # the best CatSim to a purchase's category
    "category_share",  # the share of the purchases in the candidate's category
    "copurchase",  # log(1 + co-purchases with the purchases)
    "trendy_popularity",  # t · NormPop
    "untrendy_visual",  # (1 − t) · visual_mean
    "untrendy_copurchase",  # (1 − t) · copurchase
)
PER_SOURCE: Final = 50  # candidates each source brings
PER_CATEGORY: Final = 10  # best sellers of each category bought


@dataclass(frozen=True)
class Moment:
    """The sales as of one moment: each item's decayed purchase count and its NormPop,
    and the purchases before it by shopper code (for co-purchases)."""

    sales: NDArray[np.float64]
    norm: NDArray[np.float64]
    buyers: NDArray[np.int64]  # one entry per purchase before the moment
    bought: NDArray[np.int64]  # the item row of each

    @classmethod
    def of(
        cls,
        sales: NDArray[np.float64],
        buyers: NDArray[np.int64],
        bought: NDArray[np.int64],
        tiebreak: NDArray[np.float64] | None = None,
    ) -> Moment:
        """The moment of these sales (NormPop: percentile ranks, ties by `tiebreak`)."""
        return cls(sales, normalised(sales, "rank", tiebreak), buyers, bought)

    def copurchases(
        self, history: Sequence[int] | NDArray[np.int64], shopper: int | None
    ) -> NDArray[np.float64]:
        """Per item: how often the other shoppers who bought any of `history` bought it,
        weighted by how many of `history` each bought."""
        rows = len(self.sales)
        if not len(self.bought):
            return np.zeros(rows)
        hits = np.isin(self.bought, np.asarray(history))
        weight = np.bincount(self.buyers[hits], minlength=int(self.buyers.max()) + 1)
        if shopper is not None and shopper < len(weight):
            weight[shopper] = 0
        return np.bincount(self.bought, weights=weight[self.buyers], minlength=rows).astype(
            np.float64
        )


@dataclass(frozen=True)
class Pool:
    """One query's candidates: their rows, which sources brought each, their features."""

    rows: NDArray[np.int64]
    sources: list[tuple[str, ...]]
    features: NDArray[np.float64]  # rows × FEATURES


def pool(
    shelf: Shelf,
    moment: Moment,
    history: Sequence[int],
    trendiness: float,
    genders: frozenset[str] | None,
    shopper: int | None = None,
    sources: Sequence[str] = SOURCES,
    gamma: float = 2.0,
    per_source: int = PER_SOURCE,
) -> Pool:
    """The candidates of a shopper who bought `history` (item rows, oldest first)."""
    hist = np.asarray(history, dtype=np.int64)
    allowed = shelf.shown(genders) & ~np.isin(shelf.products, shelf.products[hist])
    similarity = shelf.vectors[hist] @ shelf.vectors.T
    best = similarity.max(axis=0)
    copurchase = moment.copurchases(hist, shopper)
    by_source: dict[str, NDArray[np.int64]] = {}
    if "visual" in sources:
        by_source["visual"] = _best(best, allowed, per_source)
    if "trending" in sources:
        by_source["trending"] = _best(moment.sales, allowed & (moment.sales > 0), per_source)
    if "category" in sources:
        bought = np.unique(shelf.categories[hist])
        selling = allowed & (moment.sales > 0)
        found = [
            _best(moment.sales, selling & (shelf.categories == c), PER_CATEGORY) for c in bought
        ]
        by_source["category"] = np.concatenate(found) if found else np.zeros(0, np.int64)
    if "copurchase" in sources:
        by_source["copurchase"] = _best(copurchase, allowed & (copurchase > 0), per_source)
    rows = np.unique(np.concatenate([*by_source.values(), np.zeros(0, np.int64)]))
    brought = [tuple(s for s, found in by_source.items() if row in found) for row in rows]
    counts = np.bincount(shelf.categories[hist], minlength=len(shelf.category_names))
    share = counts / len(hist)
    norm, sales = moment.norm[rows], np.log1p(moment.sales[rows])
    mean, cop = similarity[:, rows].mean(axis=0), np.log1p(copurchase[rows])
    features = np.column_stack(
        [
            best[rows],
            mean,
            similarity[-1, rows],
            norm,
            1.0 - np.abs(norm - trendiness) ** gamma,
            sales,
            shelf.catsim[np.unique(shelf.categories[hist])][:, shelf.categories[rows]].max(axis=0)
            if len(rows)
            else np.zeros(0),
            share[shelf.categories[rows]],
            cop,
            trendiness * norm,
            (1.0 - trendiness) * mean,
            (1.0 - trendiness) * cop,
        ]
    )
    return Pool(rows, brought, features.reshape(len(rows), len(FEATURES)))


def _best(score: NDArray[np.float64], allowed: NDArray[np.bool_], n: int) -> NDArray[np.int64]:
    """The rows of the n highest scores among the allowed (ties by row)."""
    rows = np.flatnonzero(allowed)
    if len(rows) > n:
        rows = rows[np.lexsort((rows, -score[rows]))[:n]]
    return rows.astype(np.int64)
