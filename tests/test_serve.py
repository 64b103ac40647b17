"""`fashionrec serve`'s JSON API over a small home: every endpoint's answer and its errors, the
API key, the body limit, purchases that move popularity, and the service's place in the layout."""

from __future__ import annotations

import inspect
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute
from PIL import Image

from engine.catalog.inputs import load_input
from engine.catalog.items import Item
from engine.catalog.masks import DEFAULT_REMOVED
from engine.catalog.sources import open_catalog
from engine.errors import CatalogError, NotFoundError, StoreError
from engine.events.eventlog import EventLog
from engine.events.jobs import Jobs
from engine.recommend.rerank import Recommendation
from engine.settings import EVENT_LOG, SERVE_FILE, STORE_DIR, Settings
from engine.shoppers.simulation import SimulationConfig
from engine.shoppers.simulations import run_simulation
from engine.shops.placement import set_shops
from engine.shops.shops import generate_shops
from engine.vectorstore.edge import EdgeStore
from engine.vectorstore.edge.files import copy_tree
from engine.vocabulary.geo import DEFAULT_REGION
from engine.vocabulary.schema import point_id
from ingest.democatalog import DemoCatalog
from ingest.options import IngestOptions
from ingest.pipeline import ingest
from serve.guard import MAX_BODY
from serve.main import create_app, loopback_hosts
from serve.routes import ingest as jobs
from serve.routes import items, page, purchases, service, users
from tests.builders import (
    ROOT,
    FakeEmbedder,
    catalog_items,
    copy_catalog,
    fashionrec,
    store_items,
)

with warnings.catch_warnings():  # starlette would rather have httpx2; httpx works the same
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

FIRST: Final = "WOMEN-Dresses-id_00000001-01_1_front"  # its photo is a PNG
SECOND: Final = "WOMEN-Dresses-id_00000001-01_2_side"  # a JPEG
NO_PHOTO: Final = "MEN-Suiting-id_00000010-01_3_back"  # its photo is not on disk
KEY: Final = "correct horse battery staple"
JSON: Final = {"Content-Type": "application/json"}
CSV: Final = {"Content-Type": "text/csv"}
ISO: Final = "2025-06-01T10:00:00Z"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home: 30 items with photos (one PNG, one missing), 3 stores, 4 simulated users."""
    root = tmp_path_factory.mktemp("serve")
    photos = root / "photos"
    photos.mkdir()
    items = []
    for n, item in enumerate(catalog_items(2)):
        path = photos / f"{item.item_id}{'.png' if item.item_id == FIRST else '.jpg'}"
        if item.item_id != NO_PHOTO:
            Image.new("RGB", (12, 18), (n * 8 % 256, 80, 120)).save(path)
        items.append(replace(item, image=path))
    home = root / "home"
    store, log = EdgeStore(home / STORE_DIR), EventLog(home / EVENT_LOG)
    try:
        store_items(store, items)
        set_shops(store, log, generate_shops(3, DEFAULT_REGION, seed=1), DEFAULT_REGION, seed=1)
        run_simulation(store, log, SimulationConfig(users=4, max_purchases=3, seed=7))
    finally:
        log.close()
        store.close()
    return home


@pytest.fixture
def home(pristine: Path, tmp_path: Path) -> Path:
    """A private copy of the pristine home that a test may change."""
    return copy_tree(pristine, tmp_path / "home")  # the store's holes kept: fast


@pytest.fixture
def client(home: Path) -> Iterator[TestClient]:
    """The service over the home (no API key)."""
    with TestClient(create_app(Settings(home=home), api_key="")) as client:
        yield client


@pytest.fixture(scope="module")
def reader(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One service for the tests that only read, or whose writes must be refused (each
    checks that nothing changed): started once, over a copy of the pristine home."""
    home = copy_tree(pristine, tmp_path_factory.mktemp("reader") / "home")
    with TestClient(create_app(Settings(home=home), api_key="")) as client:
        yield client


