"""The page in a real browser (Debian's Chromium driven by Playwright) against the real server:
pick an item, see its photos load, record a purchase and see its popularity change; a user
and their purchases, one deleted from the catalog; a search by photo; errors that clear the
results; a phone's width and a desktop's."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import pytest

from engine.catalog.sources import open_catalog
from engine.events.eventlog import EventLog
from engine.recommend.profile import Profile
from engine.settings import Settings
from engine.shoppers.simulation import SimulationConfig
from engine.shoppers.simulations import run_simulation
from engine.shops.placement import set_shops
from engine.shops.shops import generate_shops
from engine.vectorstore import open_store
from engine.vectorstore.edge.files import copy_tree
from engine.vocabulary.geo import DEFAULT_REGION
from ingest.democatalog import write_demo_catalog
from ingest.options import IngestOptions
from ingest.pipeline import ingest
from serve.main import create_app
from tests.builders import FAKE, FakeEmbedder, fake_networks

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
# the browser logs each request the service refused; the tests that expect one allow it
REFUSED: Final = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d")
PHONE: Final = {"width": 420, "height": 900}
DESKTOP: Final = {"width": 1280, "height": 900}

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
    # a search by photo embeds it as the store's vectors were made: with the fake network
    app.state.application.networks = fake_networks
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def url(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server, without an API key, over a copy of the home."""
    home = copy_tree(pristine, tmp_path_factory.mktemp("open") / "home")
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
def console() -> list[str]:
    """The errors the page's console shows (a refused request is one)."""
    return []


