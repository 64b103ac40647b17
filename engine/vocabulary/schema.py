"""The point schema: payload field names, the payload indexes, and an item's point id.

"store" in a field name means the physical shop (`Shop`); the names are those of the
stored data and of catalog files, so they stay as they are.
"""

from __future__ import annotations

import uuid
from typing import Final, Literal

ITEM_ID: Final = "item_id"
PRODUCT_ID: Final = "product_id"
GENDER: Final = "gender"
CATEGORY: Final = "category"
CATEGORY_GROUP: Final = "category_group"
VIEW: Final = "view"
IMAGE: Final = "image"
COLOUR: Final = "colour"  # the garment's colour histogram, made at ingest (ingest/colour.py)
MASKED: Final = "masked"
# how the network input was made (engine/catalog/inputs.py): framing; the mask applied, if any,
# and the labels it removed
FRAMING: Final = "framing"
MASK: Final = "mask"
REMOVED: Final = "removed"
STORE_ID: Final = "store_id"
STORE_ORIGIN: Final = "store_origin"  # MANIFEST or ROUND_ROBIN
STORE_LOCATION: Final = "store_location"  # {"lat": .., "lon": ..}
POPULARITY: Final = "popularity"  # all-time: initial popularity + purchases
TRENDING: Final = "trending"  # purchases halving every half-life (engine/events/trending.py)
# each popularity's percentile rank over the catalog, on [0, 1] (engine/popularity/normpop.py)
POPULARITY_RANK: Final = "popularity_rank"
TRENDING_RANK: Final = "trending_rank"

NAME: Final = "name"  # the shop's own words for the item, and its link and price
URL: Final = "url"
PRICE: Final = "price"
IN_STOCK: Final = "in_stock"  # False: out of stock (absent: in stock)
# what the filters read of it: "out" when out of stock (a keyword: Qdrant Edge's filters do
# not match booleans)
STOCK: Final = "stock"
OUT: Final = "out"
ATTRIBUTES: Final = "attributes"  # a manifest's other columns: {"colour": "Navy Blue", ...}

MANIFEST: Final = "manifest"  # the shop came with the catalog
ROUND_ROBIN: Final = "round-robin"  # the shop was assigned

# What the shopper world reads of every item: its identity and its shop.
PLACEMENT_FIELDS: Final = (
    ITEM_ID,
    PRODUCT_ID,
    GENDER,
    CATEGORY,
    STORE_ID,
    STORE_ORIGIN,
    STORE_LOCATION,
)
# What the rerank reads of every search hit, besides the popularity of the mode in force.
HIT_IDENTITY: Final = (ITEM_ID, PRODUCT_ID, CATEGORY, GENDER, STORE_ID, STORE_LOCATION)
# Every field the rerank may read (either popularity mode, its value and its rank).
HIT_FIELDS: Final = (*HIT_IDENTITY, POPULARITY, TRENDING, POPULARITY_RANK, TRENDING_RANK)
# What an evaluation reads of every item.
EVALUATION_FIELDS: Final = (
    ITEM_ID,
    PRODUCT_ID,
    GENDER,
    CATEGORY,
    STORE_ID,
    POPULARITY,
    TRENDING,
    IMAGE,
    ATTRIBUTES,
)

IndexKind = Literal["keyword", "bool", "float", "geo"]
PAYLOAD_INDEXES: Final[tuple[tuple[str, IndexKind], ...]] = (
    *(
        (f, "keyword")
        for f in (ITEM_ID, PRODUCT_ID, GENDER, CATEGORY, CATEGORY_GROUP, STORE_ID, STOCK)
    ),
    (MASKED, "bool"),
    (PRICE, "float"),
    (POPULARITY, "float"),
    (TRENDING, "float"),
    (STORE_LOCATION, "geo"),
)
# The ANN search filters on these: their values get HNSW links of their own, so that a
# filtered search stays connected. The other indexes serve scroll, count, facet and the
# formula; links for them would multiply the index build time and speed up no search.
SEARCH_FILTER_FIELDS: Final = frozenset({GENDER, STORE_LOCATION})

_NAMESPACE: Final = uuid.UUID("6f1c2b1e-3d4a-5b6c-8d7e-9fa0b1c2d3e4")


def popularity_field(mode: str) -> str:
    """The payload field a popularity mode (all-time, trending) ranks on."""
    return TRENDING if mode == "trending" else POPULARITY


def rank_field(mode: str) -> str:
    """The payload field holding a popularity mode's percentile rank."""
    return TRENDING_RANK if mode == "trending" else POPULARITY_RANK


def hit_fields(mode: str) -> tuple[str, ...]:
    """What a search returns of every hit for a rerank in this popularity mode: no more,
    since payloads moving into Python are a large part of a search's time."""
    return (*HIT_IDENTITY, popularity_field(mode), rank_field(mode))


def weights_field(backbone: str) -> str:
    """The payload field recording which weights embedded an item's vector of a backbone."""
    return f"weights_{backbone}"


Pooling = Literal["avg", "gem"]  # of the last convolutional map: average, generalised mean
AVG: Final = "avg"  # also what a point without a pooling field was made with (older ingests)
GEM: Final = "gem"


def runtime_field(backbone: str) -> str:
    """The payload field recording where an item's vector of a backbone was computed
    (torch, onnxruntime, openvino)."""
    return f"runtime_{backbone}"


def precision_field(backbone: str) -> str:
    """The payload field recording the arithmetic of an item's vector of a backbone (fp32,
    bf16, int8); points ingested before it was recorded have none."""
    return f"precision_{backbone}"


def calibration_field(backbone: str) -> str:
    """The payload field naming the calibration sample of an int8 vector's model."""
    return f"calibration_{backbone}"


def vector_fields(backbone: str) -> tuple[str, ...]:
    """The payload fields recording how an item's vector of a backbone was made."""
    return (
        weights_field(backbone),
        pooling_field(backbone),
        runtime_field(backbone),
        precision_field(backbone),
        calibration_field(backbone),
    )


def pooling_field(backbone: str) -> str:
    """The payload field recording how an item's vector of a backbone was pooled (avg,
    gem); points ingested before it was recorded have none and were average-pooled."""
    return f"pooling_{backbone}"


def provenance_text(labels: dict[str, int]) -> str:
    """Which weights embedded a backbone's vectors (or which pooling made them), for
    people: `imagenet-keras`, or `imagenet-keras 100, random 38 (mixed)` when a store
    mixes them."""
    if not labels:
        return "unknown"
    if len(labels) == 1:
        return next(iter(labels))
    shown = ", ".join(f"{label} {count}" for label, count in sorted(labels.items()))
    return f"{shown} (mixed)"


def point_id(item_id: str) -> str:
    """The deterministic point id of an item (UUID5), so re-ingesting is idempotent."""
    return str(uuid.uuid5(_NAMESPACE, item_id))


def stock_fields(in_stock: bool) -> dict[str, object]:
    """The payload of an item in or out of stock: the flag people read, the keyword filters
    read."""
    return {IN_STOCK: in_stock, STOCK: "in" if in_stock else OUT}
