"""What the use-cases answer (engine/application.py): dataclasses that the command line renders,
and `plain`, the one builder of their JSON documents (`--json` and the service): NaN and
infinities become null, times ISO 8601, paths text."""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from engine.recommend.profile import Profile
from engine.recommend.rerank import Recommendation
from engine.recommend.scoring import Weights
from engine.vocabulary.geo import Location
from engine.vocabulary.records import Shop, User


def plain(value: Any) -> Any:
    """A document as JSON-ready values: dataclasses and mappings as objects, sequences as
    lists, non-finite numbers as None (JSON has no NaN), times in ISO 8601, paths as text."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass(frozen=True)
class Vectors:
    """The space searched and what made its vectors: weights per label (points), and for a
    compact space the backbone it was projected from, with that backbone's weights."""

    space: str
    weights: dict[str, int]
    taxonomy: str
    source: dict[str, Any] | None = None  # {"backbone": …, "weights": {label: points}}

    @property
    def underlying(self) -> dict[str, int]:
        """The weights that embedded the photos (a compact space's source's)."""
        return dict(self.source["weights"]) if self.source else self.weights

    @property
    def meaningful(self) -> bool:
        """Whether the visual similarity means anything (not random-init weights)."""
        return bool(self.underlying) and not any("random" in w for w in self.underlying)


@dataclass(frozen=True)
class Ranked:
    """One list: its name (`like ITEM`, `after ITEM`, `merged`) and its recommendations."""

    list: str
    recommendations: builtins.list[Recommendation]


@dataclass(frozen=True)
class Recommended:
    """Recommendations for an item (`item`) or a user (`user`): every term of each, the
    weights, the popularity in force, the vectors' provenance and the search strategy."""

    vectors: Vectors
    weights: Weights
    popularity: str  # the mode in force, as text
    lists: list[Ranked]
    item: str | None = None
    user: User | None = None
    normalise: str = "rank"  # how NormPop was made: percentile rank, or min–max
    strategy: str = "client"  # the search strategy that ran (engine/recommend/strategies.py)
    profile: Profile | None = None  # the fitted profile that ranked (strategy "blended")


def recommended_from(document: Mapping[str, Any]) -> Recommended:
    """A Recommended read back from its JSON document (`plain`'s inverse): what a client
    of the service renders as the command line renders its own."""
    vectors = document["vectors"]
    user = document.get("user")
    return Recommended(
        Vectors(vectors["space"], dict(vectors["weights"]), vectors["taxonomy"], vectors["source"]),
        Weights(**document["weights"]),
        str(document["popularity"]),
        [
            Ranked(
                ranked["list"],
                [
                    Recommendation(**{**r, "sources": tuple(r.get("sources", ()))})
                    for r in ranked["recommendations"]
                ],
            )
            for ranked in document["lists"]
        ],
        item=document.get("item"),
        user=None
        if user is None
        else User(user["id"], user["gender"], user["trendiness"], Location(**user["residence"])),
        normalise=str(document.get("normalise", "rank")),
        strategy=str(document.get("strategy", "client")),
        profile=None if not document.get("profile") else Profile(**document["profile"]),
    )


@dataclass(frozen=True)
class ShopPlace:
    """An item's shop: id, name and location (the payload's when the log lacks the shop)."""

    id: str
    name: str | None
    location: Any


@dataclass(frozen=True)
class ItemDetail:
    """An item's payload, its popularity now (all-time and trending) and its shop."""

    item_id: str
    payload: dict[str, Any]
    popularity: float
    trending: float
    shop: ShopPlace | None
    image_url: str


@dataclass(frozen=True)
class ItemList:
    """Some items (id, product, gender, category, shop, popularity) and how many match."""

    items: list[dict[str, Any]]
    count: int


@dataclass(frozen=True)
class Bought:
    """A purchase as a user's page shows it: when, what, where, and how far from home."""

    timestamp: datetime
    item_id: str
    category: str | None  # None: the item is no longer in the catalog
    store_id: str | None
    shop_name: str | None
    distance_km: float | None
    name: str | None = None  # the shop's own name and price, where the catalog has them
    price: float | None = None
    in_catalog: bool = True


@dataclass(frozen=True)
class UserDetail:
    """A user: gender, trendiness, where they live, and their purchases."""

    id: str
    gender: str
    trendiness: float
    residence: Any
    purchases: list[Bought]


@dataclass(frozen=True)
class UserList:
    """Some user ids and how many there are."""

    users: list[str]
    count: int


@dataclass(frozen=True)
class Photo:
    """An item's photo on this machine and its media type (read from the file)."""

    path: Path
    media_type: str


@dataclass(frozen=True)
class NetworkInput:
    """The 224×224 picture the CNN saw, as PNG bytes, and whether a mask was applied."""

    png: bytes
    masked: bool


@dataclass(frozen=True)
class Summary:
    """What a home holds: counts, the vector spaces (size, weights), taxonomy, genders,
    categories, shops, shoppers and purchases (what the page needs to start)."""

    vector_store: str  # where the catalog's vectors are
    items: int
    spaces: dict[str, dict[str, Any]]
    default_space: str
    taxonomy: str
    genders: dict[str, int]
    categories: dict[str, int]
    shops: list[Shop]
    users: int
    purchases: int
    profile: Profile | None = None  # the ranking's weights fitted to the sales, if tuned
