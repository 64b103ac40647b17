"""The page in a real browser (Debian's Chromium driven by Playwright) against the real server:
pick an item, see its photos load, record a purchase and see its popularity change."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import pytest

from engine.catalog.items import open_catalog
from engine.geo import DEFAULT_REGION
from engine.settings import Settings
from engine.shoppers.eventlog import EventLog
from engine.shoppers.shops import generate_shops
from engine.shoppers.simulation import SimulationConfig
from engine.shoppers.sync import run_simulation, set_shops
from engine.vectorstore import open_store
from ingest.democatalog import write_demo_catalog
from ingest.options import IngestOptions
from ingest.pipeline import ingest
from serve.main import create_app
from tests.builders import FAKE, FakeEmbedder

CHROMIUM: Final = Path("/usr/bin/chromium")
ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ITEM: Final = "WOMEN-Dresses-id_00000013-01_2_side"
BUYER: Final = "sim-00001"
KEY: Final = "page-test-key"
TIMEOUT_MS: Final = 30_000

pytestmark = [
    pytest.mark.slow,  # a real browser
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs the playwright package (pip install playwright)"
)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home holding the synthetic catalog (46 photos, fake vectors), 4 stores, 3 users."""
    root = tmp_path_factory.mktemp("page")
    catalog = write_demo_catalog(
        root / "catalog", products_per_category=1, views=("1_front", "2_side"), size=(150, 220)
    )
    settings = Settings(home=root / "home")
    store, log = open_store(settings), EventLog(settings.event_log_path)
    try:
        embedders = {FAKE: FakeEmbedder()}  # the vectors are named "fake", not "resnet50"
        ingest(open_catalog(catalog.images), store, embedders, IngestOptions(workers=0))
        set_shops(store, log, generate_shops(4, DEFAULT_REGION, seed=3), DEFAULT_REGION, seed=3)
        run_simulation(store, log, SimulationConfig(users=3, max_purchases=3, seed=5))
    finally:
        log.close()
        store.close()
    return settings.home


