"""Weights learned from a shop's own sales: a time split of its purchase log, candidate
pools as of each purchase (engine.recommend.pool), and a logistic regression on their rows
(bought next or not), whose coefficients are the profile's linear weights.

Nothing is fitted on what it is scored on: a purchase is a target only with the sales and
co-purchases before it, and the validation's purchases are each shopper's later ones
(after the split), never fitted on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from engine.catalog.taxonomy import Taxonomy
from engine.errors import ConfigError
from engine.events.trending import DAY_S
from engine.recommend.pool import FEATURES, SOURCES, Moment, Pool, pool
from engine.recommend.profile import PRESET_PROFILES, Profile, ranked
from engine.recommend.shelf import Cosines, Shelf
from engine.vocabulary.records import Purchase, User

MIN_SHOPPERS: Final = 30  # shoppers with ≥ 2 purchases a fit needs
PER_SHOPPER: Final = 5  # targets per shopper at most (their latest)
K: Final = 10  # hit rate@K validates
VALIDATION: Final = 0.2  # the latest share of the purchases validates


@dataclass(frozen=True)
class Example:
    """One purchase to predict: who, from which earlier purchases, when."""

    shopper: int
    history: tuple[int, ...]  # item rows, oldest first
    target: int
    second: float


@dataclass
class Log:
    """Purchases as arrays, in time order, over a shelf's rows; the shoppers' trendiness
    and the genders each is shown."""

    shoppers: NDArray[np.int64]
    items: NDArray[np.int64]
    seconds: NDArray[np.float64]
    trendiness: NDArray[np.float64]
    shown: list[frozenset[str]]
    half_life_s: float
    size: int  # the shelf's rows
    initial: NDArray[np.float64] | None = None  # each row's initial popularity, if any

    @classmethod
    def of(
        cls,
        users: Sequence[User],
        purchases: Iterable[Purchase],
        shelf: Shelf,
        taxonomy: Taxonomy,
        half_life_s: float,
        start: datetime,
        initial: Mapping[str, float] | None = None,
    ) -> Log:
        """The purchases of these users of items on the shelf (others left out), over the
        items' initial popularity (by item id) if they have one."""
        code = {u.id: n for n, u in enumerate(users)}
        rows = [
            (code[p.user_id], shelf.index[p.item_id], (p.timestamp - start).total_seconds())
            for p in purchases
            if p.user_id in code and p.item_id in shelf.index
        ]
        rows.sort(key=lambda r: (r[2], r[0], r[1]))
        array = np.array(rows, dtype=np.float64).reshape(-1, 3)
        return cls(
            array[:, 0].astype(np.int64),
            array[:, 1].astype(np.int64),
            array[:, 2],
            np.array([u.trendiness for u in users], dtype=np.float64),
            [frozenset(taxonomy.shown_to(u.gender)) for u in users],
            half_life_s,
            len(shelf),
            None
            if initial is None
            else np.array([float(initial.get(i, 0.0)) for i in shelf.item_ids], np.float64),
        )

    def extended(
        self,
        shoppers: NDArray[np.int64],
        items: NDArray[np.int64],
        seconds: NDArray[np.float64],
        trendiness: NDArray[np.float64],
        shown: list[frozenset[str]],
    ) -> Log | None:
        """This log with later purchases appended (by shopper code and shelf row; the
        shoppers' trendiness and genders shown, new ones included), or None when one is
        earlier than the latest held (an import of old sales: read the log again)."""
        order = np.lexsort((items, shoppers, seconds))
        if len(order) and len(self.seconds) and seconds[order[0]] < self.seconds[-1]:
            return None
        return Log(
            np.concatenate([self.shoppers, shoppers[order]]),
            np.concatenate([self.items, items[order]]),
            np.concatenate([self.seconds, seconds[order]]),
            trendiness,
            shown,
            self.half_life_s,
            self.size,
            self.initial,
        )

    def moment(self, second: float, kept: NDArray[np.bool_] | None = None) -> Moment:
        """The sales before `second` (of the kept purchases only)."""
        before = self.seconds < second
        if kept is not None:
            before &= kept
        items, seconds = self.items[before], self.seconds[before]
        n = self.size
        decayed = 2.0 ** ((seconds - second) / self.half_life_s)
        return Moment.of(
            np.bincount(items, weights=decayed, minlength=n).astype(np.float64),
            self.shoppers[before],
            items,
            self.initial,
        )

    def examples(self, kept: NDArray[np.bool_], after: float = -np.inf) -> list[Example]:
        """Each kept purchase after `after` with earlier kept purchases of its shopper (at
        most PER_SHOPPER per shopper, their latest), whose product is new to them."""
        found: list[Example] = []
        order = np.flatnonzero(kept)
        by_shopper: dict[int, list[int]] = {}
        for i in order.tolist():
            by_shopper.setdefault(int(self.shoppers[i]), []).append(i)
        for shopper, indices in sorted(by_shopper.items()):
            mine = [
                Example(shopper, tuple(self.items[indices[:n]].tolist()), int(self.items[i]), s)
                for n, i in enumerate(indices)
                if n > 0 and (s := float(self.seconds[i])) >= after and self._new(indices[:n], i)
            ]
            found += mine[-PER_SHOPPER:]
        return found

    def _new(self, earlier: list[int], i: int) -> bool:
        """Whether purchase i's item is none of the earlier purchases' items."""
        return int(self.items[i]) not in set(self.items[earlier].tolist())


