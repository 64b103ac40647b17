"""Shoppers with taste (pure, seeded): a simulation in which what a shopper buys depends on
how items look, so that an evaluation can tell whether the visual term finds it.

Each shopper has a hidden style: the values, on the attributes the ranker never reads
(colour family, usage, season, where a manifest has such columns; else a hidden cluster of
another backbone's vectors), of an item drawn from those they are shown. Each purchase, in
time order over the period: with probability t (the shopper's trendiness), an item among
the top `p_threshold` fraction of their pool by trending score at that moment (decayed
purchase counts; only items that sold); otherwise, or when nothing sells yet, an item of
their style (the items that share most of its values, at random among them). Never a
product already bought. The paper's
simulation (engine.shoppers.simulation) stays the default of `simulate` and Tables 1–3.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
from numpy.typing import NDArray

from engine.errors import ConfigError
from engine.events.trending import DAY_S, DEFAULT_HALF_LIFE_DAYS
from engine.shoppers.simulation import (
    UNISEX,
    CatalogView,
    CompactSimulation,
    SimulationConfig,
)
from engine.vocabulary.geo import Region

# attribute columns a style is made of, by the names manifests give them (lower case)
STYLE_COLUMNS: Final = {
    "colour": ("basecolour", "colour", "color", "basecolor", "colour_family"),
    "usage": ("usage", "occasion"),
    "season": ("season",),
}
# colour names → families: the first family whose word a colour name contains
COLOUR_FAMILIES: Final = (
    ("multi", ("multi",)),
    ("white", ("white", "cream", "off white", "ivory")),
    ("black", ("black",)),
    ("grey", ("grey", "gray", "silver", "charcoal", "steel", "metallic")),
    ("blue", ("blue", "navy", "turquoise", "teal")),
    ("green", ("green", "olive", "lime")),
    ("red", ("red", "maroon", "burgundy", "rust")),
    ("pink", ("pink", "magenta", "rose", "peach")),
    ("purple", ("purple", "lavender", "mauve", "violet")),
    ("yellow", ("yellow", "mustard", "gold")),
    ("orange", ("orange", "coral")),
    ("brown", ("brown", "tan", "coffee", "bronze", "copper", "khaki", "beige", "skin", "nude")),
)
CLUSTERS: Final = 24  # hidden clusters of vectors, when a catalog has no style columns


def colour_family(name: str) -> str:
    """A colour's family (`Navy Blue` → blue); the name itself when no family matches."""
    text = name.strip().lower()
    for family, words in COLOUR_FAMILIES:
        if any(word in text for word in words):
            return family
    return text


def style_attributes(attributes: Sequence[Mapping[str, str]]) -> NDArray[np.str_] | None:
    """Each item's style values (colour family, usage, season: those the catalog has) as
    rows of text, or None when its items carry none of those columns."""
    found: dict[str, str] = {}  # style name → the column that holds it
    columns = {name for row in attributes for name in row}
    for style, names in STYLE_COLUMNS.items():
        for column in sorted(columns):
            if column.lower() in names:
                found[style] = column
                break
    if not found:
        return None
    rows = []
    for row in attributes:
        values = []
        for style, column in found.items():
            value = str(row.get(column) or "").strip()
            values.append(colour_family(value) if style == "colour" and value else value.lower())
        rows.append(values)
    return np.array(rows, dtype=np.str_)


def vector_clusters(vectors: NDArray[np.float32], seed: int, k: int = CLUSTERS) -> NDArray[np.str_]:
    """Each item's cluster among k (seeded spherical k-means, 20 rounds), as one style
    column: a hidden style where a catalog has no style columns. (Kept here on purpose:
    scikit-learn's KMeans is Euclidean, not spherical, and these twelve lines are all.)"""
    x = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng([seed, 5])
    k = max(1, min(k, len(x)))
    centres = x[rng.choice(len(x), k, replace=False)]
    labels = np.zeros(len(x), dtype=np.int64)
    for _ in range(20):
        labels = np.argmax(x @ centres.T, axis=1)
        for c in range(k):
            members = x[labels == c]
            if len(members):
                mean = members.mean(axis=0)
                centres[c] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return np.array([[f"cluster-{c}"] for c in labels.tolist()], dtype=np.str_)


@dataclass(frozen=True)
class Styles:
    """Every item's style values (rows of the catalog view, columns of the style)."""

    values: NDArray[np.str_]
    source: str  # what they were read from, for people: "colour, usage, season" or a space

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or not self.values.shape[1]:
            raise ConfigError("a taste simulation needs at least one style attribute")


