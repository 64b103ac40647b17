"""The catalog's use-cases: what a home holds, its items (listed, shown, changed, deleted),
an item's photo and the picture its network saw."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from engine.application.base import Home
from engine.application.documents import (
    ItemDetail,
    ItemList,
    NetworkInput,
    Photo,
    ShopPlace,
    Summary,
)
from engine.catalog.framing import Framing
from engine.catalog.inputs import load_input, media_type, png
from engine.catalog.items import Item, ItemChanges
from engine.catalog.masks import DEFAULT_REMOVED
from engine.errors import NotFoundError, one_line
from engine.events.changes import APPLIED, Kind, changes_after, record_change
from engine.popularity.upkeep import RANK_TOLERANCE, sync_ranks
from engine.spaces.registry import space_in_force
from engine.vectorstore.base import Filter, Record
from engine.vocabulary.records import Shop
from engine.vocabulary.schema import (
    CATEGORY,
    FRAMING,
    GENDER,
    IMAGE,
    IN_STOCK,
    ITEM_ID,
    MASK,
    MASKED,
    NAME,
    POPULARITY,
    PRICE,
    PRODUCT_ID,
    REMOVED,
    STORE_ID,
    STORE_LOCATION,
    URL,
    point_id,
)

LIST_FIELDS: Final = (
    ITEM_ID,
    PRODUCT_ID,
    GENDER,
    CATEGORY,
    STORE_ID,
    POPULARITY,
    NAME,
    PRICE,
    URL,
    IN_STOCK,
)


class CatalogUses(Home):
    """The catalog's use-cases over a home."""

    @property
    def store_location(self) -> str:
        """Where the catalog lives, as users name it: the home's store for a worker serving
        a copy of it."""
        return self.store.location if self.home_writer is None else str(self.settings.store_path)

    def summary(self) -> Summary:
        """Counts, spaces (size, weights), taxonomy, genders, categories, stores, shoppers."""
        dims = self.store.vector_dims()
        return Summary(
            vector_store=self.store_location,
            items=self.store.count() if dims else 0,
            spaces={
                name: {"dim": dim, "weights": self.store.provenance(name)}
                for name, dim in sorted(dims.items())
            },
            default_space=space_in_force(self.settings.home, None, dims),
            taxonomy=self.taxonomy.name,
            genders=self.store.facet(GENDER) if dims else {},
            categories=self.store.facet(CATEGORY) if dims else {},
            shops=self.log.shops(),
            users=len(self.log.user_ids()),
            purchases=self.log.purchase_count(),
            profile=self.profile(),
        )

    def items(self, gender: str | None, category: str | None, limit: int) -> ItemList:
        """Some items (in the store's order), optionally of one gender and category (in the
        shop's words: ConfigError for one the catalog does not know)."""
        if not self.store.vector_dims():
            return ItemList([], 0)
        equals = self.filters(gender, category)
        found = islice(self.store.scroll(LIST_FIELDS, Filter(equals=equals), page=limit), limit)
        rows = [{f: r.payload.get(f) for f in LIST_FIELDS} for r in found]
        return ItemList(rows, self.store.count(Filter(equals=equals)))

    def delete_items(self, item_ids: Sequence[str]) -> int:
        """Remove items from the catalog, all or none (NotFoundError naming an unknown one);
        their purchases stay in the log as history. Returns how many were removed."""
        wanted = list(dict.fromkeys(item_ids))
        held = {
            str(r.payload.get(ITEM_ID)) for r in self.store.retrieve(list(map(point_id, wanted)))
        }
        unknown = [i for i in wanted if i not in held]
        if unknown:
            more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
            raise NotFoundError(f"unknown item {unknown[0]!r}{more}; nothing deleted")
        ids = [point_id(i) for i in wanted]
        if self.home_writer is not None:  # a worker: every copy replays it
            self._replayed("delete", ids, {})
            return len(wanted)
        self.store.delete(ids)
        sync_ranks(self.store, self.columns, RANK_TOLERANCE)  # one fewer to rank among
        return len(wanted)

    def update_item(self, item_id: str, changes: ItemChanges) -> ItemDetail:
        """Mark an item in or out of stock, or give it a price, name or link."""
        payload = changes.payload()
        self.point(item_id)  # NotFoundError when the catalog lacks it
        if self.home_writer is not None:  # a worker: every copy replays it
            self._replayed("payload", [point_id(item_id)], payload)
        else:
            self.store.set_payload([point_id(item_id)], payload)
        return self.item(item_id)

    def _replayed(self, kind: Kind, ids: list[str], payload: dict[str, Any]) -> None:
        """A change recorded in the event log, then applied to this store at once (the
        worker that made it answers with it); every other copy replays it at its next look,
        the home's store whenever it is next opened (Application.open replays)."""
        with self.log.transaction():
            record_change(self.log, kind, ids, payload)
        self.replay_changes()

    def replay_changes(self) -> int:
        """Apply to this store the catalog's changes it does not hold yet (engine.events.
        changes), in order; its mark says up to which. Returns how many were applied."""
        mark = int(self.marks.get(APPLIED) or 0)
        found = changes_after(self.log, mark)
        if not found:
            return 0
        for change in found:
            if change.kind == "delete":
                self.store.delete(list(change.ids))
            else:
                self.store.set_payload(list(change.ids), change.payload)
        if any(change.kind == "delete" for change in found):
            sync_ranks(self.store, self.columns, RANK_TOLERANCE)
        self.marks.put(APPLIED, str(found[-1].number))
        return len(found)

    def point(self, item_id: str) -> Record:
        """An item's point (payload only); NotFoundError when the catalog lacks it."""
        found = self.store.retrieve([point_id(item_id)])
        if not found:
            raise NotFoundError(f"unknown item {item_id!r}")
        return found[0]

    def item(self, item_id: str) -> ItemDetail:
        """An item's payload, its popularity now (the log's, else the payload's), its
        trending score now, and its shop."""
        payload = self.point(item_id).payload
        counted = self.log.popularity([item_id]).get(item_id)
        popularity = float(payload.get(POPULARITY, 0.0)) if counted is None else float(counted)
        stored = self.log.trend([item_id]).get(item_id, 0.0)
        trending = stored * self.log.trend_scale(datetime.now(UTC))
        return ItemDetail(
            item_id=item_id,
            payload=payload,
            popularity=popularity,
            trending=trending,
            shop=_shop_place(payload, {s.id: s for s in self.log.shops()}),
            image_url=f"/items/{quote(item_id, safe='')}/image",
        )

    def photo(self, item_id: str) -> Photo:
        """The file of an item's photo and its media type (read from the file itself)."""
        stored = self.point(item_id).payload.get(IMAGE)
        path = Path(str(stored or ""))
        if not stored or not path.is_file():
            raise NotFoundError(f"item {item_id!r} has no photo on this machine")
        try:
            return Photo(path, media_type(path))
        except OSError:
            raise NotFoundError(f"the photo of item {item_id!r} cannot be read") from None

    def network_input(self, item_id: str) -> NetworkInput:
        """The picture the CNN saw, made again as ingest made it (engine.catalog.inputs)
        from the recipe the item's payload records: the framing, and the mask applied with
        the labels it removed. Items ingested before the recipe was recorded are framed as
        letterbox, unmasked."""
        payload = self.point(item_id).payload
        photo = self.photo(item_id)
        mask = Path(str(payload[MASK])) if payload.get(MASKED) and payload.get(MASK) else None
        framing: Framing = payload.get(FRAMING, "letterbox")
        removed = tuple(payload.get(REMOVED) or DEFAULT_REMOVED)
        item = Item(item_id, str(payload.get(PRODUCT_ID)), "", "", "", photo.path, mask)
        try:
            pixels, masked = load_input(item, framing, removed)
        except (OSError, ValueError) as exc:
            raise NotFoundError(
                f"the network input of item {item_id!r} cannot be made again ({one_line(exc)})"
            ) from None
        return NetworkInput(png(pixels), masked)


def _shop_place(payload: dict[str, Any], shops: dict[str, Shop]) -> ShopPlace | None:
    """An item's shop: the log's, else what the payload says of it."""
    shop_id = payload.get(STORE_ID)
    if shop_id is None:
        return None
    shop = shops.get(str(shop_id))
    if shop is None:
        return ShopPlace(str(shop_id), None, payload.get(STORE_LOCATION))
    return ShopPlace(shop.id, shop.name, shop.location)
