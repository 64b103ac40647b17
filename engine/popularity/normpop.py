"""NormPop: the popularity in force (all-time or trending) put on [0, 1], where the rerank
compares it with a shopper's trendiness t.

- `rank` (the default): the percentile rank over the catalog, ties in the popularity in
  force broken by the other one (a trending score's by the all-time popularity, so items
  not sold lately still rank by what they sold before), items still tied given their
  average rank, an item with no score counted as 0. Uniform on [0, 1] like t however few
  items sold lately, and scale-free: under exponential decay
  every trending score shrinks by the same factor, so ranks move only when a purchase
  arrives. Stored in the payload (`popularity_rank`, `trending_rank`) so the formula inside
  Qdrant reads the same value as the client rerank.
- `minmax`: (s − min) / (max − min) over the catalog (the paper's). A few best-sellers
  squash every other item towards 0: with decayed scores almost the whole catalog sits at 0.
- `saturation`: s / (s + pivot), the pivot the geometric mean of the positive scores
  (Elasticsearch's `rank_feature` default; Vespa's `halfResponse`). Measured by the
  evaluation only: its pivot is a catalog-wide statistic the payload does not keep.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from engine.helpers import choice, minmax

Normalise = Literal["rank", "minmax", "saturation"]
Stored = Literal["rank", "minmax"]  # what a recommendation may rank with
NORMALISES: Final[dict[str, Normalise]] = {
    "rank": "rank",
    "minmax": "minmax",
    "saturation": "saturation",
}
DEFAULT_NORMALISE: Final[Stored] = "rank"
DIGITS: Final = 6  # stored ranks are rounded: equal ranks share one payload write


def normalise_named(text: str, what: str = "--normalise") -> Normalise:
    """How to normalise, by its name; ConfigError listing the names otherwise."""
    choice(Normalise, text, what)
    return NORMALISES[text]


def percentile_ranks(values: ArrayLike, tiebreak: ArrayLike | None = None) -> NDArray[np.float64]:
    """Each item's percentile rank among all, 0 for the lowest and 1 for the highest: by
    value, then (where values tie) by `tiebreak`; items still tied share their average rank.
    A missing value counts as 0, below every score. One item, or all tied: 0.5."""
    scores = _present(values)
    n = len(scores)
    if n <= 1:
        return np.full(n, 0.5)
    change = np.empty(n, dtype=bool)  # in sorted order: where a new tie group starts
    change[0] = True
    if tiebreak is None:
        order = np.argsort(scores, kind="stable")
        a = scores[order]
        np.not_equal(a[1:], a[:-1], out=change[1:])
    else:
        second = _present(tiebreak)
        order = np.lexsort((second, scores))
        a, b = scores[order], second[order]
        np.not_equal(a[1:], a[:-1], out=change[1:])
        change[1:] |= b[1:] != b[:-1]
    starts = np.flatnonzero(change)
    ranks = np.empty(n)
    if len(starts) == n:  # no ties
        ranks[order] = np.arange(n, dtype=np.float64)
    else:  # the mean 0-based rank of each tie group
        ends = np.append(starts[1:], n)
        ranks[order] = ((starts + ends - 1) * 0.5)[np.cumsum(change) - 1]
    return ranks / (n - 1)


def _present(values: ArrayLike) -> NDArray[np.float64]:
    """The values as floats, a missing one (NaN) as 0."""
    scores = np.asarray(values, dtype=np.float64)
    return np.nan_to_num(scores, nan=0.0) if np.isnan(scores).any() else scores


def pivot(values: ArrayLike) -> float:
    """The geometric mean of the positive values (1 when there are none)."""
    scores = np.asarray(values, dtype=np.float64)
    positive = scores[scores > 0]
    return float(np.exp(np.log(positive).mean())) if len(positive) else 1.0


def saturation(values: ArrayLike, at: float) -> NDArray[np.float64]:
    """s / (s + pivot): 0.5 at the pivot, towards 1 for the best-sellers."""
    scores = np.maximum(np.asarray(values, dtype=np.float64), 0.0)
    return scores / (scores + at)


def normalised(
    values: ArrayLike, how: Normalise, tiebreak: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Every item's NormPop over the catalog's values (ranks: ties broken by `tiebreak`)."""
    scores = np.asarray(values, dtype=np.float64)
    if how == "rank":
        return percentile_ranks(scores, tiebreak)
    if how == "saturation":
        return saturation(scores, pivot(scores))
    if not len(scores):
        return np.zeros(0)
    return minmax(scores, float(scores.min()), float(scores.max()))