def _error(response: Any, status: int) -> str:
    """The one-line error of a response that must have this status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and "\n" not in body["error"], body
    assert "Traceback" not in response.text
    return str(body["error"])


def _purchase(user: str = "sim-00001", item: str = FIRST, **more: object) -> dict[str, object]:
    return {"user_id": user, "item_id": item, "timestamp": ISO, **more}


def _log(home: Path) -> EventLog:
    return EventLog(home / EVENT_LOG)


# --- reads ---------------------------------------------------------------------------------


def test_health_and_catalog(reader: TestClient) -> None:
    health = reader.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    catalog = reader.get("/catalog").json()
    assert catalog["items"] == 30 and catalog["spaces"]["resnet50"]["dim"] == 4
    assert catalog["taxonomy"] == "deepfashion"
    assert catalog["genders"] == {"WOMEN": 18, "MEN": 12}
    assert [s["id"] for s in catalog["shops"]] == ["S01", "S02", "S03"]
    assert catalog["users"] == 4 and catalog["purchases"] > 0


def test_items_are_listed_and_filtered(reader: TestClient) -> None:
    some = reader.get("/items", params={"limit": 5}).json()
    assert some["count"] == 30 and len(some["items"]) == 5
    dresses = reader.get("/items", params={"category": "Dresses", "gender": "WOMEN"}).json()
    assert dresses["count"] == 6 and {i["category"] for i in dresses["items"]} == {"Dresses"}
    # the shop's own words: any case, the taxonomy's aliases
    assert reader.get("/items", params={"category": "dresses", "gender": "women"}).json() == dresses
    _error(reader.get("/items", params={"limit": 0}), 422)
    assert "unknown category 'Spacesuits'" in _error(
        reader.get("/items", params={"category": "Spacesuits"}), 422
    )
    assert "gender must be one of" in _error(reader.get("/items", params={"gender": "Kids"}), 422)


def test_an_item_has_its_payload_popularity_and_store(client: TestClient, home: Path) -> None:
    body = client.get(f"/items/{FIRST}").json()
    assert body["item_id"] == FIRST and body["payload"]["category"] == "Dresses"
    shop = next(s for s in generate_shops(3, DEFAULT_REGION, seed=1) if s.id == body["shop"]["id"])
    assert body["shop"] == {
        "id": shop.id,
        "name": shop.name,
        "location": {"lat": shop.location.lat, "lon": shop.location.lon},
    }
    assert body["popularity"] == body["payload"]["popularity"]
    assert body["image_url"] == f"/items/{FIRST}/image"
    assert _error(client.get("/items/nope"), 404) == "unknown item 'nope'"


def test_photos_are_served_as_stored(client: TestClient, pristine: Path) -> None:
    png = client.get(f"/items/{FIRST}/image")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    jpeg = client.get(f"/items/{SECOND}/image")
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert "image" not in client.get(f"/items/{SECOND}").json()["payload"]  # a server path
    assert jpeg.content == (pristine.parent / "photos" / f"{SECOND}.jpg").read_bytes()
    assert "has no photo" in _error(client.get(f"/items/{NO_PHOTO}/image"), 404)
    _error(client.get("/items/nope/image"), 404)


def _ingested_home(catalog: DemoCatalog, root: Path, kind: str, options: IngestOptions) -> Path:
    """A home holding two photos of the catalog, ingested (a cheap stand-in network) from
    a DF-MM folder whose masks lie elsewhere (`--masks DIR`), or from a manifest naming
    each mask (`mask_path`); the second photo has no mask."""
    part = copy_catalog(catalog, root / "catalog", limit=2)
    second = sorted(part.images.iterdir())[1]
    (part.masks / f"{second.stem}_segm.png").unlink()
    elsewhere = Path(shutil.move(part.masks, root / "masks-elsewhere"))
    if kind == "manifest":
        manifest = root / "catalog.csv"
        lines = ["path,gender,category,product_id,item_id,mask_path"]
        for n, photo in enumerate(sorted(part.images.iterdir())):
            mask = elsewhere / f"{photo.stem}_segm.png"
            named = str(mask.resolve()) if mask.is_file() else ""
            lines.append(f"catalog/images/{photo.name},WOMEN,Dresses,p{n},{photo.stem},{named}")
        manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
        found = open_catalog(manifest)
    else:
        found = open_catalog(part.images, elsewhere)
    home = root / "home"
    store = EdgeStore(home / STORE_DIR)
    try:
        ingest(found, store, {"resnet50": FakeEmbedder(8)}, options)
    finally:
        store.close()
    return home


@pytest.mark.parametrize(
    ("kind", "framing", "removed"),
    [
        ("dfmm", "letterbox", DEFAULT_REMOVED),
        ("manifest", "center-crop", ("background",)),
    ],
)
def test_the_masked_image_is_what_the_network_saw(
    small_catalog: DemoCatalog, tmp_path: Path, kind: str, framing: str, removed: tuple[str, ...]
) -> None:
    """masked=1: the network's input made again from the recipe ingest recorded (the mask
    wherever it was, the labels removed, the framing), pixel for pixel; X-Masked says
    whether a mask was applied."""
    options = IngestOptions(workers=0, framing=framing, removed=removed)  # type: ignore[arg-type]
    home = _ingested_home(small_catalog, tmp_path, kind, options)
    photos = [e for e in open_catalog(tmp_path / "catalog" / "images") if isinstance(e, Item)]
    with TestClient(create_app(Settings(home=home), api_key="")) as client:
        for photo, mask in zip(photos, (True, False), strict=True):
            shown = client.get(f"/items/{photo.item_id}/image", params={"masked": "1"})
            assert shown.status_code == 200, shown.text
            assert shown.headers["content-type"] == "image/png"
            assert shown.headers["x-masked"] == ("true" if mask else "false")
            mask_file = tmp_path / "masks-elsewhere" / f"{photo.item_id}_segm.png"
            seen, _ = load_input(
                replace(photo, mask=mask_file if mask else None),
                framing,  # type: ignore[arg-type]
                removed,
            )
            with Image.open(io.BytesIO(shown.content)) as png:
                assert np.array_equal(np.asarray(png).transpose(2, 0, 1), seen)
        unmasked = client.get(f"/items/{photos[0].item_id}/image?masked=0")
        assert unmasked.content == photos[0].image.read_bytes()
        assert "x-masked" not in unmasked.headers


def test_the_masked_image_of_an_item_without_a_photo_is_404(reader: TestClient) -> None:
    assert "has no photo" in _error(reader.get(f"/items/{NO_PHOTO}/image?masked=1"), 404)
    framed = reader.get(f"/items/{FIRST}/image?masked=1")  # no recipe recorded: framed only
    assert framed.status_code == 200 and framed.headers["x-masked"] == "false"


def test_similar_is_recommend_item_json(home: Path) -> None:
    args = ("-k", "4", "--w-visual", "0.5", "--gamma", "1.5", "--trendiness", "0.3")
    args += ("--normalise", "minmax")
    cli = fashionrec("recommend", "--item", FIRST, *args, "--at", "48.85,2.35", "--json", home=home)
    assert cli.returncode == 0, cli.stderr
    query = {"k": 4, "w_visual": 0.5, "gamma": 1.5, "trendiness": 0.3, "lat": 48.85, "lon": 2.35}
    query["normalise"] = "minmax"
    with TestClient(create_app(Settings(home=home), api_key="")) as client:
        response = client.get(f"/items/{FIRST}/similar", params=query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == json.loads(cli.stdout)
    recs = body["lists"][0]["recommendations"]
    assert len(recs) == 4 and [r["rank"] for r in recs] == [1, 2, 3, 4]
    assert set(recs[0]) == {f.name for f in fields(Recommendation)}
    assert all(r["gender"] == "WOMEN" and r["distance_km"] is not None for r in recs)
    assert body["weights"]["visual"] == 0.5 and body["weights"]["gamma"] == 1.5
    assert body["normalise"] == "minmax"
    assert body["vectors"] == {
        "space": "resnet50",
        "weights": {},
        "taxonomy": "deepfashion",
        "source": None,
    }


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({"k": 0}, 422, "k must be positive, got 0"),
        ({"k": "many"}, 422, "k: Input should be a valid integer"),
        ({"k": 101}, 422, "k: Input should be less than or equal to 100"),
        ({"w_visual": 2}, 422, "weight visual must be in [0, 1], got 2.0"),
        ({"gamma": "nan"}, 422, "gamma must be positive"),
        ({"trendiness": 1.5}, 422, "trendiness must be in [0, 1], got 1.5"),
        ({"max_km": 10}, 422, "--max-km needs a location"),
        ({"lat": 48.8}, 422, "give both lat and lon, or neither"),
        ({"lat": 148.8, "lon": 2}, 422, "need -90 <= LAT <= 90"),
        ({"rerank": "gpu"}, 422, "rerank"),
        ({"preset": "fancy"}, 422, "--preset must be one of default, paper"),
        ({"normalise": "zscore"}, 422, "normalise must be one of rank, minmax, got 'zscore'"),
        ({"gender": "ALIENS"}, 422, "gender must be one of"),
        ({"backbone": "vgg16"}, 404, "backbone vgg16 is not ingested"),
    ],
)
def test_similar_refuses_bad_parameters(
    reader: TestClient, query: dict[str, object], status: int, message: str
) -> None:
    assert message in _error(reader.get(f"/items/{FIRST}/similar", params=query), status)


def test_similar_of_an_unknown_item_is_404(reader: TestClient) -> None:
    assert _error(reader.get("/items/nope/similar"), 404) == "unknown item 'nope'"


def test_similar_with_the_formula_in_qdrant_and_filters(reader: TestClient) -> None:
    query = {"rerank": "server", "w_visual": 0, "k": 3, "lat": 48.86, "lon": 2.35, "max_km": 500}
    body = reader.get(f"/items/{FIRST}/similar", params=query).json()
    recs = body["lists"][0]["recommendations"]
    assert len(recs) == 3 and all(r["visual"] is None for r in recs)  # NaN travels as null
    men = reader.get(f"/items/{FIRST}/similar", params={"gender": "men", "k": 3}).json()
    assert {r["gender"] for r in men["lists"][0]["recommendations"]} == {"MEN"}


def test_a_user_has_gender_trendiness_home_and_purchases(client: TestClient, home: Path) -> None:
    log = _log(home)
    try:
        user, bought = log.user("sim-00001"), list(log.purchases("sim-00001"))
    finally:
        log.close()
    assert user is not None
    body = client.get("/users/sim-00001").json()
    assert body["id"] == "sim-00001"
    assert (body["gender"], body["trendiness"]) == (user.gender, user.trendiness)
    assert body["residence"] == {"lat": user.residence.lat, "lon": user.residence.lon}
    assert [p["item_id"] for p in body["purchases"]] == [p.item_id for p in bought]
    first = body["purchases"][0]
    assert first["store_id"] and first["shop_name"].startswith("Shop ")
    assert first["distance_km"] > 0 and first["category"]
    listed = client.get("/users").json()
    assert listed["count"] == 4 and listed["users"][0] == "sim-00001"
    assert _error(client.get("/users/nobody"), 404) == "unknown user 'nobody'"


def test_user_recommendations_are_recommend_user_json(home: Path) -> None:
    cli = fashionrec("recommend", "--user", "sim-00002", "-k", "3", "--json", home=home)
    assert cli.returncode == 0, cli.stderr
    with TestClient(create_app(Settings(home=home), api_key="")) as client:
        body = client.get("/users/sim-00002/recommendations", params={"k": 3}).json()
        _error(client.get("/users/nobody/recommendations"), 404)
        _error(client.get("/users/sim-00002/recommendations", params={"w_category": -1}), 422)
    assert body == json.loads(cli.stdout)
    names = [entry["list"] for entry in body["lists"]]
    assert names[-1] == "merged" and all(n.startswith("after ") for n in names[:-1])
    assert body["user"]["id"] == "sim-00002"


def test_tune_on_demand_ranks_by_the_fitted_profile_without_a_restart(home: Path) -> None:
    """POST /tune needs the key and enough purchases; once fitted, the next recommendations
    are blended (each item with the sources that brought it), in the same process."""
    with TestClient(create_app(Settings(home=home), api_key="k")) as client:
        auth = {"Authorization": "Bearer k", "Content-Type": "application/json"}
        _error(client.post("/tune", headers={"Content-Type": "application/json"}), 401)
        assert "tuning needs at least" in _error(client.post("/tune", headers=auth), 422)
    store, log = EdgeStore(home / STORE_DIR), EventLog(home / EVENT_LOG)
    try:
        run_simulation(store, log, SimulationConfig(users=90, max_purchases=5, seed=8))
    finally:
        log.close()
        store.close()
    with TestClient(create_app(Settings(home=home), api_key="k")) as client:
        before = client.get("/users/sim-00002/recommendations", params={"k": 3}).json()
        assert before["strategy"] == "client" and before["profile"] is None
        fitted = client.post("/tune", headers=auth).json()
        assert set(fitted["validation"]) == {"tuned", "default", "paper"}
        after = client.get("/users/sim-00002/recommendations", params={"k": 3}).json()
        assert after["strategy"] == "blended" and after["profile"]["weights"] == fitted["weights"]
        (merged,) = after["lists"]
        assert all(r["sources"] for r in merged["recommendations"])
        hand = client.get("/users/sim-00002/recommendations", params={"preset": "default"})
        assert hand.json()["strategy"] == "client"


# --- purchases ---------------------------------------------------------------------------------


def _popularity_in(body: dict[str, Any], item: str) -> float:
    recs = body["lists"][0]["recommendations"]
    return float(next(r["popularity"] for r in recs if r["item_id"] == item))


def test_a_purchase_moves_popularity_and_the_next_recommendation_sees_it(
    client: TestClient,
) -> None:
    visual_only = {"k": 20, "w_visual": 1, "w_popularity": 0, "w_category": 0}
    before = client.get(f"/items/{FIRST}/similar", params=visual_only).json()
    target = before["lists"][0]["recommendations"][0]["item_id"]
    was = client.get(f"/items/{target}").json()["popularity"]
    assert _popularity_in(before, target) == was

    response = client.post("/purchases", json=_purchase(item=target))
    assert response.status_code == 201, response.text
    recorded = response.json()
    assert recorded["recorded"][0]["item_id"] == target
    assert recorded["recorded"][0]["timestamp"] == "2025-06-01T10:00:00+00:00"
    now = client.get(f"/items/{target}").json()
    assert recorded["recorded"][0]["store_id"] == now["shop"]["id"]
    assert recorded["popularity"] == {target: was + 1}
    assert now["popularity"] == was + 1
    after = client.get(f"/items/{FIRST}/similar", params=visual_only).json()
    assert _popularity_in(after, target) == was + 1
    bought = [p["item_id"] for p in client.get("/users/sim-00001").json()["purchases"]]
    assert target in bought


def test_a_first_time_shopper_is_created_as_an_import_creates_them(
    client: TestClient, tmp_path: Path
) -> None:
    """A till's first sale to a new customer: the shopper is created, gender from the item
    (or as given), trendiness estimated from what they bought (or as given), home at the
    item's store, exactly as `purchases import` creates them."""
    posted = client.post(
        "/purchases",
        json=[
            _purchase(user="walk-in-1"),
            _purchase(user="walk-in-2", item=SECOND, gender="men", trendiness=0.9),
        ],
    )
    assert posted.status_code == 201, posted.text
    created = {u["id"]: u for u in posted.json()["new_users"]}
    assert set(created) == {"walk-in-1", "walk-in-2"}
    assert created["walk-in-2"]["gender"] == "MEN" and created["walk-in-2"]["trendiness"] == 0.9
    first = client.get("/users/walk-in-1").json()
    assert first["gender"] == "WOMEN" and [p["item_id"] for p in first["purchases"]] == [FIRST]
    assert (
        0.0 <= first["trendiness"] <= 1.0
        and first["trendiness"] == created["walk-in-1"]["trendiness"]
    )
    shop = client.get(f"/items/{FIRST}").json()["shop"]["location"]
    assert first["residence"] == shop
    log = tmp_path / "sales.csv"  # the same sale imported elsewhere makes the same shopper
    log.write_text(f"user_id,item_id,timestamp\nwalk-in-3,{FIRST},{ISO}\n", encoding="utf-8")
    imported = client.post(
        "/purchases/import?name=sales.csv", content=log.read_bytes(), headers=CSV
    )
    assert imported.status_code == 201, imported.text
    third = client.get("/users/walk-in-3").json()
    assert (third["gender"], third["residence"]) == (first["gender"], first["residence"])
    assert third["trendiness"] == pytest.approx(
        client.get("/users/walk-in-1").json()["trendiness"], abs=0.05
    )


