"""The catalog's most popular items, all-time or trending, as of a time: what a merchandiser
asks first (`fashionrec popularity top`)."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime

from engine.events.eventlog import EventLog
from engine.events.trending import PopularitySettings
from engine.vectorstore.base import Filter, VectorStore
from engine.vocabulary.schema import CATEGORY, GENDER, ITEM_ID, NAME, PRICE, STORE_ID


@dataclass(frozen=True)
class Popular:
    """One item of the top list."""

    rank: int
    item_id: str
    gender: str
    category: str
    store_id: str | None
    score: float  # all-time: initial popularity + purchases; trending: decayed purchases
    purchases: int  # purchases up to the time asked, whatever the mode
    name: str | None = None  # the shop's own name and price, where the catalog has them
    price: float | None = None


def top_items(
    store: VectorStore,
    log: EventLog,
    settings: PopularitySettings,
    when: datetime,
    n: int = 20,
    gender: str | None = None,
    category: str | None = None,
) -> list[Popular]:
    """The n catalog items with the highest score as of `when` (ties by item id), of one
    gender and category when given; purchases after `when` do not count."""
    equals = {k: v for k, v in ((GENDER, gender), (CATEGORY, category)) if v}
    items = {
        str(r.payload[ITEM_ID]): r.payload
        for r in store.scroll(
            (ITEM_ID, GENDER, CATEGORY, STORE_ID, NAME, PRICE), Filter(equals=equals)
        )
    }
    counts = log.purchases_as_of(when)
    if settings.mode == "trending":
        scores = log.trending_as_of(when, settings.half_life_days)
    else:
        initial = log.initial_popularity()
        scores = {i: float(initial.get(i, 0) + counts.get(i, 0)) for i in items}
    best = heapq.nsmallest(n, items, key=lambda i: (-scores.get(i, 0.0), i))
    return [
        Popular(
            rank,
            item,
            str(items[item].get(GENDER)),
            str(items[item].get(CATEGORY)),
            None if items[item].get(STORE_ID) is None else str(items[item][STORE_ID]),
            scores.get(item, 0.0),
            counts.get(item, 0),
            None if items[item].get(NAME) is None else str(items[item][NAME]),
            None if items[item].get(PRICE) is None else float(items[item][PRICE]),
        )
        for rank, item in enumerate(best, start=1)
    ]
