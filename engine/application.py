"""The application: one home's vector store, event log, taxonomy in force and (in a long-lived
process) the rerank's field table, with the use-cases the command line and the service both
call. Each answers a document (engine/documents.py) that either face renders; neither face
computes anything of its own. Ingest jobs run over it from ingest/runs.py (the engine never
loads torch).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from engine.catalog.framing import Framing
from engine.catalog.inputs import load_input
from engine.catalog.items import Item, ItemChanges
from engine.catalog.masks import DEFAULT_REMOVED
from engine.catalog.taxonomy import Taxonomy, deepfashion, load
from engine.catalog.taxonomy import key as category_key
from engine.documents import (
    Bought,
    ItemDetail,
    ItemList,
    NetworkInput,
    Photo,
    Ranked,
    Recommended,
    ShopPlace,
    Summary,
    UserDetail,
    UserList,
    Vectors,
)
from engine.errors import ConfigError, NotFoundError, StoreError, one_line
from engine.events.eventlog import EventLog
from engine.popularity.upkeep import RANK_TOLERANCE, Marks, catch_up, popularity_in_step, sync_ranks
from engine.recommend.columns import Columns
from engine.recommend.recommender import PHOTO, Params, Recommender
from engine.recommend.rerank import Recommendation
from engine.settings import Settings
from engine.shoppers.purchaselog import import_purchases
from engine.shoppers.purchases import ImportSummary, Recorded, Row, record
from engine.spaces.registry import missing_space, source_weights, space_in_force
from engine.vectorstore import open_store
from engine.vectorstore.base import Filter, Record, VectorStore
from engine.vocabulary.geo import distance_km
from engine.vocabulary.records import Shop, User
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

logger = logging.getLogger("fashionrec")
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


class Application:
    """One home, held open: the use-cases over its store and event log."""

    def __init__(
        self,
        settings: Settings,
        store: VectorStore,
        log: EventLog,
        taxonomy: Taxonomy,
        columns: Columns | None = None,
        marks: Marks | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.log = log
        self.taxonomy = taxonomy
        self.columns = columns
        self.marks: Marks = log if marks is None else marks  # the store's sync marks
        # a worker serving a copy of the store: where the catalog's changes go (the home's
        # store, held alone meanwhile; serve/copies.py); None: to this store
        self.home_writer: Callable[[], AbstractContextManager[Application]] | None = None
        self._recommender: Recommender | None = None  # kept while taxonomy and table stay

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        serving: bool = False,
        store: VectorStore | None = None,
        marks: Marks | None = None,
    ) -> Application:
        """Open the configured store (or take `store`, a worker's copy, with its `marks`)
        and the event log; the taxonomy is the one asked for, else the one recorded at
        ingest, else DeepFashion's. `serving` (a long-lived process): bring the popularity
        payloads in step with the log and read the rerank's table now, so that no request
        pays for either (a failing store is logged, and every request then says so)."""
        store = open_store(settings) if store is None else store
        try:
            log = EventLog(settings.event_log)
        except BaseException:
            store.close()
            raise
        try:
            app = cls(settings, store, log, taxonomy_in_force(settings, log), marks=marks)
        except BaseException:
            log.close()
            store.close()
            raise
        if serving:
            try:
                if store.vector_dims() and popularity_in_step(store, log, app.marks):
                    logger.info("popularity payloads brought in step with the event log")
                app.recommender(table=True)
            except StoreError as exc:
                logger.warning("store not ready: %s", one_line(exc, 300))
        return app

    def close(self) -> None:
        """Close the log and the store."""
        try:
            self.log.close()
        finally:
            self.store.close()

    def __enter__(self) -> Application:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def writing(self) -> Iterator[Application]:
        """The application whose store takes the catalog's changes (items ingested, deleted
        or changed): this one, or for a worker serving a copy one over the home's store,
        after which every worker's copy is made again."""
        if self.home_writer is None:
            yield self
            return
        with self.home_writer() as home:
            yield home

    @property
    def store_location(self) -> str:
        """Where the catalog lives, as users name it: the home's store for a worker serving
        a copy of it."""
        return self.store.location if self.home_writer is None else str(self.settings.store_path)

    def adopt(self, other: Application) -> VectorStore:
        """Serve from another application's store (a fresh copy) from now on, with its table,
        marks and taxonomy; returns the store given up (the caller closes it). Its log
        connection is closed: this one's stays."""
        old = self.store
        self.store, self.columns, self.marks = other.store, other.columns, other.marks
        self.taxonomy = other.taxonomy
        self._recommender = None
        other.log.close()
        return old

    def ingested(self, taxonomy: Taxonomy) -> None:
        """What an ingest job recorded: the taxonomy with the catalog's new categories."""
        self.taxonomy = taxonomy

    def recommender(self, table: bool = False) -> Recommender:
        """The recommender; with `table` (a process that answers many queries) it reads the
        rerank's fields from a table in this process when it is the store's only writer
        (the embedded store), made on first use and then kept in step by the store."""
        if table and self.columns is None and self.store.exclusive and self.store.vector_dims():
            self.columns = Columns(self.store)
        held = self._recommender
        if held is None or held.taxonomy is not self.taxonomy or held.columns is not self.columns:
            held = self._recommender = Recommender(self.store, self.taxonomy, columns=self.columns)
        return held

    # the catalog -------------------------------------------------------------------------
    def summary(self) -> Summary:
        """Counts, spaces (size, weights), taxonomy, genders, categories, stores, shoppers."""
        dims = self.store.vector_dims()
        return Summary(
            store=self.store_location,
            items=self.store.count() if dims else 0,
            spaces={
                name: {"dim": dim, "weights": self.store.provenance(name)}
                for name, dim in sorted(dims.items())
            },
            default_space=space_in_force(self.settings.home, None, dims),
            taxonomy=self.taxonomy.name,
            genders=self.store.facet(GENDER) if dims else {},
            categories=self.store.facet(CATEGORY) if dims else {},
            stores=self.log.shops(),
            users=len(self.log.user_ids()),
            purchases=self.log.purchase_count(),
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
        with self.writing() as app:
            app.store.delete([point_id(i) for i in wanted])
            sync_ranks(app.store, app.columns, RANK_TOLERANCE)  # one fewer to rank among
        return len(wanted)

    def update_item(self, item_id: str, changes: ItemChanges) -> ItemDetail:
        """Mark an item in or out of stock, or give it a price, name or link."""
        payload = changes.payload()
        self.point(item_id)  # NotFoundError when the catalog lacks it
        with self.writing() as app:
            app.store.set_payload([point_id(item_id)], payload)
        return self.item(item_id)

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
            store=_shop_place(payload, {s.id: s for s in self.log.shops()}),
            image_url=f"/items/{quote(item_id, safe='')}/image",
        )

    def photo(self, item_id: str) -> Photo:
        """The file of an item's photo and its media type (read from the file itself)."""
        stored = self.point(item_id).payload.get(IMAGE)
        path = Path(str(stored or ""))
        if not stored or not path.is_file():
            raise NotFoundError(f"item {item_id!r} has no photo on this machine")
        try:
            with Image.open(path) as image:
                kind = Image.MIME.get(image.format or "")
        except (OSError, UnidentifiedImageError):
            raise NotFoundError(f"the photo of item {item_id!r} cannot be read") from None
        return Photo(path, kind or "application/octet-stream")

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
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise NotFoundError(
                f"the network input of item {item_id!r} cannot be made again ({one_line(exc)})"
            ) from None
        buffer = io.BytesIO()
        Image.fromarray(pixels.transpose(1, 2, 0)).save(buffer, format="PNG")
        return NetworkInput(buffer.getvalue(), masked)

    # recommendations -------------------------------------------------------------------
    def gender(self, text: str) -> str:
        """A gender in the shop's words (an alias of the taxonomy's); ConfigError otherwise."""
        known = self.taxonomy.gender(text)
        if known is None:
            genders = ", ".join(self.taxonomy.all_genders)
            raise ConfigError(f"gender must be one of {genders}, got {text!r}")
        return known

    def category(self, text: str) -> str:
        """A category in the shop's words: the taxonomy's, one of its aliases, or one the
        catalog has (any case); ConfigError naming some of those otherwise."""
        known = self.taxonomy.category(text)
        if known is not None:
            return known
        stored = self.store.facet(CATEGORY) if self.store.vector_dims() else {}
        spelled = {category_key(c): c for c in stored}
        if category_key(text) in spelled:
            return spelled[category_key(text)]
        shown = sorted(stored) or list(self.taxonomy.categories)
        more = ", …" if len(shown) > 12 else ""
        raise ConfigError(
            f"unknown category {text!r}; the catalog has {', '.join(shown[:12])}{more}"
        )

    def filters(self, gender: str | None, category: str | None) -> dict[str, str]:
        """Payload conditions for a gender and category in the shop's words (None or empty:
        any); ConfigError for a value the catalog does not know."""
        equals: dict[str, str] = {}
        if gender:
            equals[GENDER] = self.gender(gender)
        if category:
            equals[CATEGORY] = self.category(category)
        return equals

    def ranking(self, params: Params) -> Params:
        """The ranking asked for, with this home's default space and popularity mode where
        none was given and the gender in the taxonomy's words; NotFoundError for a compact
        space the store lacks."""
        dims = self.store.vector_dims()
        space = space_in_force(self.settings.home, params.space, dims)
        missing = missing_space(space, dims)
        if missing:
            raise NotFoundError(missing)
        mode = params.popularity or self.log.popularity_settings().mode
        gender = None if params.gender is None else self.gender(params.gender)
        category = None if not params.category else self.category(params.category)
        asked = replace(params, space=space, popularity=mode, gender=gender, category=category)
        return asked.validate()

    def similar(self, item_id: str, params: Params) -> Recommended:
        """Items like this one, every term of each (`recommend --item`)."""
        params = self.ranking(params)
        recs = self.recommender().for_item(item_id, params)
        return self._recommended(params, [Ranked(f"like {item_id}", recs)], item=item_id)

    def for_user(self, user_id: str, params: Params) -> Recommended:
        """Top-k after each of a user's purchases, and one merged list (`recommend --user`)."""
        params = self.ranking(params)
        user = self.shopper(user_id)
        result = self.recommender().for_user(user, list(self.log.purchases(user.id)), params)
        lists = [Ranked(f"after {p.item_id}", recs) for p, recs in result.per_purchase]
        return self._recommended(params, [*lists, Ranked("merged", result.merged)], user=user)

    def by_photo(self, vector: NDArray[np.float32], params: Params) -> Recommended:
        """Items like a photo's vector in the searched space (`params` as `ranking` made
        them): of the gender asked for, else any; t as given (0.5 by default)."""
        recs = self.recommender().for_vector(vector, params)
        return self._recommended(params, [Ranked("like the photo", recs)], item=PHOTO)

    def _described(self, lists: list[Ranked], ranked_by: str) -> list[Ranked]:
        """The lists with each item's name, price, link and stock from its payload (one
        read for every listed item), and its popularity as of now: the stored trending
        score is referred to the log's anchor (it ranks as the decayed one does), and a
        person reads the decayed purchase count."""
        ids = sorted({r.item_id for ranked in lists for r in ranked.recommendations})
        payloads = {
            str(r.payload.get(ITEM_ID)): r.payload
            for r in self.store.retrieve([point_id(i) for i in ids])
        }
        scale = self.log.trend_scale(datetime.now(UTC)) if ranked_by == "trending" else 1.0

        def described(rec: Recommendation) -> Recommendation:
            payload = payloads.get(rec.item_id, {})
            price = payload.get(PRICE)
            return replace(
                rec,
                popularity=rec.popularity * scale,
                name=payload.get(NAME),
                price=None if price is None else float(price),
                url=payload.get(URL),
                in_stock=payload.get(IN_STOCK),
            )

        return [Ranked(r.list, [described(rec) for rec in r.recommendations]) for r in lists]

    def _recommended(self, params: Params, lists: list[Ranked], **header: Any) -> Recommended:
        space = params.searched
        vectors = Vectors(
            space,
            self.store.provenance(space),
            self.taxonomy.name,
            source_weights(self.store, space).get("source"),
        )
        trend = replace(self.log.popularity_settings(), mode=params.ranked_by).text()
        return Recommended(
            vectors,
            params.weights,
            trend,
            self._described(lists, params.ranked_by),
            normalise=params.normalise,
            **header,
        )

    # shoppers --------------------------------------------------------------------------
    def shopper(self, user_id: str) -> User:
        """A user; NotFoundError when the log lacks them."""
        user = self.log.user(user_id)
        if user is None:
            raise NotFoundError(f"unknown user {user_id!r}")
        return user

    def users(self, limit: int) -> UserList:
        """Some user ids and how many there are."""
        ids = self.log.user_ids()
        return UserList(ids[:limit], len(ids))

    def user(self, user_id: str) -> UserDetail:
        """A user's gender, trendiness and home, and their purchases with the category, the
        shop and its distance from home (`users show`)."""
        user = self.shopper(user_id)
        purchases = list(self.log.purchases(user_id))
        shops = {s.id: s for s in self.log.shops()}
        ids = sorted({p.item_id for p in purchases})
        payloads = {
            str(r.payload.get(ITEM_ID)): r.payload
            for r in self.store.retrieve([point_id(i) for i in ids])
        }
        bought = []
        for p in purchases:
            shop = shops.get(p.store_id or "")
            payload = payloads.get(p.item_id)
            price = None if payload is None else payload.get(PRICE)
            bought.append(
                Bought(
                    p.timestamp,
                    p.item_id,
                    None if payload is None else payload.get(CATEGORY),
                    p.store_id,
                    shop.name if shop else None,
                    distance_km(user.home, shop.location) if shop else None,
                    name=None if payload is None else payload.get(NAME),
                    price=None if price is None else float(price),
                    in_catalog=payload is not None,
                )
            )
        return UserDetail(user.id, user.gender, user.trendiness, user.home, bought)

    def record_purchases(self, rows: list[Row], source: str) -> Recorded:
        """Record purchases, all or nothing, each event once; first-time shoppers are
        created (engine.shoppers.purchases.record)."""
        if self.home_writer is None:
            return record(self.store, self.log, rows, source, table=self.columns, marks=self.marks)
        # a worker's copy follows the log: take these and any other worker's in one go
        done = record(self.store, self.log, rows, source, sync=False)
        catch_up(self.store, self.log, self.columns, self.marks)
        return done

    def import_purchases(
        self, path: Path, data: bytes | None = None, zone: tzinfo | None = None
    ) -> ImportSummary:
        """Import a purchase log CSV (the file, or `data` read from a file so named), all
        rows or none, through the same recording path as record_purchases."""
        if self.home_writer is None:
            return import_purchases(
                self.store, self.log, path, data, zone, table=self.columns, marks=self.marks
            )
        done = import_purchases(self.store, self.log, path, data, zone, sync=False)
        catch_up(self.store, self.log, self.columns, self.marks)
        return done


def taxonomy_in_force(settings: Settings, log: EventLog) -> Taxonomy:
    """The taxonomy asked for, else the one recorded at ingest, else DeepFashion's."""
    if settings.taxonomy:
        return load(settings.taxonomy)
    return log.taxonomy() or deepfashion()


def _shop_place(payload: dict[str, Any], shops: dict[str, Shop]) -> ShopPlace | None:
    """An item's shop: the log's, else what the payload says of it."""
    shop_id = payload.get(STORE_ID)
    if shop_id is None:
        return None
    shop = shops.get(str(shop_id))
    if shop is None:
        return ShopPlace(str(shop_id), None, payload.get(STORE_LOCATION))
    return ShopPlace(shop.id, shop.name, shop.location)