def test_a_post_from_a_web_page_is_refused(reader: TestClient) -> None:
    """A page elsewhere can post a form (text/plain, urlencoded, multipart) without asking:
    writes take their own media type only, so such a post records nothing."""
    count = reader.get("/catalog").json()["purchases"]
    body = json.dumps(_purchase()).encode()
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x"):
        refused = reader.post("/purchases", content=body, headers={"Content-Type": kind})
        assert "send the body as Content-Type: application/json" in _error(refused, 415)
    assert reader.get("/catalog").json()["purchases"] == count
    with_charset = {"Content-Type": "application/json; charset=utf-8"}
    assert reader.post("/purchases", content=body, headers=with_charset).status_code == 201


def test_on_loopback_only_loopback_host_names_are_answered(home: Path) -> None:
    """Bound to 127.0.0.1, a request whose Host names another machine (a page whose DNS
    name was rebound to 127.0.0.1) is refused; elsewhere any Host is answered."""
    assert loopback_hosts("0.0.0.0") is None
    app = create_app(Settings(home=home), api_key="", hosts=loopback_hosts("127.0.0.1"))
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "localhost"):
            assert client.get("/health", headers={"Host": host}).status_code == 200, host
        for host in ("evil.example:8000", "127.0.0.1.evil.example"):
            assert client.get("/catalog", headers={"Host": host}).status_code == 400, host
            refused = client.post("/purchases", json=_purchase(), headers={"Host": host})
            assert refused.status_code == 400
            assert refused.json() == {  # worded as every refusal: JSON, one line
                "error": f"Host {host} is not answered here; use one of 127.0.0.1, localhost, [::1]"
            }


