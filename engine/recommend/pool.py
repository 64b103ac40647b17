"""Candidates from several sources in one pool, and the features every candidate has.

A user's candidates come from five sources, each the best `n` of the items the shopper is
shown (never a product they bought):
- `visual`: the nearest neighbours of their purchases (the best cosine to any of them);
- `trending`: what sells now (the decayed purchase counts);
- `category`: the best sellers now of each category they bought;
- `copurchase`: what the shoppers who bought their items also bought;
- `colour`: the items whose colours are likest a purchase's (where the shelf has colours).

Every candidate then gets the same features, whichever source brought it (FEATURES), for
one linear scorer (engine.recommend.profile). Pure: the catalog is a `Shelf` of arrays, the
moment's sales a `Moment`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

from engine.popularity.normpop import normalised
from engine.recommend.shelf import Shelf, best_rows

SOURCES: Final = ("visual", "trending", "category", "copurchase", "colour")
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
    "all_time",  # NormPop of the all-time popularity
    "trendy_all_time",  # t · all_time
    "colour_best",  # the best likeness of colours to a purchase (ingest/colour.py)
    "colour_mean",  # the mean likeness of colours to the purchases
    "untrendy_colour",  # (1 − t) · colour_mean
)
PER_SOURCE: Final = 50  # candidates each source brings
PER_CATEGORY: Final = 10  # best sellers of each category bought


@dataclass(frozen=True)
class Moment:
    """The sales as of one moment: each item's decayed purchase count (trending) and its
    all-time popularity (any initial popularity and every purchase so far), each with its
    NormPop, and the purchases before it by shopper code (for co-purchases)."""

    sales: NDArray[np.float64]
    norm: NDArray[np.float64]
    all_time: NDArray[np.float64]
    all_time_norm: NDArray[np.float64]
    buyers: NDArray[np.int64]  # one entry per purchase before the moment
    bought: NDArray[np.int64]  # the item row of each

    @classmethod
    def of(
        cls,
        sales: NDArray[np.float64],
        buyers: NDArray[np.int64],
        bought: NDArray[np.int64],
        initial: NDArray[np.float64] | None = None,
    ) -> Moment:
        """The moment of these sales and purchases, over any initial popularity (NormPop:
        percentile ranks, each popularity breaking the other's ties)."""
        all_time = np.bincount(bought, minlength=len(sales)).astype(np.float64)
        if initial is not None:
            all_time += initial
        return cls(
            sales,
            normalised(sales, "rank", all_time),
            all_time,
            normalised(all_time, "rank", sales),
            buyers,
            bought,
        )

    def copurchases(
        self, history: Sequence[int] | NDArray[np.int64], shopper: int | None
    ) -> NDArray[np.float64]:
        """Per item: how often the other shoppers who bought any of `history` bought it,
        weighted by how many of `history` each bought."""
        rows = len(self.sales)
        if not len(self.bought):
            return np.zeros(rows)
        bought = np.zeros(rows, dtype=bool)
        bought[np.asarray(history, dtype=np.int64)] = True
        hits = bought[self.bought]
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
    sources: NDArray[np.uint8]  # bit i set: SOURCES[i] brought it
    features: NDArray[np.float64]  # rows × FEATURES
    closest: NDArray[np.int64]  # the position in the history of each one's nearest item

    def named(self, n: int) -> tuple[str, ...]:
        """The sources that brought candidate n."""
        return tuple(s for bit, s in enumerate(SOURCES) if self.sources[n] >> bit & 1)

    def subset(self, keep: NDArray[np.bool_]) -> Pool:
        """The candidates kept."""
        return Pool(self.rows[keep], self.sources[keep], self.features[keep], self.closest[keep])

    def without(self, source: str) -> NDArray[np.bool_]:
        """Which candidates another source brought too (all but those only `source` did)."""
        kept: NDArray[np.bool_] = self.sources != np.uint8(1 << SOURCES.index(source))
        return kept


class Looks(Protocol):
    """How items look to the pool: a shelf's own vectors (engine.recommend.shelf), or the
    vector store's search (engine.recommend.blended)."""

    def neighbours(
        self, history: NDArray[np.int64], allowed: NDArray[np.bool_], n: int
    ) -> NDArray[np.int64]:
        """The n allowed rows with the best cosine to any of the history's rows."""
        ...

    def similarity(
        self, history: NDArray[np.int64], rows: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """The cosine of each history row (one a line) to each of the rows."""
        ...


def pool(
    shelf: Shelf,
    looks: Looks,
    moment: Moment,
    history: Sequence[int],
    trendiness: float,
    allowed: NDArray[np.bool_],
    shopper: int | None = None,
    sources: Sequence[str] = SOURCES,
    gamma: float = 2.0,
    per_source: int = PER_SOURCE,
) -> Pool:
    """The candidates, among the allowed rows, of a shopper who bought `history` (item rows,
    oldest first; `shopper` their code in the moment's purchases, if they have one)."""
    hist = np.asarray(history, dtype=np.int64)
    copurchase = moment.copurchases(hist, shopper)
    by_source: dict[str, NDArray[np.int64]] = {}
    if "visual" in sources:
        by_source["visual"] = looks.neighbours(hist, allowed, per_source)
    selling = allowed & (moment.sales > 0)
    if "trending" in sources:
        by_source["trending"] = best_rows(moment.sales, selling, per_source)
    if "category" in sources:
        best = [
            best_rows(moment.sales, selling & (shelf.categories == c), PER_CATEGORY)
            for c in np.unique(shelf.categories[hist])
        ]
        by_source["category"] = np.concatenate(best) if best else np.zeros(0, np.int64)
    if "copurchase" in sources:
        by_source["copurchase"] = best_rows(copurchase, allowed & (copurchase > 0), per_source)
    colours = None if shelf.colours is None else shelf.colours[hist] @ shelf.colours.T
    if "colour" in sources and colours is not None:
        by_source["colour"] = best_rows(colours.max(axis=0).astype(np.float64), allowed, per_source)
    marks = np.zeros(len(shelf), dtype=np.uint8)  # per shelf row: the sources' bits
    for source, found in by_source.items():
        marks[found] |= np.uint8(1 << SOURCES.index(source))
    rows = np.flatnonzero(marks).astype(np.int64)
    brought = marks[rows]
    similarity = looks.similarity(hist, rows).reshape(len(hist), len(rows))
    share = np.bincount(shelf.categories[hist], minlength=len(shelf.category_names)) / len(hist)
    catsim = shelf.catsim[np.unique(shelf.categories[hist])][:, shelf.categories[rows]]
    norm, cop = moment.norm[rows], np.log1p(copurchase[rows])
    mean = similarity.mean(axis=0)
    colour = np.zeros((len(hist), len(rows))) if colours is None else colours[:, rows]
    features = np.column_stack(
        [
            similarity.max(axis=0, initial=-1.0),
            mean,
            similarity[-1],
            norm,
            1.0 - np.abs(norm - trendiness) ** gamma,
            np.log1p(moment.sales[rows]),
            catsim.max(axis=0, initial=0.0),
            share[shelf.categories[rows]],
            cop,
            trendiness * norm,
            (1.0 - trendiness) * mean,
            (1.0 - trendiness) * cop,
            moment.all_time_norm[rows],
            trendiness * moment.all_time_norm[rows],
            colour.max(axis=0, initial=0.0),
            colour.mean(axis=0),
            (1.0 - trendiness) * colour.mean(axis=0),
        ]
    )
    closest = similarity.argmax(axis=0) if len(rows) else np.zeros(0, np.int64)
    return Pool(rows, brought, features.reshape(len(rows), len(FEATURES)), closest)