@pytest.fixture
def page(browser: Any, console: list[str]) -> Iterator[Any]:
    """A fresh page that fails the test on any script error or console error other than a
    request the service refused."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and console.append(message.text))
    yield page
    context.close()
    assert not errors, errors
    unexplained = [text for text in console if not REFUSED.match(text)]
    assert not unexplained, unexplained


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


def _patch(base: str, item: str, changes: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"{base}/items/{item}",
        data=json.dumps(changes).encode(),
        headers={"Content-Type": "application/json"},
        method="PATCH",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _user(base: str, user: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/users/{user}", timeout=10) as response:
        found: dict[str, Any] = json.load(response)
    return found


def _delete(base: str, item: str) -> None:
    json_type = {"Content-Type": "application/json"}  # an empty write declares JSON too
    request = urllib.request.Request(f"{base}/items/{item}", method="DELETE", headers=json_type)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_pick_an_item_see_its_photos_and_record_a_purchase(
    page: Any, url: str, console: list[str]
) -> None:
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
    # the item's popularity is its sales, the rerank's term a trend match, each named
    expect(first.locator("dd.popularity")).to_have_text(re.compile(r"^\d+$"))
    assert first.locator("dd.popularity").evaluate("e => e.previousSibling.textContent") == "sales"
    expect(first.locator(".term.popularity .key")).to_have_text("trend match")
    assert "1 − |NormPop" in str(first.locator(".term.popularity").get_attribute("title"))
    expect(page.locator("#query dt").filter(has_text=re.compile("^sales$"))).to_have_count(1)

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
    assert not console, console

    # trending: the sales decayed as of now, to 2 decimals (<0.01 when tiny)
    page.select_option("#popularity-mode", "trending")
    page.click("#apply")
    expect(page.locator("#provenance")).to_contain_text("popularity trending (half-life")
    expect(page.locator(".card dt").filter(has_text="recent sales")).to_have_count(8)
    for text in page.locator(".card dd.popularity").all_inner_texts():
        assert re.fullmatch(r"<0\.01|\d+\.\d\d", text), text
    expect(page.locator("#query-trending")).to_have_text(re.compile(r"^(<0\.01|\d+\.\d\d)$"))
    assert float(page.inner_text("#query-trending")) >= 0.99  # bought a moment ago


def test_a_user_their_purchases_and_recommendations(
    page: Any, pristine: Path, tmp_path: Path, console: list[str]
) -> None:
    expect = sync_api.expect
    home = copy_tree(pristine, tmp_path / "home")  # an item is deleted here
    with serving(home, api_key="") as base:
        bought = _user(base, BUYER)["purchases"]
        gone = bought[0]["item_id"]
        _delete(base, gone)
        _patch(base, bought[1]["item_id"], {"name": "Grey hoodie", "price": 35})
        _open(page, base)
        page.click("#tab-user")
        page.locator("#user-list button").first.click()
        expect(page.locator("#query h2")).to_have_text(BUYER)
        expect(page.locator(".results .list").first.locator("h3")).to_contain_text("merged")
        assert page.locator("#buyer").input_value() == BUYER
        merged = page.locator(".results > .list .card")
        assert merged.count() >= 1
        widths = _photos_loaded(page, ".bought img, .results > .list .card img")
        assert len(widths) == len(bought) - 1 + merged.count(), widths
        assert all(w == 150 for w in widths), widths
        # the deleted item's purchase stays, as text: no photo to break
        tiles = page.locator(".bought .tile")
        expect(tiles).to_have_count(len(bought))
        deleted = page.locator(f'.bought .tile[data-item="{gone}"]')
        expect(deleted).to_contain_text("no longer in the catalog")
        expect(deleted.locator("img")).to_have_count(0)
        named = page.locator(f'.bought .tile[data-item="{bought[1]["item_id"]}"]')
        expect(named.locator(".tile-name")).to_have_text("Grey hoodie")
        expect(named.locator(".price")).to_have_text("35.00")
        assert not console, console


def test_fitted_weights_rank_until_the_hand_set_ones_are_chosen(
    page: Any, pristine: Path, tmp_path: Path, console: list[str]
) -> None:
    """With a fitted profile the page ranks by it (each card names its sources, the sliders
    rest); choosing the hand-set weights brings the sliders and the weighted bars back."""
    expect = sync_api.expect
    home = copy_tree(pristine, tmp_path / "home")
    weights = {"visual_mean": 1.0, "sales": 0.5, "category": 0.2}
    validation = {"tuned": 0.2, "default": 0.1, "paper": 0.1}
    Profile("tuned", weights, validation, {"space": FAKE, "k": 10}).save(home)
    with serving(home, api_key="") as base:
        _open(page, base)
        expect(page.locator("#fitted-option")).to_contain_text("hit rate 0.200 vs 0.100")
        expect(page.locator("#w-visual")).to_be_disabled()
        page.click("#tab-user")
        page.locator("#user-list button").first.click()
        cards = page.locator(".results > .list .card")
        expect(cards.first.locator("dt", has_text="sources")).to_have_count(1)
        expect(page.locator("#fitted-legend")).to_be_visible()
        expect(cards.first.locator(".bar")).to_have_count(0)
        page.select_option("#weights-mode", "default")
        expect(page.locator("#w-visual")).to_be_enabled()
        expect(page.locator("#hand-set-legend")).to_be_visible()
        expect(cards.first.locator(".bar")).to_have_count(1)
        expect(cards.first.locator("dt", has_text="sources")).to_have_count(0)
    assert not console, console


def test_an_unknown_item_is_said_in_one_line_and_clears_the_results(page: Any, url: str) -> None:
    expect = sync_api.expect
    _open(page, url)
    page.fill("#item-id", ITEM)
    page.click("#item-show")
    expect(page.locator(".card")).to_have_count(8)
    page.fill("#item-id", "no-such-item")
    page.click("#item-show")
    expect(page.locator("#status.error")).to_have_text("unknown item 'no-such-item'")
    expect(page.locator(".card")).to_have_count(0)
    expect(page.locator("#query")).to_be_hidden()
    expect(page.locator("#legend")).to_be_hidden()


def test_a_private_service_works_once_the_key_is_given(
    page: Any, pristine: Path, tmp_path: Path
) -> None:
    expect = sync_api.expect
    home = copy_tree(pristine, tmp_path / "home")
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
        # the searched item shows its own name, price and link as its cards do
        card.locator("button.quiet").click()
        expect(page.locator("#query .item-id")).to_have_text(second)
        expect(page.locator("#query-name")).to_have_text("Red dress")
        expect(page.locator("#query dd.price")).to_have_text("19.50")
        link = page.locator("#query a.shop-link")
        assert link.get_attribute("href") == "https://shop.example/red"
    finally:
        _patch(url, first, {"in_stock": True})  # the module's other tests share this home


def _refusal(base: str, path: str, kind: str, body: bytes) -> str:
    """The service's one-line error for this body."""
    request = urllib.request.Request(
        f"{base}{path}", data=body, headers={"Content-Type": kind}, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    error: str = json.load(refused.value)["error"]
    return error


def test_search_by_photo_and_a_bad_file(page: Any, url: str, pristine: Path) -> None:
    expect = sync_api.expect
    photo = pristine.parent / "catalog" / "images" / f"{ITEM}.jpg"
    page.set_viewport_size(PHONE)
    _open(page, url)
    page.click("#tab-photo")
    page.select_option("#photo-gender", "WOMEN")
    page.set_input_files("#photo-file", photo)
    expect(page.locator(".card")).to_have_count(8)
    expect(page.locator("#query h2")).to_have_text("Your photo")
    expect(page.locator(".results h3")).to_have_text("Like your photo (8)")
    genders = page.locator(".card .gender").all_inner_texts()
    assert set(genders) == {"WOMEN"}, genders
    widths = _photos_loaded(page, "#query img, .card img")
    assert len(widths) == 9 and all(w == 150 for w in widths), widths
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # a file that is no photo, and one of a type the service does not read: its own words
    for name, kind, body in [
        ("notes.png", "image/png", b"not a photo"),
        ("a.gif", "image/gif", b"GIF89a"),
    ]:
        page.set_input_files("#photo-file", {"name": name, "mimeType": kind, "buffer": body})
        expect(page.locator("#status.error")).to_have_text(_refusal(url, "/search", kind, body))
        expect(page.locator(".card")).to_have_count(0)
        expect(page.locator("#query")).to_be_hidden()
        page.set_input_files("#photo-file", photo)
        expect(page.locator(".card")).to_have_count(8)


def _fits(page: Any) -> None:
    """No sideways scroll, and every visible control and card inside the window."""
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    outside = page.evaluate(
        """(width) => [...document.querySelectorAll(
            '.controls input, .controls select, .controls button, .card, #query, .tile')]
          .filter((e) => e.offsetParent !== null)
          .filter((e) => {
            const r = e.getBoundingClientRect();
            return r.left < 0 || r.right > width;
          })
          .map((e) => e.id || e.className)""",
        width,
    )
    assert not outside, outside


def test_the_page_fits_a_phone_and_a_desktop(page: Any, url: str) -> None:
    expect = sync_api.expect
    page.set_viewport_size(PHONE)
    page.goto(f"{url}/#item={ITEM}")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator(".card")).to_have_count(8)
    _fits(page)
    tops = page.locator(".card").evaluate_all("els => els.map(e => e.getBoundingClientRect().top)")
    assert len(set(tops[:2])) == 1, tops  # two cards a row
    page.locator("#ranking-box summary").click()  # folded on a phone
    expect(page.locator("#apply")).to_be_visible()
    _fits(page)
    page.click("#tab-user")
    page.locator("#user-list button").first.click()
    expect(page.locator("#query h2")).to_have_text(BUYER)
    _fits(page)
    page.set_viewport_size(DESKTOP)
    page.click("#tab-item")
    page.fill("#item-id", ITEM)
    page.click("#item-show")
    expect(page.locator("#query h2")).to_have_text("Dresses")
    expect(page.locator(".card")).to_have_count(8)
    _fits(page)
    tops = page.locator(".card").evaluate_all("els => els.map(e => e.getBoundingClientRect().top)")
    assert tops.count(tops[0]) == 4, tops  # four cards a row beside the controls
    controls = page.locator(".controls").bounding_box()
    assert controls["x"] + controls["width"] < page.locator("#results").bounding_box()["x"]