def test_health_and_errors_name_no_file_of_the_server(
    client: TestClient, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    health = client.get("/health").json()
    assert health == {"status": "ok", "worker": os.getpid(), "search": "loaded by the first search"}

    def locked(*args: object) -> None:
        raise StoreError(f"the store at {home.absolute()}/store is locked (WouldBlock)")

    monkeypatch.setattr("engine.application.Application.item", locked)
    message = _error(client.get(f"/items/{FIRST}"), 503)
    assert str(home) not in message and "/store" not in message
    assert message == "the store at <path> is locked (WouldBlock)"
    assert str(home) not in _error(client.get(f"/items/{NO_PHOTO}/image"), 404)


def test_a_purchase_posted_twice_is_recorded_once(client: TestClient) -> None:
    was = client.get(f"/items/{FIRST}").json()["popularity"]
    first = client.post("/purchases", json=_purchase(event_id="till-7-0042"))
    assert first.status_code == 201 and first.json()["recorded"][0]["event_id"] == "till-7-0042"
    again = client.post("/purchases", json=[_purchase(event_id="till-7-0042"), _purchase()])
    assert [r["event_id"] for r in again.json()["recorded"]] != ["till-7-0042"]
    assert again.json()["already"] == ["till-7-0042"]
    same = client.post("/purchases", json=_purchase())  # no id: a hash of what it is
    assert same.json()["recorded"] == [] and len(same.json()["already"]) == 1
    assert client.get(f"/items/{FIRST}").json()["popularity"] == was + 2


def test_a_purchase_needs_a_time_zone_and_a_past(reader: TestClient) -> None:
    naive = reader.post("/purchases", json=_purchase(timestamp="2025-06-01T10:00:00"))
    assert "has no time zone; add one" in _error(naive, 422)
    ahead = reader.post("/purchases", json=_purchase(timestamp="2099-01-01T00:00:00Z"))
    assert "is in the future" in _error(ahead, 422)


def test_a_list_of_purchases_is_one_transaction(client: TestClient, home: Path) -> None:
    store_id = client.get("/catalog").json()["shops"][2]["id"]
    rows = [
        _purchase(item=FIRST),
        _purchase(
            user="sim-00002", item=SECOND, store_id=store_id, timestamp="2025-06-02T00:00:00Z"
        ),
        _purchase(item=FIRST, timestamp="2025-06-03T12:00:00+02:00"),
    ]
    was = client.get(f"/items/{FIRST}").json()["popularity"]
    response = client.post("/purchases", json=rows)
    assert response.status_code == 201, response.text
    body = response.json()
    assert [r["store_id"] for r in body["recorded"]][1] == store_id
    assert body["recorded"][2]["timestamp"] == "2025-06-03T10:00:00+00:00"
    assert body["popularity"][FIRST] == was + 2


@pytest.mark.parametrize(
    ("bad", "status", "message"),
    [
        (_purchase(item="nope"), 400, "purchase 2: unknown item 'nope'; nothing recorded"),
        (_purchase(store_id="S99"), 400, "purchase 2: unknown shop 'S99'; nothing recorded"),
        (
            _purchase(user="nobody", gender="ALIENS"),
            400,
            "purchase 2: unknown gender 'ALIENS' (use ",
        ),
        (_purchase(trendiness=2), 422, "purchase 2: trendiness: Input should be less than"),
        (_purchase(timestamp="yesterday"), 422, "purchase 2: timestamp: bad timestamp"),
        (_purchase(colour="red"), 422, "purchase 2: colour: Extra inputs are not permitted"),
        ({"user_id": "sim-00001", "item_id": FIRST}, 422, "purchase 2: timestamp: Field required"),
        (_purchase(user=" "), 422, "purchase 2: user_id: String should have at least 1 character"),
    ],
)
def test_a_bad_purchase_in_a_list_records_nothing(
    reader: TestClient, home: Path, bad: dict[str, object], status: int, message: str
) -> None:
    was = reader.get(f"/items/{FIRST}").json()["popularity"]
    count = reader.get("/catalog").json()["purchases"]
    assert message in _error(reader.post("/purchases", json=[_purchase(), bad]), status)
    assert reader.get(f"/items/{FIRST}").json()["popularity"] == was
    assert reader.get("/catalog").json()["purchases"] == count


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[]", "the body is an empty list: nothing to record"),
        (b'"sim-00001"', "the body must be a purchase object or a list of them"),
        (b"{not json", "the body is not JSON"),
    ],
)
def test_a_body_that_is_not_purchases_is_422(
    reader: TestClient, content: bytes, message: str
) -> None:
    response = reader.post("/purchases", content=content, headers=JSON)
    assert message in _error(response, 422)


