"""Popularity modes: all-time (initial popularity + purchases, the paper's) or trending, a
purchase count that halves every half-life.

A trending score is kept referred to a fixed time, the anchor: a purchase at t adds
2^((t − anchor)/h), and the score as of T is the stored value times 2^(−(T − anchor)/h).
So a purchase is O(1) (one addition, in any time order), and since every item's score is
scaled by the same factor, the catalog's min–max normalised popularity is the same as of
any time after the last purchase: the stored values rank as the decayed ones do.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final, Literal

from engine.errors import ConfigError
from engine.helpers import choice
from engine.vocabulary.records import Purchase

PopularityMode = Literal["all-time", "trending"]
DEFAULT_HALF_LIFE_DAYS: Final = 14.0
DEFAULT_ANCHOR: Final = datetime(2020, 1, 1, tzinfo=UTC)
MAX_EXPONENT: Final = 900.0  # 2^900 is far below float64's limit; past it the anchor moves
DAY_S: Final = 86_400.0


@dataclass(frozen=True)
class PopularitySettings:
    """Which popularity ranks, and how fast a trending score forgets."""

    mode: PopularityMode = "all-time"
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS

    def validate(self) -> PopularitySettings:
        """Raise ConfigError naming the first bad value."""
        choice(PopularityMode, self.mode, "popularity mode")
        if not (math.isfinite(self.half_life_days) and 1.0 <= self.half_life_days <= 3650.0):
            raise ConfigError(
                f"--half-life must be between 1 and 3650 days, got {self.half_life_days}"
            )
        return self

    def overridden(self, mode: str | None, half_life_days: float | None) -> PopularitySettings:
        """These settings with a command's flags applied (None or "" keeps a value),
        validated."""
        return PopularitySettings(
            mode or self.mode,  # type: ignore[arg-type]  # validated next
            self.half_life_days if half_life_days is None else half_life_days,
        ).validate()

    def text(self) -> str:
        """`trending (half-life 14 days)` or `all-time`."""
        if self.mode == "all-time":
            return "all-time"
        return f"trending (half-life {self.half_life_days:g} days)"


def exponent(t: datetime, anchor: datetime, half_life_days: float) -> float:
    """Half-lives from the anchor to t (negative before it)."""
    return (t - anchor).total_seconds() / (half_life_days * DAY_S)


def weight(t: datetime, anchor: datetime, half_life_days: float) -> float:
    """What one purchase at t adds to a score referred to the anchor."""
    return float(2.0 ** exponent(t, anchor, half_life_days))


def as_of(score: float, when: datetime, anchor: datetime, half_life_days: float) -> float:
    """A score referred to the anchor, as of a time: the decayed purchase count then."""
    return float(score * 2.0 ** -exponent(when, anchor, half_life_days))


def trend_sums(
    purchases: Sequence[Purchase], anchor: datetime, half_life_days: float
) -> dict[str, float]:
    """What the purchases add to each item's trending score referred to the anchor."""
    sums: defaultdict[str, float] = defaultdict(float)
    for p in purchases:
        sums[p.item_id] += weight(p.timestamp, anchor, half_life_days)
    return sums


def midnight(moment: datetime) -> str:
    """The start of a time's day (UTC), as the log writes times: the first anchor."""
    day = moment.astimezone(UTC)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


def needs_new_anchor(t: datetime, anchor: datetime, half_life_days: float) -> bool:
    """Whether a purchase at t would push stored scores towards float64's limit."""
    return exponent(t, anchor, half_life_days) > MAX_EXPONENT


def parse_as_of(text: str | None, now: datetime | None = None) -> datetime:
    """`--as-of`: a date (its last second, UTC), an ISO time with a zone, or None for now."""
    if text is None:
        return now or datetime.now(UTC)
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC)
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--as-of {text!r} is not a date (YYYY-MM-DD) or an ISO time") from None
    if value.tzinfo is None:
        raise ConfigError(f"--as-of {text!r} has no time zone; add one (Z, +02:00)")
    return value.astimezone(UTC)
