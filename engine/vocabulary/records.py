"""The shopper world's records: shops, users and purchases (frozen, no behaviour)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.vocabulary.geo import Location


@dataclass(frozen=True)
class Shop:
    """A physical shop that sells catalog products."""

    id: str
    name: str
    location: Location


@dataclass(frozen=True)
class User:
    """A shopper: gender, trendiness t in [0, 1] and where they live (their residence)."""

    id: str
    gender: str
    trendiness: float
    residence: Location


@dataclass(frozen=True)
class Purchase:
    """One item bought by one user at one time, in the shop that sells it."""

    user_id: str
    item_id: str
    timestamp: datetime
    store_id: str | None
    event_id: str = ""  # "" until the event log gives it one (its own, or a hash)