def test_bodies_over_a_megabyte_are_refused(reader: TestClient) -> None:
    big = json.dumps([_purchase()] * (MAX_BODY // 60)).encode()
    assert len(big) > MAX_BODY
    assert "over" in _error(reader.post("/purchases", content=big, headers=JSON), 413)
    chunks = iter([b"[" + b" " * 600_000, b" " * 600_000 + b"]"])  # no Content-Length
    _error(reader.post("/purchases", content=chunks, headers=JSON), 413)
    assert reader.get("/catalog").status_code == 200  # the service goes on


# --- the API key ---------------------------------------------------------------------------------


def test_with_a_key_every_post_needs_it(home: Path) -> None:
    with TestClient(create_app(Settings(home=home), api_key=KEY)) as client:
        missing = client.post("/purchases", json=_purchase())
        assert "needs Authorization: Bearer" in _error(missing, 401)
        assert missing.headers["www-authenticate"] == "Bearer"
        basic = client.post("/purchases", json=_purchase(), headers={"Authorization": "Basic x"})
        _error(basic, 401)
        wrong = client.post("/purchases", json=_purchase(), headers={"Authorization": "Bearer no"})
        assert _error(wrong, 403) == "wrong API key"
        right = {"Authorization": f"Bearer {KEY}"}
        assert client.post("/purchases", json=_purchase(), headers=right).status_code == 201
        assert client.get(f"/items/{FIRST}").status_code == 200  # reads stay open


def test_the_key_comes_from_the_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASHIONREC_API_KEY", KEY)
    with TestClient(create_app(Settings(home=home))) as client:
        _error(client.post("/purchases", json=_purchase()), 401)


def test_private_reads_need_the_key_too(home: Path) -> None:
    with TestClient(create_app(Settings(home=home), api_key=KEY, private=True)) as client:
        for path in (f"/items/{FIRST}", f"/items/{FIRST}/image", "/users/sim-00001", "/users"):
            _error(client.get(path), 401)
        _error(client.get("/catalog", headers={"Authorization": "Bearer nope"}), 403)
        assert client.get("/catalog", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        for path in ("/", "/health", "/static/app.js", "/openapi.json", "/docs"):
            assert client.get(path).status_code == 200, path


def test_private_without_a_key_does_not_start(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASHIONREC_API_KEY", raising=False)
    with pytest.raises(Exception, match="--private needs an API key"):
        create_app(Settings(home=home), private=True)
    result = fashionrec("serve", "--private", home=home)
    assert result.returncode == 1 and "--private needs an API key" in result.stderr


# --- errors, the log, the page --------------------------------------------------------------------


def test_unknown_paths_and_methods_answer_json(reader: TestClient) -> None:
    assert _error(reader.get("/nowhere"), 404) == "no such path /nowhere"
    json_type = {"Content-Type": "application/json"}
    assert (
        _error(reader.delete("/health", headers=json_type), 405)
        == "DELETE is not allowed on /health"
    )


def test_an_unexpected_failure_is_a_one_line_500(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("secret internals\nTraceback (most recent call last)")

    monkeypatch.setattr("engine.recommend.recommender.Recommender.for_item", explode)
    with caplog.at_level(logging.INFO, logger="fashionrec.serve"):
        response = client.get(f"/items/{FIRST}/similar")
    assert "server log" in _error(response, 500)
    assert "secret" not in response.text
    assert "secret internals" in caplog.text  # the details go to the log


def test_a_failing_store_is_503(failing_collection_server: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, qdrant_url=failing_collection_server)
    with TestClient(create_app(settings, api_key="")) as client:
        assert "disk quota exceeded" in _error(client.get("/health"), 503)
        _error(client.get(f"/items/{FIRST}"), 503)


def test_one_log_line_per_request(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="fashionrec.serve"):
        client.get("/health")
        client.get("/items/nope", params={"k": 1})
        client.post("/purchases", content=b"[]", headers=JSON)
    lines = [r.getMessage() for r in caplog.records if r.name == "fashionrec.serve"]
    assert len(lines) == 3, lines
    assert lines[0].startswith("GET /health 200 ")
    assert lines[1].startswith("GET /items/nope?k=1 404 ")
    assert lines[2].startswith("POST /purchases 422 ")


def test_the_page_and_its_files(reader: TestClient) -> None:
    page = reader.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "/static/app.js" in page.text and "/static/style.css" in page.text
    files = [("style.css", "text/css")] + [
        (n, "javascript") for n in ("app.js", "api.js", "render.js")
    ]
    for name, kind in files:
        response = reader.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    assert "access-control-allow-origin" not in reader.get("/health").headers  # no CORS
    paths = reader.get("/openapi.json").json()["paths"]
    assert {"/items/{item_id}/similar", "/users/{user_id}", "/purchases"} <= set(paths)


# --- the command and the layout ----------------------------------------------------------------


def _calls(dependant: Dependant) -> Iterator[object]:
    """Every callable a dependant depends on, however deep."""
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def test_every_endpoint_runs_on_the_event_loop() -> None:
    """The store and the SQLite log live on one thread: no endpoint, and nothing an endpoint
    depends on (its router's dependencies too), may run in a pool."""
    rooms = (page, service, items, users, purchases, jobs)
    routers = [room.router for room in rooms]
    pairs = [(router, route) for router in routers for route in router.routes]
    assert len(pairs) >= 12
    for owner, route in pairs:
        assert isinstance(route, APIRoute)
        assert inspect.iscoroutinefunction(route.endpoint), route.path
        wanted = [route.endpoint, *(d.dependency for d in owner.dependencies if d.dependency)]
        for call in wanted:
            for needed in _calls(get_dependant(path=route.path, call=call)):
                coroutine = inspect.iscoroutinefunction(needed) or inspect.iscoroutinefunction(
                    getattr(needed, "__call__", None)  # noqa: B004 - an instance like HTTPBearer
                )
                assert coroutine, (route.path, needed)


@pytest.mark.slow
def test_the_service_starts_without_torch() -> None:
    code = "import sys, serve.main\nprint('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == "False"


@pytest.mark.slow
def test_the_command_line_does_not_load_the_web_stack() -> None:
    code = (
        "import sys, cli.main\n"
        "heavy = [m for m in ('fastapi', 'uvicorn', 'starlette', 'torch') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(home: Path, port: int) -> subprocess.Popen[str]:
    """`fashionrec serve` on a port, as a real process; returns once /health answers."""
    env = {**os.environ, "FASHIONREC_HOME": str(home), "FASHIONREC_API_KEY": ""}
    env.pop("FASHIONREC_QDRANT_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                if json.load(r)["status"] == "ok":
                    return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise AssertionError(f"the server did not come up: {server.communicate()[0]}")


@pytest.mark.slow
def test_fashionrec_serve_serves_until_interrupted(home: Path) -> None:
    port = _free_port()
    server = _serve(home, port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/catalog", timeout=10) as r:
            assert json.load(r)["users"] == 4  # the event log, opened before the loop ran
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    assert f"on http://127.0.0.1:{port}/" in output
    assert "GET /health 200" in output
    again = fashionrec("info", home=home)  # the store was released
    assert again.returncode == 0, again.stderr


@pytest.mark.slow
def test_a_port_in_use_is_one_line(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = fashionrec("serve", "--port", str(port), home=home)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


@pytest.mark.slow
def test_a_served_store_names_its_server(home: Path) -> None:
    """While `fashionrec serve` runs, serve.json names it and other commands say so in one
    line; once it stops the file is gone and the store opens again."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(home, port)
    try:
        assert json.loads((home / SERVE_FILE).read_text()) == {"url": url, "pid": server.pid}
        held = fashionrec("info", home=home)
        assert held.returncode == 1
        lines = held.stderr.strip().splitlines()
        assert len(lines) == 1, held.stderr
        assert lines[0] == (
            f"error: the store at {home / STORE_DIR} is held by `fashionrec serve` at {url} "
            f"(pid {server.pid}); use its API (ingest, items and purchases take --api {url}), "
            "or stop it"
        )
        for command in (
            ("snapshot", "create", home.parent / "copy.tar.gz"),
            ("migrate", "--to", "http://127.0.0.1:1"),
        ):
            refused = fashionrec(*command, home=home)
            assert refused.returncode == 1, refused
            assert refused.stderr.strip().splitlines() == lines, command
    finally:
        server.send_signal(signal.SIGTERM)  # as a service manager stops it
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    assert not (home / SERVE_FILE).exists()
    again = fashionrec("info", home=home)
    assert again.returncode == 0, again.stderr


@pytest.mark.slow
def test_a_stale_serve_file_is_not_believed(home: Path) -> None:
    """A serve.json whose process is gone changes nothing; one naming a live process is read."""
    from engine.vectorstore.holder import Holder, read_holder, remove_holder, write_holder

    path = home / SERVE_FILE
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    write_holder(path, "http://127.0.0.1:1", int(done.stdout))
    assert read_holder(path) is None
    assert fashionrec("info", home=home).returncode == 0
    write_holder(path, "http://127.0.0.1:2")
    assert read_holder(path) == Holder("http://127.0.0.1:2", os.getpid())
    remove_holder(path, pid=os.getpid() + 1)  # not ours: it stays
    assert path.exists()
    remove_holder(path)
    assert not path.exists()
    path.write_text("not json")
    assert read_holder(path) is None


# --- writes through the service: POST /ingest, POST /purchases/import, and --api ----------------


def _follow(client: TestClient, url: str) -> dict[str, Any]:
    """An ingest's state once it has finished (or failed)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = client.get(url).json()
        if state["state"] in ("done", "failed"):
            return dict(state)
        time.sleep(0.1)
    raise AssertionError(f"the ingest did not finish: {state}")


def _ingest_body(path: Path, **more: object) -> dict[str, object]:
    return {
        "path": str(path),
        "backbones": ["mobilenet_v2"],
        "weights": "random",
        "device": "cpu",
        "workers": 0,
        "runtime": "torch",  # `--runtime auto` runs end to end in tests/test_faults.py
        **more,
    }


@pytest.mark.slow
def test_the_service_ingests_a_catalog_while_it_serves(
    client: TestClient, small_catalog: DemoCatalog, tmp_path: Path
) -> None:
    part = copy_catalog(small_catalog, tmp_path / "catalog", limit=3)
    before = client.get("/catalog").json()["items"]
    started = client.post("/ingest", json=_ingest_body(part.images, masks=str(part.masks)))
    assert started.status_code == 202, started.text
    assert client.get(f"/items/{FIRST}/similar").status_code == 200  # still serving
    done = _follow(client, started.json()["url"])
    assert done["state"] == "done", done
    assert done["header"].startswith(f"Ingesting dfmm catalog {part.images}")
    outcome = done["outcome"]
    assert outcome["summary"]["ingested"] == 3 and outcome["not_stored"] == 0
    assert outcome["summary"]["vectors"] == {"mobilenet_v2": 3}
    assert outcome["placed"] == 3  # the new items got stores
    catalog = client.get("/catalog").json()
    assert catalog["items"] == before + 3
    assert catalog["spaces"]["mobilenet_v2"] == {"dim": 1280, "weights": {"random": 3}}
    new = sorted(p.stem for p in part.images.iterdir())[0]
    assert client.get(f"/items/{new}").json()["shop"]["id"] is not None
    similar = client.get(f"/items/{new}/similar", params={"backbone": "mobilenet_v2", "k": 1})
    assert similar.status_code == 200, similar.text


def test_an_ingest_that_cannot_start_says_why(client: TestClient, tmp_path: Path) -> None:
    bad = client.post("/ingest", json=_ingest_body(tmp_path, backbones=["alexnet"]))
    assert "unknown backbone alexnet" in _error(bad, 422)
    framing = client.post("/ingest", json=_ingest_body(tmp_path, framing="x"))
    assert "framing" in _error(framing, 422)
    for field, value in (("workers", 1000), ("batch_size", 100_000), ("limit", 0)):
        unbounded = client.post("/ingest", json=_ingest_body(tmp_path, **{field: value}))
        assert field in _error(unbounded, 422)  # bounded job parameters
    extra = client.post("/ingest", json={**_ingest_body(tmp_path), "colour": "red"})
    assert "colour: Extra inputs are not permitted" in _error(extra, 422)
    started = client.post("/ingest", json=_ingest_body(tmp_path / "nowhere"))
    failed = _follow(client, started.json()["url"])
    assert failed["state"] == "failed" and "\n" not in failed["error"]
    assert str(tmp_path / "nowhere") in failed["error"] and failed["status"] == 400
    assert "unknown ingest 'nope'" in _error(client.get("/ingest/nope"), 404)


def test_ingest_jobs_outlive_a_restart(home: Path, tmp_path: Path) -> None:
    """The event log records each job: a restarted service reports the ones that ended, and
    one whose process is gone as interrupted."""
    with TestClient(create_app(Settings(home=home), api_key="")) as first:
        url = first.post("/ingest", json=_ingest_body(tmp_path / "nowhere")).json()["url"]
        failed = _follow(first, url)
    log = _log(home)
    owner = {"id": "gone", "pid": 0, "host": socket.gethostname()}
    Jobs(log).save("gone", "ingest", "running", json.dumps(owner))
    log.close()
    with TestClient(create_app(Settings(home=home), api_key="")) as restarted:
        assert restarted.get(url).json() == failed
        interrupted = restarted.get("/ingest/gone").json()
    assert interrupted["state"] == "failed"
    assert "stopped while this ingest ran" in interrupted["error"]


def test_one_ingest_at_a_time(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.runs

    release = threading.Event()

    def slow_check(*args: object) -> None:
        release.wait(30)
        raise CatalogError("the catalog could not be checked")

    monkeypatch.setattr(ingest.runs, "check_job", slow_check)
    first = client.post("/ingest", json=_ingest_body(tmp_path)).json()
    try:
        second = client.post("/ingest", json=_ingest_body(tmp_path))
        assert f"ingest {first['id']} is running" in _error(second, 409)
    finally:
        release.set()
    failed = _follow(client, first["url"])
    assert failed["state"] == "failed" and failed["error"] == "the catalog could not be checked"


def test_a_purchase_log_is_imported_through_the_service(client: TestClient) -> None:
    was = client.get(f"/items/{FIRST}").json()["popularity"]
    log = f"user_id,item_id,timestamp\nnew-1,{FIRST},{ISO}\nnew-1,{SECOND},{ISO}\n"
    done = client.post("/purchases/import?name=sales.csv", content=log, headers=CSV)
    assert done.status_code == 201, done.text
    assert done.json() == {"purchases": 2, "new_users": 1, "items": 2, "already": 0, "repeated": []}
    assert client.get(f"/items/{FIRST}").json()["popularity"] == was + 1
    again = client.post(
        "/purchases/import?name=sales.csv", content=log + log.split("\n")[1], headers=CSV
    )
    assert again.json() == {
        "purchases": 0,
        "new_users": 0,
        "items": 0,
        "already": 2,
        "repeated": [4],
    }
    assert client.get(f"/items/{FIRST}").json()["popularity"] == was + 1
    naive = client.post(
        "/purchases/import?name=n.csv&timezone=Europe/Paris",
        content=f"user_id,item_id,timestamp\nnew-1,{FIRST},2025-06-01T13:00:00\n",
        headers=CSV,
    )
    assert naive.json()["purchases"] == 1
    times = [p["timestamp"] for p in client.get("/users/new-1").json()["purchases"]]
    assert "2025-06-01T11:00:00+00:00" in times  # 13:00 in Paris in June
    assert client.get("/users/new-1").json()["gender"] == "WOMEN"
    bad = client.post(
        "/purchases/import?name=/etc/sales.csv",
        content=f"user_id,item_id,timestamp\nnew-2,nope,{ISO}\n",
        headers=CSV,
    )
    assert _error(bad, 400) == ("sales.csv:2: unknown item 'nope'; nothing recorded")
    as_json = client.post("/purchases/import", content=b"user_id\n", headers=JSON)
    assert "Content-Type: text/csv" in _error(as_json, 415)
    assert client.get("/users/new-2").status_code == 404


@pytest.mark.slow
def test_the_command_line_writes_through_a_running_service(
    home: Path, small_catalog: DemoCatalog, tmp_path: Path
) -> None:
    part = copy_catalog(small_catalog, tmp_path / "catalog", limit=2)
    sales = tmp_path / "sales.csv"
    sales.write_text(f"user_id,item_id,timestamp\nsim-00001,{FIRST},{ISO}\n")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(home, port)
    try:
        imported = fashionrec("purchases", "import", sales, "--api", url, home=tmp_path)
        assert imported.returncode == 0, imported.stderr
        assert "imported 1 purchase(s) of 1 item(s); 0 new user(s)" in imported.stdout
        args = ("--weights", "random", "--backbone", "mobilenet_v2", "--workers", "0")
        ingested = fashionrec("ingest", part.images, *args, "--api", url, home=tmp_path)
        assert ingested.returncode == 0, ingested.stderr
        assert "WARNING: random-init weights" in ingested.stderr
        assert f"Ingesting dfmm catalog {part.images}" in ingested.stdout
        assert f"into {home / 'store'}:" in ingested.stdout  # the home's, not a worker's copy
        assert "ingested 2 · skipped 0" in ingested.stdout
        assert re.search(r"indexing\W+2/2", ingested.stdout), ingested.stdout  # the bar's count
        assert "2 new item(s) placed in a shop" in ingested.stdout
        again = fashionrec("ingest", part.images, *args, "--api", url, home=tmp_path)
        assert "ingested 0 · skipped 2 (already stored 2" in again.stdout
        wrong = fashionrec("ingest", tmp_path / "nowhere", *args, "--api", url, home=tmp_path)
        assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1
        assert f"{url}: " in wrong.stderr and "nowhere" in wrong.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert "POST /ingest 202" in output and "POST /purchases/import" in output
    gone = fashionrec("purchases", "import", sales, "--api", url, home=tmp_path)
    assert gone.returncode == 1
    assert f"cannot reach {url}" in gone.stderr and "fashionrec serve" in gone.stderr
    odd = fashionrec("purchases", "import", sales, "--api", "localhost:8000", home=tmp_path)
    assert odd.returncode == 1 and "is not a service URL" in odd.stderr


@pytest.mark.slow
def test_payloads_that_lag_the_log_are_synced_before_serving(home: Path) -> None:
    """A store of an earlier version (no trending payloads, no record of a sync) is brought
    in step when the service starts, so no request pays for it."""
    log = _log(home)
    log.db.execute("DELETE FROM meta WHERE key = 'synced_anchor'")
    log.close()
    store = EdgeStore(home / STORE_DIR)
    store.set_payload([point_id(FIRST)], {"trending": -1.0})
    store.close()
    with TestClient(create_app(Settings(home=home), api_key="")) as client:
        assert client.get(f"/items/{FIRST}").json()["payload"]["trending"] >= 0.0
    log = _log(home)
    assert log.get("synced_anchor") == log.trend_anchor().isoformat()
    log.close()


def test_ingest_api_takes_the_services_settings(tmp_path: Path) -> None:
    refused = fashionrec(
        "ingest", tmp_path, "--api", "http://127.0.0.1:1", "--taxonomy", "retail", home=tmp_path
    )
    assert refused.returncode == 1
    assert "--taxonomy with --api: the service's own settings apply" in refused.stderr


def test_items_sell_out_change_and_go(client: TestClient) -> None:
    """PATCH marks an item out of stock (left out of lists unless in_stock=false), prices
    and names it; DELETE removes it; unknown items and bad values in one line."""
    listed = client.get(f"/items/{FIRST}/similar", params={"k": 3}).json()
    first = listed["lists"][0]["recommendations"][0]["item_id"]
    changed = client.patch(
        f"/items/{first}",
        json={"in_stock": False, "price": 19.5, "name": "Red dress", "url": "https://x.example/d"},
    )
    assert changed.status_code == 200, changed.text
    payload = changed.json()["payload"]
    assert (payload["in_stock"], payload["price"], payload["name"]) == (False, 19.5, "Red dress")
    after = client.get(f"/items/{FIRST}/similar", params={"k": 3}).json()
    assert first not in [r["item_id"] for r in after["lists"][0]["recommendations"]]
    anyway = client.get(f"/items/{FIRST}/similar", params={"k": 3, "in_stock": False}).json()
    assert anyway["lists"][0]["recommendations"][0]["item_id"] == first
    priced = client.get(
        f"/items/{FIRST}/similar", params={"k": 3, "in_stock": False, "max_price": 20}
    ).json()
    assert [r["item_id"] for r in priced["lists"][0]["recommendations"]] == [first]
    assert "price: Input should be greater than or equal to 0" in _error(
        client.patch(f"/items/{first}", json={"price": -1}), 422
    )
    assert "unknown item 'nope'" in _error(client.patch("/items/nope", json={"price": 1}), 404)
    json_type = {"Content-Type": "application/json"}
    # an empty write declares JSON too, or a page could post it on the operator's behalf
    assert "Content-Type: application/json (got none)" in _error(
        client.delete(f"/items/{first}"), 415
    )
    assert client.delete(f"/items/{first}", headers=json_type).json() == {"deleted": 1}
    _error(client.get(f"/items/{first}"), 404)
    assert "nothing deleted" in _error(client.delete(f"/items/{first}", headers=json_type), 404)


def test_no_answer_holds_a_path_of_the_server(
    client: TestClient, home: Path, pristine: Path
) -> None:
    """Every JSON answer of every read endpoint (and of a write's answer) is walked: no
    string holds the home's path or the photos' folder; a photo stays reachable by its
    URL."""
    server_paths = (str(home.parent), str(pristine.parent))  # the home, the photos' folder
    user = client.get("/users", params={"limit": 1}).json()["users"][0]
    answers = [
        client.get(path)
        for path in (
            "/health",
            "/catalog",
            "/items",
            f"/items/{FIRST}",
            f"/items/{FIRST}/similar",
            "/users",
            f"/users/{user}",
            f"/users/{user}/recommendations",
            "/openapi.json",
        )
    ]
    answers.append(client.patch(f"/items/{FIRST}", json={"price": 12.5}))
    answers.append(client.post("/purchases", json=_purchase()))
    for answer in answers:
        assert answer.status_code in (200, 201), answer.url

        def strings(value: object) -> Iterator[str]:
            if isinstance(value, str):
                yield value
            elif isinstance(value, dict):
                for key, inner in value.items():
                    yield str(key)
                    yield from strings(inner)
            elif isinstance(value, list):
                for inner in value:
                    yield from strings(inner)

        leaked = [s for s in strings(answer.json()) if any(p in s for p in server_paths)]
        assert not leaked, f"{answer.url}: {leaked}"
    item = client.get(f"/items/{SECOND}").json()
    assert client.get(item["image_url"]).status_code == 200


def test_a_decompression_bomb_or_a_huge_photo_is_refused_in_one_line(reader: TestClient) -> None:
    """A small file of too many pixels (past Pillow's own limit, or only past the
    service's) is 422 in one line before anything is decoded; the service goes on."""
    for size in ((15_000, 15_000), (8_000, 6_000)):  # 225 MP (a bomb), 48 MP
        buffer = io.BytesIO()
        Image.new("1", size).save(buffer, "PNG")  # a few hundred kB at most
        assert len(buffer.getvalue()) < 1_000_000
        answer = reader.post(
            "/search", content=buffer.getvalue(), headers={"content-type": "image/png"}
        )
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error.startswith("the uploaded photo: ") and "limit" in error, error
        assert error.endswith("; send a smaller photo")
        assert "\n" not in error
    assert reader.get("/health").status_code == 200


def test_searches_by_photo_are_bounded_and_can_need_the_key(home: Path) -> None:
    """With every place taken (one here), a search by photo is 503 with Retry-After and
    the service goes on answering; with private_search it needs the key; /health says
    whether search is ready."""
    started, release = threading.Event(), threading.Event()
    photo = io.BytesIO()
    Image.new("RGB", (20, 30), (200, 40, 40)).save(photo, "PNG")
    png = {"content-type": "image/png"}
    with TestClient(create_app(Settings(home=home), api_key="k", search_slots=1)) as client:
        assert client.get("/health").json()["search"] == "loaded by the first search"

        def slow(*args: object) -> object:
            started.set()
            release.wait(10)
            raise NotFoundError("released")

        client.app.state.application.search_photo = slow  # type: ignore[attr-defined]
        first = threading.Thread(
            target=lambda: client.post("/search", content=photo.getvalue(), headers=png)
        )
        first.start()
        try:
            assert started.wait(10)
            busy = client.post("/search", content=photo.getvalue(), headers=png)
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert "too many searches by photo at once" in busy.json()["error"]
            assert client.get("/health").status_code == 200
        finally:
            release.set()
            first.join(10)
    with TestClient(create_app(Settings(home=home), api_key="k", private_search=True)) as client:
        refused = client.post("/search", content=photo.getvalue(), headers=png)
        assert refused.status_code == 401
        assert client.get("/items", params={"limit": 1}).status_code == 200  # reads stay open


def test_calls_queued_past_the_bound_are_turned_away_and_health_answers(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the calls on a thread of their own (a home over a server) and each held up, as
    a restarting database holds them: once the bound is reached a request is 503 with
    Retry-After at once, /health answers meanwhile, and the held ones finish."""
    import serve.enginethread

    monkeypatch.setattr(serve.enginethread, "MAX_WAITING", 2)
    entered, release = threading.Semaphore(0), threading.Event()
    with TestClient(create_app(Settings(home=home), api_key="", calls_inline=False)) as client:
        held = client.app.state.application  # type: ignore[attr-defined]
        real = held.item

        def slow(item_id: str) -> object:
            entered.release()
            release.wait(10)
            return real(item_id)

        held.item = slow
        answers: list[int] = []
        waiting = [
            threading.Thread(
                target=lambda: answers.append(client.get(f"/items/{FIRST}").status_code)
            )
            for _ in range(2)
        ]
        for thread in waiting:
            thread.start()
        try:
            assert entered.acquire(timeout=10)  # one runs, the other waits behind it
            deadline = time.monotonic() + 10
            while client.app.state.engine.waiting < 2:  # type: ignore[attr-defined]
                assert time.monotonic() < deadline
                time.sleep(0.01)
            turned = client.get(f"/items/{FIRST}")
            assert turned.status_code == 503 and turned.headers["retry-after"] == "1"
            assert "the service is busy (2 requests waiting" in turned.json()["error"]
            assert client.get("/health").status_code == 200
        finally:
            release.set()
            for thread in waiting:
                thread.join(10)
        assert answers == [200, 200]
