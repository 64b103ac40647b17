"""Catalog items: one photo of one product, or the problem an entry of a catalog has; how a
catalog's names become a taxonomy's categories and genders; what a shop changes of a stored
item."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from engine.catalog.taxonomy import Taxonomy, deepfashion, key
from engine.errors import CatalogError, ConfigError
from engine.vocabulary.schema import stock_fields

UnknownCategory = Literal["accept", "skip", "fail"]  # a category the taxonomy does not know


@dataclass(frozen=True)
class Item:
    """One photo of one product: the unit that is embedded and stored."""

    item_id: str
    product_id: str
    gender: str
    category: str
    view: str
    image: Path
    mask: Path | None = None
    store_id: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()  # a manifest's other columns (name, value)
    name: str | None = None  # the shop's name for it, its price and its page
    price: float | None = None
    url: str | None = None
    in_stock: bool | None = None


@dataclass(frozen=True)
class Problem:
    """An entry of the catalog that cannot be used, and why (`kind` and `detail` group it)."""

    where: str
    reason: str
    kind: str = "unreadable entry"
    detail: str = ""


Entry = Item | Problem


class Rejected(ValueError):
    """A catalog entry refused for a reason of a kind (unknown category, bad path, …)."""

    def __init__(self, kind: str, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.kind, self.detail = kind, detail


@dataclass(frozen=True)
class Naming:
    """How a catalog's names become a taxonomy's categories and genders."""

    taxonomy: Taxonomy = field(default_factory=deepfashion)
    unknown: UnknownCategory = "accept"
    # the first spelling of each accepted new category, so `Robes` and `robes` are one
    accepted: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def category(self, raw: str, where: str) -> str:
        """The category a name means; an unknown one is accepted as it is, skipped
        (Rejected) or stops the run (CatalogError), as `unknown` says."""
        known = self.taxonomy.category(raw)
        if known is not None:
            return known
        name = raw.strip()
        if not name:
            raise Rejected("empty category", "empty category")
        if self.unknown == "accept":
            return self.accepted.setdefault(key(name), name)
        if self.unknown == "fail":
            raise CatalogError(
                f"{where}: unknown category {name!r} (taxonomy {self.taxonomy.name}); add it "
                "to a taxonomy file (--taxonomy FILE) or run with --unknown-category accept|skip"
            )
        raise Rejected("unknown category", f"unknown category {name!r}", name)

    def gender(self, raw: str) -> str:
        """The canonical gender of a spelling; Rejected naming the known ones otherwise."""
        gender = self.taxonomy.gender(raw)
        if gender is None:
            known = ", ".join(self.taxonomy.all_genders)
            raise Rejected("unknown gender", f"unknown gender {raw!r} (use {known})", raw.strip())
        return gender


def problem(where: str, exc: Rejected) -> Problem:
    """The Problem a rejected entry is."""
    return Problem(where, str(exc), exc.kind, exc.detail)


@dataclass(frozen=True)
class ItemChanges:
    """What a shop changes of a stored item (None: left as it is)."""

    in_stock: bool | None = None
    price: float | None = None
    name: str | None = None
    url: str | None = None

    def payload(self) -> dict[str, object]:
        """The payload fields to set; ConfigError for a bad value or nothing to change."""
        if self.price is not None and not (math.isfinite(self.price) and self.price >= 0):
            raise ConfigError(f"price must be 0 or more, got {self.price}")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"url must start with http:// or https://, got {self.url!r}")
        if self.name is not None and not self.name.strip():
            raise ConfigError("name must not be empty")
        fields = {
            "in_stock": self.in_stock,
            "price": self.price,
            "name": self.name,
            "url": self.url,
        }
        changes: dict[str, object] = {k: v for k, v in fields.items() if v is not None}
        if self.in_stock is not None:
            changes |= stock_fields(self.in_stock)
        if not changes:
            raise ConfigError(
                "nothing to change: give --in-stock/--out-of-stock, --price, --name or --url"
            )
        return changes
