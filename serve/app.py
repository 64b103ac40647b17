"""The service's FastAPI application: the JSON API and the page, as thin over the engine as the CLI.

One process owns one vector store and one event log for its lifetime. Every endpoint is
`async def` and calls the (blocking, quick) engine on the event loop's thread, one request
at a time as the CLI's commands are: Qdrant Edge holds the interpreter's lock while it
searches, so threads would add waiting, not speed. An ingest sent with POST /ingest runs in
a thread of its own (serve/ingesting.py) with its own connection to the log.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final
from urllib.parse import quote

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.catalog.framing import INPUT_SIZE, frame, pad_colour
from engine.catalog.items import MASK_SUFFIX
from engine.catalog.masks import apply_mask
from engine.catalog.taxonomy import Taxonomy, deepfashion, load
from engine.errors import (
    ConfigError,
    EventLogError,
    FashionrecError,
    MaskError,
    NotFoundError,
    ShopsError,
    StoreError,
    one_line,
)
from engine.geo import Location, distance_km
from engine.recommend.columns import Columns
from engine.recommend.recommender import Params, Recommender
from engine.recommend.scoring import preset_weights
from engine.records import Purchase, Shop, User
from engine.schema import (
    CATEGORY,
    GENDER,
    IMAGE,
    ITEM_ID,
    POPULARITY,
    PRODUCT_ID,
    STORE_ID,
    STORE_LOCATION,
    point_id,
)
from engine.settings import API_KEY_ENV, Settings
from engine.shoppers.eventlog import EventLog, event_id
from engine.shoppers.purchases import import_purchases, time_zone
from engine.shoppers.sync import popularity_in_step, sync_popularity
from engine.shoppers.trending import as_of
from engine.spaces.registry import (
    DEFAULT_BACKBONE,
    backbone_in_force,
    missing_space,
    source_weights,
)
from engine.vectorstore import open_store
from engine.vectorstore.base import Filter, Record, VectorStore
from ingest.options import IngestJob
from serve.ingesting import Busy, Ingests
from serve.models import ErrorBody, IngestIn, parse_purchases, purchases_body_schema

if TYPE_CHECKING:
    from engine.recommend.rerank import Recommendation

logger = logging.getLogger("fashionrec.serve")

STATIC: Final = Path(__file__).parent / "static"
MAX_BODY: Final = 1_000_000  # bytes a request body may have (1 MB)
MAX_UPLOAD: Final = 64_000_000  # a purchase log sent whole (64 MB)
UPLOADS: Final = frozenset({"/purchases/import"})
SOURCE: Final = "api"  # what the event log records as the source of purchases posted here
# Reads that stay open with --private: the page's own files, liveness and the API's shape.
PUBLIC: Final = (
    "/",
    "/favicon.ico",
    "/health",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
)
PAGE_POLICY: Final = (
    "default-src 'self'; img-src 'self' blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
LIST_FIELDS: Final = (ITEM_ID, PRODUCT_ID, GENDER, CATEGORY, STORE_ID, POPULARITY)
ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 413, 422, 503)
}


def status_of(error: FashionrecError) -> int:
    """The HTTP status of an engine error: bad values 422, unknown names 404, a conflict
    409, a back-end that fails 503, any other bad input 400."""
    if isinstance(error, ConfigError):
        return 422
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ShopsError | Busy):
        return 409
    if isinstance(error, StoreError | EventLogError):
        return 503
    return 400


# --- what the service owns -----------------------------------------------------------------


@dataclass
class Service:
    """The vector store, the event log beside it and the taxonomy in force, held open; and
    the ingest jobs that write to them."""

    store: VectorStore
    log: EventLog
    taxonomy: Taxonomy
    settings: Settings
    ingests: Ingests = field(init=False)
    columns: Columns | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.ingests = Ingests(self.settings, self.store, status_of, self._taxonomy_changed)

    def recommender(self) -> Recommender:
        """The recommender, reading the rerank's fields from a table in this process when
        it is the store's only writer (the embedded store); made on first use, then kept
        in step by the store's writes."""
        if self.columns is None and self.store.exclusive and self.store.vector_dims():
            self.columns = Columns(self.store)
        return Recommender(self.store, self.taxonomy, columns=self.columns)

    def _taxonomy_changed(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy

    @classmethod
    def open(cls, settings: Settings) -> Service:
        """Open the configured store and its event log; the taxonomy is the one asked for,
        else the one recorded at ingest, else DeepFashion's (as the CLI's commands take it)."""
        store = open_store(settings)
        try:
            events = EventLog(settings.event_log_path)
            try:
                taxonomy = load(settings.taxonomy) if settings.taxonomy else None
                chosen = taxonomy or events.taxonomy() or deepfashion()
                try:
                    if store.vector_dims() and popularity_in_step(store, events):
                        logger.info("popularity payloads brought in step with the event log")
                except StoreError as exc:  # every request will say so (503); serve anyway
                    logger.warning("popularity payloads not synced: %s", one_line(exc, 300))
                service = cls(store, events, chosen, settings)
                try:
                    service.recommender()  # read the table now, not in the first request
                except StoreError as exc:
                    logger.warning("rerank fields not read: %s", one_line(exc, 300))
                return service
            except BaseException:
                events.close()
                raise
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        """Close the log and the store."""
        try:
            self.log.close()
        finally:
            self.store.close()

    # items ---------------------------------------------------------------------------------
    def record(self, item_id: str) -> Record:
        """An item's point (payload only); NotFoundError when the catalog lacks it."""
        found = self.store.retrieve([point_id(item_id)])
        if not found:
            raise NotFoundError(f"unknown item {item_id!r}")
        return found[0]

    def shops(self) -> dict[str, Shop]:
        """The log's shops by id."""
        return {s.id: s for s in self.log.shops()}

    def item(self, item_id: str) -> dict[str, Any]:
        """An item's payload, its current popularity (the log's, else the payload's) and
        its store."""
        payload = self.record(item_id).payload
        counted = self.log.popularity([item_id]).get(item_id)
        popularity = float(payload.get(POPULARITY, 0.0)) if counted is None else float(counted)
        half_life = self.log.popularity_settings().half_life_days
        stored = self.log.trend([item_id]).get(item_id, 0.0)
        now = datetime.now(UTC)
        return {
            "item_id": item_id,
            "payload": payload,
            "popularity": popularity,
            "trending": as_of(stored, now, self.log.trend_anchor(), half_life),
            "store": shop_json(payload, self.shops()),
            "image_url": f"/items/{quote(item_id, safe='')}/image",
        }

    def items(self, gender: str | None, category: str | None, limit: int) -> dict[str, Any]:
        """Some catalog items (in the store's order), optionally of one gender and category."""
        if not self.store.vector_dims():
            return {"items": [], "count": 0}
        equals = {k: v for k, v in ((GENDER, gender), (CATEGORY, category)) if v}
        records = islice(self.store.scroll(LIST_FIELDS, Filter(equals=equals), page=limit), limit)
        rows = [{f: r.payload.get(f) for f in LIST_FIELDS} for r in records]
        return {"items": rows, "count": self.store.count(Filter(equals=equals))}

    def photo(self, item_id: str) -> tuple[Path, str]:
        """The file of an item's photo and its media type (read from the file itself)."""
        stored = self.record(item_id).payload.get(IMAGE)
        path = Path(str(stored or ""))
        if not stored or not path.is_file():
            raise NotFoundError(f"item {item_id!r} has no photo on this machine ({stored})")
        try:
            with Image.open(path) as image:
                kind = Image.MIME.get(image.format or "")
        except (OSError, UnidentifiedImageError) as exc:
            raise NotFoundError(f"the photo of item {item_id!r} cannot be read ({exc})") from None
        return path, kind or "application/octet-stream"

    def network_input(self, item_id: str, masked: bool) -> tuple[bytes, bool]:
        """The 224×224 picture the CNN saw, as PNG bytes, and whether a mask was applied.

        masked: black out the removed labels (background, hair, face, skin) with the item's
        DF-MM mask, `<photo folder>/../segm/<item_id>_segm.png`, when there is one that can be
        read; then letterbox as ingest does, padded black when masked, white when not.
        """
        path, _ = self.photo(item_id)
        try:
            with Image.open(path) as raw:
                image = raw.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            raise NotFoundError(f"the photo of item {item_id!r} cannot be read ({exc})") from None
        applied = False
        mask_path = path.parent.parent / "segm" / f"{item_id}{MASK_SUFFIX}"
        if masked and mask_path.is_file():
            try:
                with Image.open(mask_path) as mask:
                    mask.load()
                    image = apply_mask(image, mask)
                applied = True
            except (OSError, UnidentifiedImageError, MaskError) as exc:
                logger.warning("mask %s of item %r not applied (%s)", mask_path, item_id, exc)
        framed = frame(image, "letterbox", INPUT_SIZE, pad_colour(applied))
        buffer = io.BytesIO()
        framed.save(buffer, format="PNG")
        return buffer.getvalue(), applied

    def catalog(self) -> dict[str, Any]:
        """What the page needs to start: counts, backbones and their weights, taxonomy,
        genders, categories, stores."""
        dims = self.store.vector_dims()
        return {
            "store": self.store.location,
            "items": self.store.count() if dims else 0,
            "backbones": {
                name: {"dim": dim, "weights": self.store.provenance(name)}
                for name, dim in sorted(dims.items())
            },
            "default_backbone": backbone_in_force(self.settings.home, None),
            "taxonomy": self.taxonomy.name,
            "genders": self.store.facet(GENDER) if dims else {},
            "categories": self.store.facet(CATEGORY) if dims else {},
            "stores": [
                {"id": s.id, "name": s.name, "location": asdict(s.location)}
                for s in self.log.shops()
            ],
            "users": len(self.log.user_ids()),
            "purchases": self.log.purchase_count(),
        }

    # recommendations -------------------------------------------------------------------------
    def similar(self, item_id: str, params: Params) -> dict[str, Any]:
        """`recommend --item ID --json`: items like this one, every term of each."""
        recs = self.recommender().for_item(item_id, params)
        return self._document({"item": item_id}, [(f"like {item_id}", recs)], params)

    def user(self, user_id: str) -> User:
        """A user; NotFoundError when the log lacks them."""
        user = self.log.user(user_id)
        if user is None:
            raise NotFoundError(f"unknown user {user_id!r}")
        return user

    def user_detail(self, user_id: str) -> dict[str, Any]:
        """`users show`: gender, trendiness, home, and purchases with their store and km."""
        user = self.user(user_id)
        purchases = list(self.log.purchases(user_id))
        shops = self.shops()
        ids = sorted({p.item_id for p in purchases})
        categories = {
            str(r.payload.get(ITEM_ID)): r.payload.get(CATEGORY)
            for r in self.store.retrieve([point_id(i) for i in ids])
        }
        rows = []
        for p in purchases:
            shop = shops.get(p.store_id or "")
            rows.append(
                {
                    "timestamp": p.timestamp.isoformat(),
                    "item_id": p.item_id,
                    "category": categories.get(p.item_id),
                    "store_id": p.store_id,
                    "store_name": shop.name if shop else None,
                    "distance_km": distance_km(user.home, shop.location) if shop else None,
                }
            )
        return {**asdict(user), "purchases": rows}

    def for_user(self, user_id: str, params: Params) -> dict[str, Any]:
        """`recommend --user ID --json`: top-k after each purchase, and merged."""
        user = self.user(user_id)
        result = self.recommender().for_user(user, list(self.log.purchases(user.id)), params)
        lists = [(f"after {p.item_id}", recs) for p, recs in result.per_purchase]
        lists.append(("merged", result.merged))
        return self._document({"user": asdict(user)}, lists, params)

    def _document(
        self,
        header: dict[str, Any],
        lists: Sequence[tuple[str, list[Recommendation]]],
        params: Params,
    ) -> dict[str, Any]:
        """The document `recommend --json` prints (non-finite numbers as null)."""
        vectors = {
            "backbone": params.backbone,
            "weights": self.store.provenance(params.backbone),
            "taxonomy": self.taxonomy.name,
            **source_weights(self.store, params.backbone),
        }
        body = [
            {"list": name, "recommendations": [finite(asdict(r)) for r in recs]}
            for name, recs in lists
        ]
        trend = replace(self.log.popularity_settings(), mode=params.popularity).text()
        return {
            **header,
            "vectors": vectors,
            "weights": asdict(params.weights),
            "popularity": trend,
            "lists": body,
        }

    # purchases ---------------------------------------------------------------------------------
    def add_purchases(self, data: object) -> dict[str, Any]:
        """Record purchases as an import does, all or nothing: every user, item and store must
        exist; one transaction; the touched items' popularity synced at once."""
        rows = parse_purchases(data)
        item_ids = sorted({r.item_id for r in rows})
        found = {
            str(r.payload[ITEM_ID]): r.payload
            for r in self.store.retrieve([point_id(i) for i in item_ids])
        }
        shops = self.shops()
        for number, row in enumerate(rows, start=1):
            if row.item_id not in found:
                problem = f"unknown item {row.item_id!r}"
            elif self.log.user(row.user_id) is None:
                problem = f"unknown user {row.user_id!r}"
            elif row.store_id is not None and row.store_id not in shops:
                problem = f"unknown store {row.store_id!r}"
            else:
                continue
            raise NotFoundError(f"purchase {number}: {problem}; nothing recorded")
        purchases = [
            Purchase(
                r.user_id,
                r.item_id,
                r.timestamp,
                r.store_id or found[r.item_id].get(STORE_ID),
                r.event_id or event_id(r.user_id, r.item_id, r.timestamp, r.store_id),
            )
            for r in rows
        ]
        with self.log.transaction():
            self.log.add_items(item_ids)
            added = self.log.add_purchases(purchases, source=SOURCE)
        fresh = {p.event_id for p in added}
        sync_popularity(self.store, self.log, item_ids)
        self.store.optimize()  # index the moved points once there are enough of them
        return {
            "recorded": [{**asdict(p), "timestamp": p.timestamp.isoformat()} for p in added],
            "already": sorted({p.event_id for p in purchases} - fresh),
            "popularity": {k: float(v) for k, v in self.log.popularity(item_ids).items()},
        }

    def import_purchases(self, name: str, data: bytes, timezone: str | None) -> dict[str, Any]:
        """`purchases import`: a whole CSV log, all rows or none; unknown users are created;
        each event counts once."""
        zone = None if timezone is None else time_zone(timezone)
        summary = import_purchases(self.store, self.log, Path(Path(name).name), data, zone)
        self.store.optimize()
        return asdict(summary)


def shop_json(payload: dict[str, Any], shops: dict[str, Shop]) -> dict[str, Any] | None:
    """An item's store: id, name and location (the payload's when the log lacks the store)."""
    shop_id = payload.get(STORE_ID)
    if shop_id is None:
        return None
    shop = shops.get(str(shop_id))
    if shop is None:
        return {"id": shop_id, "name": None, "location": payload.get(STORE_LOCATION)}
    return {"id": shop.id, "name": shop.name, "location": asdict(shop.location)}


def finite(row: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinities as None (JSON has no such numbers)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


# --- query parameters ------------------------------------------------------------------------


async def ranking(
    k: Annotated[int, Query(le=100, description="Recommendations per list.")] = 5,
    backbone: Annotated[
        str | None,
        Query(
            description="Vector space to search: a backbone or a compact space (default: "
            "the store's default space, else resnet50)."
        ),
    ] = None,
    candidates: Annotated[int, Query(le=1000, description="ANN candidates.")] = 100,
    preset: Annotated[str, Query(description="default (0.6/0.2/0.2) or paper.")] = "default",
    w_visual: Annotated[float | None, Query(description="w_v, visual similarity.")] = None,
    w_popularity: Annotated[float | None, Query(description="w_p, popularity.")] = None,
    w_category: Annotated[float | None, Query(description="w_c, category similarity.")] = None,
    gamma: Annotated[float | None, Query(description="γ of 1 − |NormPop − t|^γ.")] = None,
    w_distance: Annotated[float, Query(description="w_d of w_d·exp(−d/scale).")] = 0.0,
    distance_scale_km: Annotated[float, Query(description="scale of the distance term.")] = 5.0,
    max_km: Annotated[float | None, Query(description="Only stores within this many km.")] = None,
    rerank: Annotated[str, Query(description="client (numpy) or server (in Qdrant).")] = "client",
    diversity: Annotated[
        float, Query(description="λ of maximal marginal relevance; 0 ranks by relevance.")
    ] = 0.0,
    popularity: Annotated[
        str | None, Query(description="all-time or trending (default: the store's mode).")
    ] = None,
) -> Params:
    """The options `recommend` takes, as query parameters (the engine validates them)."""
    weights = preset_weights(
        preset,
        visual=w_visual,
        popularity=w_popularity,
        category=w_category,
        gamma=gamma,
        distance=w_distance,
        distance_scale_km=distance_scale_km,
    )
    return Params(
        backbone=backbone or DEFAULT_BACKBONE,
        k=k,
        candidates=candidates,
        weights=weights,
        max_km=max_km,
        rerank=rerank,  # type: ignore[arg-type]  # validated below
        diversity=diversity,
        popularity=popularity or "all-time",  # type: ignore[arg-type]  # validated below
    ).validate()


async def service_of(request: Request) -> Service:
    """The service the application holds."""
    service: Service = request.app.state.service
    return service


Held = Annotated[Service, Depends(service_of)]


async def ranking_in_force(
    request: Request, params: Annotated[Params, Depends(ranking)], service: Held
) -> Params:
    """The ranking asked for, with the store's popularity mode and default space unless
    they were given; a compact space the store lacks is unknown (404)."""
    if "backbone" not in request.query_params:
        params = replace(params, backbone=backbone_in_force(service.settings.home, None))
    missing = missing_space(params.backbone, service.store.vector_dims())
    if missing:
        raise NotFoundError(missing)
    if "popularity" in request.query_params:
        return params
    return replace(params, popularity=service.log.popularity_settings().mode)


Ranking = Annotated[Params, Depends(ranking_in_force)]


# --- the guard: auth, body size, one log line, no traceback ------------------------------------


async def send_error(
    send: Send, status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer `{"error": message}` with this status."""
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Around every request: the API key (POSTs, and reads with --private), bodies over
    MAX_BODY (MAX_UPLOAD for a purchase log) refused with 413, one log line, and a
    one-line 500 for anything unexpected."""

    def __init__(self, app: ASGIApp, api_key: str | None, private: bool) -> None:
        self.app = app
        self.key = api_key.encode() if api_key else None
        self.private = private

    def refusal(self, scope: Scope) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """Why a request may not pass the API key check, if it may not."""
        if self.key is None:
            return None
        path = str(scope["path"])
        if scope["method"] in ("GET", "HEAD") and (
            not self.private or path in PUBLIC or path.startswith("/static/")
        ):
            return None
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        challenge = [(b"www-authenticate", b"Bearer")]
        if scheme.lower() != b"bearer" or not token.strip():
            return 401, f"{scope['method']} {path} needs Authorization: Bearer <key>", challenge
        if not hmac.compare_digest(token.strip(), self.key):
            return 403, "wrong API key", []
        return None

    async def body(self, scope: Scope, receive: Receive, limit: int) -> tuple[bytes | None, bool]:
        """The whole request body, or None when it is over the limit; and whether the
        client went away while sending it."""
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None, False
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None, False
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        query = scope.get("query_string", b"").decode("latin-1")
        target = str(scope["path"]) + (f"?{query}" if query else "")
        try:
            refused = self.refusal(scope)
            if refused is not None:
                await send_error(sending, *refused)
                return
            if scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
                limit = MAX_UPLOAD if scope["path"] in UPLOADS else MAX_BODY
                body, gone = await self.body(scope, receive, limit)
                if gone:
                    return
                if body is None:
                    await send_error(sending, 413, f"request body over {limit} bytes")
                    return
                receive = replay(body, receive)
            await self.app(scope, receive, sending)
        except Exception:
            logger.exception("%s %s failed", scope["method"], target)
            if not status:
                await send_error(sending, 500, "internal error; the server log has the details")
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            logger.info("%s %s %s %.1f ms", scope["method"], target, status or "-", elapsed)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body already read, then waits as the original does."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


# --- the application -------------------------------------------------------------------------


def create_app(
    settings: Settings,
    *,
    private: bool = False,
    api_key: str | None = None,
    service: Service | None = None,
) -> FastAPI:
    """The application serving the home (or server) the settings name.

    api_key: None reads FASHIONREC_API_KEY ("" means none); with a key every POST needs
    it, and with `private` every read but the page, /health and the docs. A `service`
    given is used as it is (its owner closes it); otherwise the store and the log are
    opened when the application starts and closed when it stops, on its event loop.
    """
    key = os.environ.get(API_KEY_ENV, "") if api_key is None else api_key
    if private and not key:
        raise ConfigError(f"--private needs an API key: set {API_KEY_ENV}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service is not None:
            app.state.service = service
            yield
            return
        opened = Service.open(settings)
        app.state.service = opened
        try:
            yield
        finally:
            opened.close()

    app = FastAPI(
        title="fashionrec",
        summary="Trend-aware fashion recommendations over one store and its event log.",
        version="0.1.0",
        lifespan=lifespan,
        responses=ERRORS,
    )
    app.add_middleware(Guard, api_key=key or None, private=private)

    @app.exception_handler(FashionrecError)
    async def engine_error(request: Request, exc: FashionrecError) -> JSONResponse:
        return JSONResponse({"error": one_line(exc, 500)}, status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"error": f"{where}: {first.get('msg')}"}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        messages = {
            404: f"no such path {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }
        text = messages.get(exc.status_code, str(exc.detail))
        return JSONResponse({"error": text}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health", tags=["service"])
    async def health(service: Held) -> dict[str, Any]:
        """200 while the store answers (503 when it does not)."""
        service.store.vector_dims()
        return {"status": "ok", "store": service.store.location}

    @app.get("/catalog", tags=["service"])
    async def catalog(service: Held) -> dict[str, Any]:
        """Counts, backbones (size, weights), taxonomy, genders, categories, stores."""
        return service.catalog()

    @app.get("/items", tags=["items"])
    async def items(
        service: Held,
        gender: str | None = None,
        category: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        """Some items (id, product, gender, category, store, popularity) and how many match."""
        return service.items(gender, category, limit)

    @app.get("/items/{item_id:path}/similar", tags=["items"])
    async def similar(
        item_id: str,
        service: Held,
        params: Ranking,
        trendiness: Annotated[float, Query(description="t of the query.")] = 0.5,
        lat: Annotated[float | None, Query(description="Where distances start.")] = None,
        lon: Annotated[float | None, Query(description="(with lat)")] = None,
        gender: Annotated[str | None, Query(description="Override the item's gender.")] = None,
    ) -> dict[str, Any]:
        """`recommend --item`: lists of recommendations with every term, the weights used,
        the vectors' provenance and the taxonomy."""
        if (lat is None) != (lon is None):
            raise ConfigError("give both lat and lon, or neither")
        at = None if lat is None else Location.parse(f"{lat},{lon}", "lat,lon")
        shown = None
        if gender is not None:
            shown = service.taxonomy.gender(gender)
            if shown is None:
                genders = ", ".join(service.taxonomy.all_genders)
                raise ConfigError(f"gender must be one of {genders}, got {gender!r}")
        params = replace(params, trendiness=trendiness, at=at, gender=shown).validate()
        return service.similar(item_id, params)

    @app.get("/items/{item_id:path}/image", tags=["items"], response_class=FileResponse)
    async def image(
        item_id: str,
        service: Held,
        masked: Annotated[
            bool,
            Query(
                description="The masked, framed 224×224 PNG the CNN saw (X-Masked: false "
                "when the item has no mask and the photo is only framed)."
            ),
        ] = False,
    ) -> Response:
        """The item's photo as stored (JPEG, PNG, …), or with masked=1 the network's input."""
        cache = {"Cache-Control": "max-age=300"}
        if masked:
            png, applied = service.network_input(item_id, masked=True)
            headers = {**cache, "X-Masked": "true" if applied else "false"}
            return Response(png, media_type="image/png", headers=headers)
        path, kind = service.photo(item_id)
        return FileResponse(path, media_type=kind, headers=cache)

    @app.get("/items/{item_id:path}", tags=["items"])
    async def item(item_id: str, service: Held) -> dict[str, Any]:
        """The item's payload, current popularity and store (id, name, location)."""
        return service.item(item_id)

    @app.get("/users", tags=["users"])
    async def users(
        service: Held, limit: Annotated[int, Query(ge=1, le=5000)] = 200
    ) -> dict[str, Any]:
        """Some user ids and how many there are."""
        ids = service.log.user_ids()
        return {"users": ids[:limit], "count": len(ids)}

    @app.get("/users/{user_id:path}/recommendations", tags=["users"])
    async def recommendations(user_id: str, service: Held, params: Ranking) -> dict[str, Any]:
        """`recommend --user`: top-k after each purchase and one merged list."""
        return service.for_user(user_id, params)

    @app.get("/users/{user_id:path}", tags=["users"])
    async def user(user_id: str, service: Held) -> dict[str, Any]:
        """Gender, trendiness, home and purchases (with store and km from home)."""
        return service.user_detail(user_id)

    @app.post(
        "/purchases",
        tags=["users"],
        status_code=201,
        openapi_extra={"requestBody": purchases_body_schema()},
    )
    async def purchases(request: Request, service: Held) -> dict[str, Any]:
        """Record one purchase or a list, all or nothing; popularity is synced at once."""
        try:
            data = json.loads(await request.body())
        except ValueError as exc:
            raise ConfigError(f"the body is not JSON ({exc})") from None
        return service.add_purchases(data)

    @app.post("/purchases/import", tags=["users"], status_code=201)
    async def purchases_import(
        request: Request,
        service: Held,
        name: Annotated[str, Query(description="The file's name, for messages.")] = "upload.csv",
        timezone: Annotated[
            str | None, Query(description="Read times without a zone in this one.")
        ] = None,
    ) -> dict[str, Any]:
        """`purchases import`: a whole CSV log (text/csv body), all rows or none; unknown
        users are created; rows already in the log or repeated are counted, left out.
        Up to 64 MB."""
        return service.import_purchases(name, await request.body(), timezone)

    @app.post("/ingest", tags=["ingest"], status_code=202)
    async def ingest(body: IngestIn, service: Held) -> dict[str, Any]:
        """`ingest PATH`: embed a catalog on this machine's files, in the background; the
        answer's `url` follows it. 409 while another ingest runs."""
        run = service.ingests.start(IngestJob.from_json(body.model_dump()))
        return {**run.to_json(), "url": f"/ingest/{run.id}"}

    @app.get("/ingest/{run_id}", tags=["ingest"])
    async def ingest_state(run_id: str, service: Held) -> dict[str, Any]:
        """An ingest's stage, items done of the total, and its outcome or error."""
        run = service.ingests.get(run_id)
        if run is None:
            raise NotFoundError(f"unknown ingest {run_id!r}")
        return run.to_json()

    return app