def simulate_taste(
    catalog: CatalogView,
    styles: Styles,
    popularity: NDArray[np.int64],
    region: Region,
    config: SimulationConfig,
    shown: Mapping[str, frozenset[str]] | None = None,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    first_user: int = 1,
) -> CompactSimulation:
    """Shoppers with taste (see the module), as arrays like the paper's simulation:
    `popularity` is the initial popularity plus every purchase, `trend` the trending scores
    after the period."""
    if len(styles.values) != len(catalog):
        raise ConfigError("the style attributes do not match the catalog")
    rng = np.random.default_rng([config.seed, 7])
    _, product_of = np.unique(catalog.product_ids, return_inverse=True)
    popularity = popularity.astype(np.int64, copy=True)
    trend = np.zeros(len(catalog))
    half_life_s = DAY_S * half_life_days
    shown = shown or {}
    genders = sorted({g for g in shown if g != UNISEX}) or sorted(set(catalog.genders.tolist()))
    pools = {
        g: np.flatnonzero(np.isin(catalog.genders, sorted(shown.get(g, {g})))) for g in genders
    }
    genders = [g for g in genders if len(pools[g])]
    if not genders:
        raise ConfigError("no shopper gender is shown any item of the catalog")

    n = config.users
    trendiness = rng.uniform(size=n)
    gender = np.zeros(n, np.int16)
    style_of = np.zeros(n, np.int64)  # the catalog row whose style the shopper has
    lat = np.round(rng.uniform(region.lat_min, region.lat_max, n), 6)
    lon = np.round(rng.uniform(region.lon_min, region.lon_max, n), 6)
    counts = rng.integers(1, config.max_purchases + 1, n)
    event_seconds, event_users = array("q"), array("q")
    for u in range(n):
        gender[u] = 1 + int(rng.integers(len(genders)))
        pool = pools[genders[gender[u] - 1]]
        style_of[u] = int(pool[rng.integers(len(pool))])
        seconds = np.sort(rng.integers(0, config.days * 86_400, int(counts[u])))
        event_seconds.extend(seconds.tolist())
        event_users.extend([u] * int(counts[u]))

    when = np.frombuffer(event_seconds, dtype=np.int64)
    who = np.frombuffer(event_users, dtype=np.int64)
    order = np.lexsort((who, when))
    offsets = np.zeros(n, np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    made = np.zeros(n, np.int64)
    items = np.zeros(len(when), np.int32)
    slots = np.zeros(len(when), np.int64)
    values = styles.values
    liked: dict[int, NDArray[np.intp]] = {}  # per shopper: their pool, best style match first

    def by_taste(u: int, pool: NDArray[np.intp]) -> NDArray[np.intp]:
        """The items of the pool that share most of the shopper's style values."""
        matches = (values[pool] == values[style_of[u]]).sum(axis=1)
        best: NDArray[np.intp] = pool[matches == matches.max()]
        return best

    for e in order.tolist():
        second, u = int(when[e]), int(who[e])
        first, done = int(offsets[u]), int(made[u])
        visible = pools[genders[gender[u] - 1]]
        bought = product_of[items[first : first + done]]
        pool = visible[~np.isin(product_of[visible], bought)]
        if len(pool) == 0:
            continue
        choice: NDArray[np.intp] = np.zeros(0, dtype=np.intp)
        if rng.uniform() < trendiness[u]:  # among the top sellers of the moment
            k = max(1, math.ceil(config.p_threshold * len(pool)))
            top = pool[np.argsort(-trend[pool], kind="stable")[:k]]
            choice = top[trend[top] > 0]
        if len(choice) == 0:
            if u not in liked:
                liked[u] = by_taste(u, visible)
            choice = liked[u][~np.isin(product_of[liked[u]], bought)]
            if len(choice) == 0:
                choice = by_taste(u, pool)
        item = int(choice[rng.integers(len(choice))])
        popularity[item] += 1
        trend[item] += 2.0 ** (second / half_life_s)
        items[first + done] = item
        slots[first + done] = second
        made[u] = done + 1

    start = datetime(config.start.year, config.start.month, config.start.day, tzinfo=UTC)
    names = ("", *genders)
    gender[made == 0] = 0
    return CompactSimulation(
        catalog,
        start,
        first_user,
        names,
        gender,
        trendiness,
        lat,
        lon,
        offsets,
        made,
        items,
        slots,
        popularity,
        trend,
    )