FIT_PERIOD: Final = DAY_S  # fitted examples see the sales as of the start of their day
BATCH: Final = 256  # examples whose purchases' cosines are computed in one product


def pools(
    shelf: Shelf,
    log: Log,
    examples: Sequence[Example],
    kept: NDArray[np.bool_] | None = None,
    sources: Sequence[str] = SOURCES,
    granularity: float = 0.0,
) -> Iterator[tuple[Example, Pool]]:
    """Each example's candidate pool, with the sales and co-purchases (of the kept
    purchases) just before it — or, with a `granularity` (seconds), as they stood at the
    start of its period (a day: never later, so never the purchase itself; the examples
    of one day share one moment); the cosines a batch of examples at a time."""
    held: tuple[float, Moment] | None = None  # one moment: examples in time order share it
    for start in range(0, len(examples), BATCH):
        batch = examples[start : start + BATCH]
        cosines = Cosines(shelf, (row for e in batch for row in e.history))
        for example in batch:
            second = example.second
            if granularity:
                second = second // granularity * granularity
            if held is None or held[0] != second:
                held = (second, log.moment(second, kept))
            moment = held[1]
            shown = log.shown[example.shopper]
            found = pool(
                shelf,
                cosines.looks(example.history),
                moment,
                example.history,
                float(log.trendiness[example.shopper]),
                shelf.allowed(example.history, shown),
                example.shopper,
                sources,
            )
            yield example, found


def hit_rates(
    shelf: Shelf, log: Log, examples: Sequence[Example], profiles: Sequence[Profile], k: int = K
) -> dict[str, NDArray[np.float64]]:
    """Per profile and example: 1 when the example's target product is in its top k."""
    hits: dict[str, list[float]] = {p.name: [] for p in profiles}
    for example, found in pools(shelf, log, examples):
        target = shelf.products[example.target]
        for profile in profiles:
            listed = ranked(found, profile.scores(found), shelf.products, k)
            hits[profile.name].append(float(target in shelf.products[listed]))
    return {name: np.array(values) for name, values in hits.items()}


def fit(
    shelf: Shelf, log: Log, examples: Sequence[Example], kept: NDArray[np.bool_] | None = None
) -> dict[str, float]:
    """The linear weights that best tell each example's target among its pool."""
    rows, labels = [], []
    in_time = sorted(examples, key=lambda e: e.second)  # a day's examples, one moment
    for example, found in pools(shelf, log, in_time, kept, granularity=FIT_PERIOD):
        y = shelf.products[found.rows] == shelf.products[example.target]
        if y.any():
            rows.append(found.features)
            labels.append(y)
    x = np.vstack(rows) if rows else np.zeros((0, len(FEATURES)))
    y = np.concatenate(labels) if labels else np.zeros(0, dtype=bool)
    if not y.any() or y.all():  # none bought, or every one: nothing tells them apart
        raise ConfigError(
            f"{len(rows)} of {len(examples)} purchases were among their candidates, with "
            "nothing to tell them apart; too few to fit"
        )
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=1.0, max_iter=2000).fit((x - mean) / scale, y)
    weights = model.coef_[0] / scale
    return {f: round(float(w), 6) for f, w in zip(FEATURES, weights, strict=True)}


def tune(shelf: Shelf, log: Log, start: datetime, space: str) -> Profile:
    """Fit on the purchases before the split, validate on each shopper's later ones (the
    latest VALIDATION share of the log); ConfigError when the log is too small."""
    counts = np.bincount(log.shoppers, minlength=len(log.trendiness))
    enough = int((counts >= 2).sum())
    if enough < MIN_SHOPPERS:
        raise ConfigError(
            f"the log has {enough} shoppers with 2 or more purchases; tuning needs at least "
            f"{MIN_SHOPPERS} (the hand-set weights stay in use)"
        )
    split = float(np.quantile(log.seconds, 1.0 - VALIDATION))
    every = np.ones(len(log.items), dtype=bool)
    fitted_on = log.examples(log.seconds < split)
    validated_on = log.examples(every, after=split)
    if not validated_on:
        raise ConfigError("no shopper bought again after the split; nothing to validate on")
    weights = fit(shelf, log, fitted_on)
    tuned = Profile("tuned", weights)
    found = hit_rates(shelf, log, validated_on, (tuned, *PRESET_PROFILES.values()))
    scores = {name: float(values.mean()) for name, values in found.items()}
    when = start.timestamp() + split
    return Profile(
        "tuned",
        weights,
        {name: round(v, 4) for name, v in scores.items()},
        {
            "split": datetime.fromtimestamp(when, tz=start.tzinfo).isoformat(),
            "fitted_purchases": len(fitted_on),
            "validated_purchases": len(validated_on),
            "shoppers": enough,
            "space": space,
            "k": K,
        },
    )
