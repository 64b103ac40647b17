"""The service's request bodies (pydantic): what a client may send, read into
the engine's own rows; responses are the engine's documents (engine/application/documents.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from engine.catalog.items import ItemChanges
from engine.catalog.masks import DEFAULT_REMOVED
from engine.errors import ConfigError
from engine.shoppers.purchases import FUTURE, NoTimeZone, Row, parse_timestamp
from ingest.options import MAX_BATCH, MAX_WORKERS

MAX_PURCHASES: Final = 10_000  # purchases per request (the body is at most 1 MB anyway)


class PurchaseIn(BaseModel):
    """One purchase to record, as a row of `fashionrec purchases import` has it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    user_id: str = Field(
        min_length=1, max_length=256, description="The shopper (a first-time one is created)."
    )
    item_id: str = Field(min_length=1, max_length=1024, description="A catalog item.")
    timestamp: datetime = Field(description="ISO 8601 with a time zone (Z, +02:00).")
    store_id: str | None = Field(
        default=None, max_length=256, description="A known store (default: the item's)."
    )
    event_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="The purchase's own id: posting it again records nothing (default: a "
        "hash of user, item, timestamp and store).",
    )
    gender: str | None = Field(
        default=None,
        max_length=64,
        description="A first-time shopper's gender, in the shop's words (default: the item's).",
    )
    trendiness: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="A first-time shopper's trendiness t (default: estimated from the items).",
    )

    @field_validator("timestamp", mode="before")
    @classmethod
    def _iso_8601(cls, value: object) -> datetime:
        """Read like an import's timestamp column: ISO 8601, as aware UTC."""
        if isinstance(value, datetime):
            return value
        if not isinstance(value, str):
            raise ValueError("timestamp must be an ISO 8601 string")
        try:
            moment = parse_timestamp(value)
        except NoTimeZone:
            raise ValueError(f"timestamp {value!r} has no time zone; add one (Z, +02:00)") from None
        except ValueError:
            raise ValueError(f"bad timestamp {value!r} (use ISO 8601)") from None
        if moment > datetime.now(UTC) + FUTURE:
            raise ValueError(f"timestamp {value!r} is in the future")
        return moment

    @field_validator("store_id", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        """An empty shop id (store_id) means the item's shop, as in an import."""
        return None if isinstance(value, str) and not value.strip() else value


_PURCHASES: Final = TypeAdapter(list[PurchaseIn])


def purchases_body_schema() -> dict[str, Any]:
    """The OpenAPI schema of POST /purchases' body: one purchase or a list of them."""
    one = PurchaseIn.model_json_schema()
    return {
        "content": {
            "application/json": {
                "schema": {"anyOf": [one, {"type": "array", "items": one, "minItems": 1}]}
            }
        },
        "required": True,
    }


def _where(loc: tuple[int | str, ...]) -> str:
    """A location in the body as people count: `purchase 2: store_id`."""
    number, *rest = loc if loc else ("",)
    fields = ".".join(str(part) for part in rest)
    head = f"purchase {int(number) + 1}" if isinstance(number, int) else str(number)
    return f"{head}: {fields}" if fields else head


def parse_purchases(data: object) -> list[Row]:
    """One purchase object or a non-empty list of them, as the rows the engine records;
    ConfigError naming the first problem."""
    rows = [data] if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise ConfigError("the body must be a purchase object or a list of them")
    if not rows:
        raise ConfigError("the body is an empty list: nothing to record")
    if len(rows) > MAX_PURCHASES:
        raise ConfigError(f"at most {MAX_PURCHASES} purchases per request, got {len(rows)}")
    try:
        given = _PURCHASES.validate_python(rows)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(
            f"{_where(tuple(first['loc']))}: {message}{more}; nothing recorded"
        ) from None
    return [
        Row(
            number,
            f"purchase {number}",
            p.user_id,
            p.item_id,
            p.timestamp,
            store_id=p.store_id,
            gender=p.gender or None,
            trendiness=p.trendiness,
            event_id=p.event_id or "",
        )
        for number, p in enumerate(given, start=1)
    ]


class IngestIn(BaseModel):
    """An ingest job, as `fashionrec ingest PATH --api URL` sends it: the paths are this
    machine's (the service reads the photos, and serves them later)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, description="DF-MM image folder, In-shop tree or manifest.")
    backbones: list[str] = Field(default=["resnet50"], min_length=1, max_length=8)
    masks: str | None = Field(default=None, description="Folder of <item>_segm.png masks.")
    manifest: bool = Field(default=False, description="path is a manifest CSV.")
    weights: str = Field(default="imagenet", description="imagenet, a state-dict path, random.")
    device: str = "auto"
    batch_size: int = Field(default=32, ge=1, le=MAX_BATCH, description="Images per batch.")
    workers: int = Field(default=2, ge=0, le=MAX_WORKERS, description="Decoding processes.")
    framing: str = "letterbox"
    missing_mask: str = "unmasked"
    removed: list[str] = Field(
        default=list(DEFAULT_REMOVED), max_length=64, description="Mask labels removed."
    )
    limit: int | None = Field(default=None, ge=1)
    unknown_category: str = "accept"
    root: str | None = Field(default=None, description="Manifests: another image folder.")
    pooling: str = Field(
        default="auto",
        description="Of the last convolutional map: avg, gem, or auto (the store's, else gem; "
        "vgg16: avg).",
    )
    runtime: str = Field(
        default="auto", description="torch, onnxruntime, openvino, or auto (by measurement)."
    )
    precision: str = Field(
        default="auto", description="fp32, bf16, int8, or auto (the store's, else measured)."
    )


class ItemChangesIn(BaseModel):
    """What `PATCH /items/{id}` changes (as `fashionrec items update`); the rest stays."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    in_stock: bool | None = Field(None, description="false: left out of recommendations")
    price: float | None = Field(None, ge=0, description="its price")
    name: str | None = Field(None, min_length=1, description="its name in the shop")
    url: str | None = Field(None, description="its product page (http or https)")

    def changes(self) -> ItemChanges:
        """The engine's changes."""
        return ItemChanges(self.in_stock, self.price, self.name, self.url)