@contextmanager
def serving(home: Path, **options: Any) -> Iterator[str]:
    """The real server (uvicorn, in a thread) over the home on a free local port; its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(Settings(home=home), **options)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def url(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server, without an API key, over a copy of the home."""
    home = Path(shutil.copytree(pristine, tmp_path_factory.mktemp("open") / "home"))
    with serving(home, api_key="") as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless."""
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page that fails the test on any script error."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


def _open(page: Any, base: str) -> None:
    page.goto(f"{base}/")
    page.wait_for_selector("body[data-ready=true]")


def _photos_loaded(page: Any, selector: str) -> list[int]:
    """Scroll to each image the selector finds (photos load lazily), wait until all have
    finished loading; their natural widths (0 for a photo that failed)."""
    images = page.locator(selector)
    for n in range(images.count()):
        images.nth(n).scroll_into_view_if_needed()
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        if images.evaluate_all("els => els.length > 0 && els.every(e => e.complete)"):
            break
        time.sleep(0.1)
    widths: list[int] = images.evaluate_all("els => els.map(e => e.naturalWidth)")
    return widths


def _popularity(base: str, item: str) -> float:
    with urllib.request.urlopen(f"{base}/items/{item}", timeout=10) as response:
        return float(json.load(response)["popularity"])


def test_pick_an_item_see_its_photos_and_record_a_purchase(page: Any, url: str) -> None:
    expect = sync_api.expect
    _open(page, url)
    expect(page.locator("#summary")).to_contain_text("46 items")
    assert page.locator("#space").input_value() == FAKE
    assert page.locator("#item-list li").count() == 46

    page.fill("#item-id", ITEM)
    page.click("#item-show")
    expect(page.locator(".card")).to_have_count(8)
    widths = _photos_loaded(page, "#query img, .card img")
    assert len(widths) == 9 and all(w == 150 for w in widths), widths  # query + 8 cards
    first = page.locator(".card").first
    for term in ("visual", "popularity", "category", "distance"):
        float(first.locator(f".term.{term} .value").inner_text())
    expect(page.locator("#provenance")).to_contain_text("fake vectors: fake 46")

    page.fill("#buyer", BUYER)
    before = int(page.inner_text("#query-popularity"))
    page.click("#query-buy")
    expect(page.locator("#query-popularity")).to_have_text(str(before + 1))
    expect(page.locator("#status")).to_contain_text(f"recorded: {BUYER} bought {ITEM}")
    assert _popularity(url, ITEM) == before + 1

    shown = page.locator(".card").first.get_attribute("data-item")
    was = _popularity(url, shown)
    page.locator(".card").first.locator("button.buy").click()
    expect(page.locator("#status")).to_contain_text(f"bought {shown}; its popularity is now")
    assert _popularity(url, shown) == was + 1


def test_a_user_their_purchases_and_recommendations(page: Any, url: str) -> None:
    expect = sync_api.expect
    _open(page, url)
    page.click("#tab-user")
    page.locator("#user-list button").first.click()
    expect(page.locator("#query h2")).to_have_text(BUYER)
    expect(page.locator(".results .list").first.locator("h3")).to_contain_text("merged")
    assert page.locator("#buyer").input_value() == BUYER
    merged = page.locator(".results > .list .card")
    assert merged.count() >= 1
    widths = _photos_loaded(page, ".bought img, .results > .list .card img")
    assert len(widths) > merged.count() and all(w == 150 for w in widths), widths


def test_an_unknown_item_is_said_in_one_line(page: Any, url: str) -> None:
    expect = sync_api.expect
    _open(page, url)
    page.fill("#item-id", "no-such-item")
    page.click("#item-show")
    expect(page.locator("#status.error")).to_have_text("unknown item 'no-such-item'")


def test_a_private_service_works_once_the_key_is_given(
    page: Any, pristine: Path, tmp_path: Path
) -> None:
    expect = sync_api.expect
    home = Path(shutil.copytree(pristine, tmp_path / "home"))
    with serving(home, api_key=KEY, private=True) as base:
        page.goto(f"{base}/")
        page.wait_for_selector("body[data-ready=true]")
        expect(page.locator("#status.error")).to_contain_text("needs Authorization: Bearer")
        page.fill("#api-key", KEY)
        page.locator("#api-key").blur()  # the change event: the page loads again with the key
        expect(page.locator("#summary")).to_contain_text("46 items")
        expect(page.locator("#item-count")).to_have_text("46 of 46 shown")
        page.fill("#item-id", ITEM)
        page.click("#item-show")
        expect(page.locator(".card")).to_have_count(8)
        widths = _photos_loaded(page, "#query img, .card img")  # fetched with the key: blob URLs
        assert len(widths) == 9 and all(w == 150 for w in widths), widths
        page.fill("#buyer", BUYER)
        before = int(page.inner_text("#query-popularity"))
        page.click("#query-buy")
        expect(page.locator("#query-popularity")).to_have_text(str(before + 1))


def _patch(base: str, item: str, changes: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"{base}/items/{item}",
        data=json.dumps(changes).encode(),
        headers={"Content-Type": "application/json"},
        method="PATCH",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_cards_show_the_shops_words_and_leave_out_what_sold_out(page: Any, url: str) -> None:
    expect = sync_api.expect
    _open(page, url)
    page.fill("#item-id", ITEM)
    page.click("#item-show")
    expect(page.locator(".card")).to_have_count(8)
    first = page.locator(".card").first.get_attribute("data-item")
    second = page.locator(".card").nth(1).get_attribute("data-item")
    assert first and second
    _patch(url, second, {"name": "Red dress", "price": 19.5, "url": "https://shop.example/red"})
    _patch(url, first, {"in_stock": False})
    try:
        page.click("#apply")
        expect(page.locator(f'.card[data-item="{first}"]')).to_have_count(0)
        card = page.locator(f'.card[data-item="{second}"]')
        expect(card.locator(".item-id")).to_have_text("Red dress")
        expect(card.locator("dd.price")).to_have_text("19.50")
        assert card.locator("a.shop-link").get_attribute("href") == "https://shop.example/red"
        page.check("#any-stock")
        page.click("#apply")
        expect(page.locator(f'.card[data-item="{first}"] dd.out')).to_have_text("out of stock")
    finally:
        _patch(url, first, {"in_stock": True})  # the module's other tests share this home
