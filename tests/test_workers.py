"""Worker processes over the embedded store: each serves a copy of its own that follows the
event log's purchases and is made again after a change to the catalog; the home's store
catches up when the service stops."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.catalog.items import ItemChanges
from engine.errors import NotFoundError
from engine.events.eventlog import EventLog
from engine.settings import EVENT_LOG, STORE_DIR, Settings
from engine.shoppers.purchases import Row
from engine.shoppers.simulation import SimulationConfig
from engine.shoppers.simulations import run_simulation
from engine.shops.placement import set_shops
from engine.shops.shops import generate_shops
from engine.vectorstore.edge import EdgeStore
from engine.vocabulary.geo import DEFAULT_REGION
from engine.vocabulary.schema import POPULARITY, point_id
from ingest.democatalog import DemoCatalog
from serve.copies import bring_home_in_step, copies_dir, generation, open_copy
from serve.enginethread import EngineThread
from serve.restarts import BOOT_S, HUNG_S, Restarts, hung
from serve.workers import Follower
from tests.builders import ROOT, catalog_items, copy_catalog, fashionrec, store_items

JSON_BODY = {"Content-Type": "application/json"}

BOUGHT = "WOMEN-Dresses-id_00000001-01_1_front"
GONE = "MEN-Denim-id_00000007-01_1_front"
SECOND = "WOMEN-Dresses-id_00000001-01_2_side"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home: 60 items, 3 shops, 4 simulated shoppers."""
    return worker_home(tmp_path)


def worker_home(folder: Path, events: str | None = None) -> Path:
    """A home in the folder: 60 items, 3 shops, 4 simulated shoppers (in the event log at
    `events`, a PostgreSQL URL, else the home's SQLite file)."""
    home = folder / "home"
    store, log = EdgeStore(home / STORE_DIR), EventLog(events or home / EVENT_LOG)
    try:
        store_items(store, catalog_items(2))
        set_shops(store, log, generate_shops(3, DEFAULT_REGION, seed=1), DEFAULT_REGION, seed=1)
        run_simulation(store, log, SimulationConfig(users=4, max_purchases=3, seed=7))
    finally:
        log.close()
        store.close()
    return home


def _follower(settings: Settings, worker: int) -> Follower:
    made = open_copy(settings, worker, wait=True)
    assert made is not None
    return Follower(settings, worker, *made)


def _popularity(follower: Follower, item: str) -> float:
    return float(follower.app.point(item).payload[POPULARITY])


def test_copies_follow_purchases_and_changes(home: Path) -> None:
    settings = Settings(home=home)
    one, two = _follower(settings, 0), _follower(settings, 1)
    try:
        assert one.copy.path != two.copy.path and one.copy.path.parent == copies_dir(home)
        before = _popularity(two, BOUGHT)
        moment = datetime(2026, 11, 1, 10, tzinfo=UTC)
        one.app.record_purchases([Row(1, "purchase 1", "sim-00001", BOUGHT, moment)], "api")
        assert _popularity(one, BOUGHT) == before + 1  # the recording worker, at once
        assert two.follow() == 1  # the other, at its next look
        assert _popularity(two, BOUGHT) == before + 1
        assert two.follow() == 0
        recs = two.app.recommender(table=True)  # the rerank's table moved with the payload
        assert recs.columns is not None

        copies = (one.copy.path, two.copy.path)
        assert one.app.delete_items([GONE]) == 1  # recorded in the log, not copied
        one.app.update_item(SECOND, ItemChanges(price=12.5))
        assert generation(home) == 0 and (one.copy.path, two.copy.path) == copies
        with pytest.raises(NotFoundError):
            one.app.point(GONE)  # the writer serves its change at once
        assert one.app.point(SECOND).payload["price"] == 12.5
        assert two.app.point(GONE)  # the other still serves the item ...
        assert two.follow() == 2  # ... until its next look replays both changes
        with pytest.raises(NotFoundError):
            two.app.point(GONE)
        assert two.app.point(SECOND).payload["price"] == 12.5
        assert two.follow() == 0
        engine = EngineThread()
        asyncio.run(two.refresh(engine))  # a copy made again (after an ingest) holds them too
        engine.close()
        with pytest.raises(NotFoundError):
            two.app.point(GONE)
        assert two.app.point(SECOND).payload["price"] == 12.5
        assert _popularity(two, BOUGHT) == before + 1  # the purchase is in the new copy
    finally:
        for follower in (one, two):
            follower.app.close()
    assert bring_home_in_step(settings) >= 0  # as the supervisor does when it stops
    home_store = EdgeStore(home / STORE_DIR)
    try:  # the change reached the home's store, and so did the purchase before it
        assert home_store.retrieve([point_id(GONE)]) == []
        assert home_store.retrieve([point_id(SECOND)])[0].payload["price"] == 12.5
        bought = home_store.retrieve([point_id(BOUGHT)])[0].payload[POPULARITY]
        assert bought == before + 1
    finally:
        home_store.close()


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _wait_for_workers(port: int, server: subprocess.Popen[str], workers: int) -> None:
    seen: set[object] = set()
    deadline = time.monotonic() + 120
    while len(seen) < workers:
        assert time.monotonic() < deadline and server.poll() is None, "workers did not start"
        with ThreadPoolExecutor(4) as pool:
            try:
                found = list(pool.map(lambda _: _get(f"http://127.0.0.1:{port}/health"), range(8)))
            except OSError:
                time.sleep(0.3)
                continue
        seen.update(body["worker"] for _, body in found)


def _everywhere(
    url: str, read: Callable[[int, Any], object], wanted: set[object], within: float
) -> set[object]:
    """What 24 concurrent GETs of `url` read (both workers answer some), asked again until
    every answer is in `wanted` or `within` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        with ThreadPoolExecutor(4) as pool:
            seen = {read(*answer) for answer in pool.map(lambda _: _get(url), range(24))}
        if seen <= wanted or time.monotonic() > deadline:
            return seen


@pytest.mark.slow
def test_serve_with_two_workers(home: Path, small_catalog: DemoCatalog, tmp_path: Path) -> None:
    """Two worker processes: a purchase posted to either is in every worker's payloads
    within a second; a deleted item is gone from both; an ingest is done only when every
    worker serves its items; on SIGTERM the copies go and the home's store holds the
    purchase."""
    from tests.test_serve import _free_port, _ingest_body

    port = _free_port()
    env = {**os.environ, "FASHIONREC_HOME": str(home), "FASHIONREC_API_KEY": ""}
    env.pop("FASHIONREC_QDRANT_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_workers(port, server, 2)
        for mode in ([], ["--workers", "2"]):  # a second server on the home: refused, any mode
            second = fashionrec("serve", "--port", str(_free_port()), *mode, home=home)
            assert second.returncode == 1, second.stderr
            assert f"is already served by the server at {base} (pid {server.pid})" in (
                second.stderr
            )
            assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
        assert _get(f"{base}/health")[0] == 200 and len(list(copies_dir(home).glob("worker*"))) >= 2
        before = _get(f"{base}/items/{BOUGHT}")[1]["popularity"]
        body = {"user_id": "sim-00001", "item_id": BOUGHT, "timestamp": "2026-11-01T10:00:00Z"}
        request = urllib.request.Request(
            f"{base}/purchases",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201

        def popularity(status: int, body: Any) -> object:
            return body["payload"][POPULARITY] if status == 200 else status

        seen = _everywhere(f"{base}/items/{BOUGHT}", popularity, {before + 1}, within=1.0)
        assert seen == {before + 1}
        delete = urllib.request.Request(f"{base}/items/{GONE}", method="DELETE", headers=JSON_BODY)
        with urllib.request.urlopen(delete, timeout=60) as response:
            assert json.load(response) == {"deleted": 1}
        statuses = _everywhere(f"{base}/items/{GONE}", lambda status, _: status, {404}, 1.5)
        assert statuses == {404}
        # the command line while the service holds the home: reads ask it, writes go by --api
        listed = fashionrec("recommend", "--item", BOUGHT, "-k", "2", "--json", home=home)
        assert listed.returncode == 0, listed.stderr
        assert f"asked the service at {base}" in listed.stderr
        assert len(json.loads(listed.stdout)["lists"][0]["recommendations"]) == 2
        changed = fashionrec("items", "update", BOUGHT, "--price", "9.5", "--api", base, home=home)
        assert changed.returncode == 0 and '"price": 9.5' in changed.stdout, changed.stderr
        refused = fashionrec("items", "update", BOUGHT, "--price", "9.5", home=home)
        assert refused.returncode == 1 and "use its API" in refused.stderr
        part = copy_catalog(small_catalog, tmp_path / "catalog", limit=2)
        body = _ingest_body(part.images, masks=str(part.masks))
        started = urllib.request.Request(
            f"{base}/ingest", data=json.dumps(body).encode(), headers=JSON_BODY
        )
        with urllib.request.urlopen(started, timeout=60) as response:
            url = json.load(response)["url"]
        deadline = time.monotonic() + 180
        while (state := _get(f"{base}{url}")[1])["state"] not in ("done", "failed"):
            assert time.monotonic() < deadline, state
            time.sleep(0.05)  # the first answer after "done" must find the items everywhere
        assert state["state"] == "done", state
        new = [p.stem for p in part.images.iterdir()]
        with ThreadPoolExecutor(4) as pool:
            found = set(pool.map(lambda n: _get(f"{base}/items/{new[n % 2]}")[0], range(24)))
        assert found == {200}
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    assert "with 2 workers" in output
    assert not copies_dir(home).exists() and not (home / "serve.json").exists()
    store = EdgeStore(home / STORE_DIR)
    try:
        assert store.retrieve([point_id(BOUGHT)])[0].payload[POPULARITY] == before + 1
    finally:
        store.close()


def _running(pid: int) -> bool:
    """Whether the process runs (a zombie nobody reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.slow
def test_workers_die_with_their_supervisor_and_a_new_serve_starts_clean(home: Path) -> None:
    """kill -9 of the supervisor: its workers stop within seconds (no orphan keeps a copy
    or the port), and a new serve on the home starts, answers, and has the price change
    the first acknowledged (recorded in the log, never written to the home's store)."""
    from tests.test_serve import _free_port

    env = {**os.environ, "FASHIONREC_HOME": str(home), "FASHIONREC_API_KEY": ""}
    env.pop("FASHIONREC_QDRANT_URL", None)

    def serve(port: int) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--workers", "2"]
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    port = _free_port()
    first = serve(port)
    try:
        _wait_for_workers(port, first, 2)
        with ThreadPoolExecutor(4) as pool:
            answers = pool.map(lambda _: _get(f"http://127.0.0.1:{port}/health"), range(16))
            workers = {int(str(body["worker"])) for _, body in answers}
        price = urllib.request.Request(  # acknowledged, then the supervisor dies
            f"http://127.0.0.1:{port}/items/{SECOND}",
            data=json.dumps({"price": 7.25}).encode(),
            headers=JSON_BODY,
            method="PATCH",
        )
        with urllib.request.urlopen(price, timeout=10) as response:
            assert response.status == 200
        first.kill()
        first.wait(10)
        deadline = time.monotonic() + 10
        while any(_running(pid) for pid in workers):
            assert time.monotonic() < deadline, "the workers outlived their supervisor"
            time.sleep(0.1)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=10)
    again = serve(port)
    try:
        _wait_for_workers(port, again, 2)
        assert _get(f"http://127.0.0.1:{port}/items/{BOUGHT}")[0] == 200
        seen = _everywhere(  # the change is not lost with the supervisor that took it
            f"http://127.0.0.1:{port}/items/{SECOND}",
            lambda status, body: body["payload"].get("price"),
            {7.25},
            within=0.0,
        )
        assert seen == {7.25}
    finally:
        again.send_signal(signal.SIGTERM)
        output, _ = again.communicate(timeout=60)
    assert again.returncode == 0, output
    assert not copies_dir(home).exists()


def test_a_worker_failing_at_start_is_started_again_later_then_the_service_stops() -> None:
    """At once after it served a while; after 0.5, 1, 2, 4 s failing at its start; a fifth
    failure in a row stops the service; each worker counted apart. A worker is hung once
    its heartbeat has been silent HUNG_S, never while it starts."""
    restarts = Restarts()
    assert [restarts.died(0, 1.0) for _ in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert restarts.died(1, 2.0) == 0.5  # another worker: its own count
    assert restarts.died(0, 1.0) is None  # the fifth in a row: stop
    assert restarts.died(1, BOOT_S + 1) == 0.0 and restarts.died(1, 1.0) == 0.5  # served: reset
    assert not hung(started=100.0, beat=None, now=1000.0)  # still starting
    assert not hung(started=100.0, beat=90.0, now=1000.0)  # a beat of the worker before it
    assert not hung(started=100.0, beat=990.0, now=1000.0)
    assert hung(started=100.0, beat=100.0 + 1, now=101.0 + HUNG_S + 0.1)
    assert hung(started=100.0, beat=101.0, now=104.5, limit_s=3.0)  # serve --worker-timeout 3


def test_the_engine_thread_runs_calls_in_order_and_says_how_long_one_runs() -> None:
    """Calls run one at a time on one thread, not the event loop's; its exceptions reach
    the caller; while a call runs, the heartbeat's stamp stays at the call's start."""
    engine = EngineThread()
    release = threading.Event()
    threads: list[int] = []

    def slow() -> str:
        threads.append(threading.get_ident())
        release.wait(10)
        return "slow"

    def fails() -> None:
        raise ValueError("from the engine")

    async def scenario() -> None:
        first = asyncio.ensure_future(engine(slow))
        while engine.began is None:
            await asyncio.sleep(0.01)
        began = engine.began
        assert engine.answering_at(began + 50.0) <= began  # one call running: silent
        second = asyncio.ensure_future(engine(lambda: threads.append(threading.get_ident())))
        await asyncio.sleep(0.05)
        assert not second.done()  # waits for the first
        release.set()
        assert await first == "slow"
        await second
        with pytest.raises(ValueError, match="from the engine"):
            await engine(fails)
        assert engine.answering_at(123.0) == 123.0  # idle: answering now

    asyncio.run(scenario())
    assert len(set(threads)) == 1 and threads[0] != threading.get_ident()
    assert not engine.on_it()
    engine.close()


def test_over_a_home_on_this_disk_the_calls_run_on_the_event_loop() -> None:
    """Inline (Qdrant Edge and a SQLite log): each call runs on the loop's thread, at once."""
    engine = EngineThread(inline=True)
    ran: list[int] = []

    async def scenario() -> None:
        await engine(lambda: ran.append(threading.get_ident()))
        assert engine.on_it() and engine.answering_at(5.0) == 5.0

    asyncio.run(scenario())
    assert ran == [threading.get_ident()]
    engine.close()


def test_a_patient_call_keeps_the_heartbeat_and_a_stopped_loop_does_not() -> None:
    """A call allowed to run long (a whole log imported) stamps `now` within its allowance,
    even inline, where the loop runs it; past it, the stamp stays at its end. A loop that
    has not turned stamps its last turn, whatever the calls do."""
    engine, inline = EngineThread(), EngineThread(inline=True)
    seen: list[float] = []

    def long_call(of: EngineThread) -> None:
        began = of.began
        assert began is not None
        seen.extend([of.answering_at(began + 100.0), of.answering_at(began + 700.0)])

    async def scenario() -> None:
        inline.turned = 0.0  # the loop is in the call: it cannot turn meanwhile
        await inline.patient(600.0, long_call, inline)
        engine.turned = time.time() + 1000.0  # the loop turns on while the thread works
        await engine.patient(600.0, long_call, engine)

    asyncio.run(scenario())
    (inline_within, inline_past, thread_within, thread_past) = seen
    assert inline_past - inline_within == 500.0 and thread_past - thread_within == 500.0
    assert inline.answering_at(5.0) == 0.0  # idle, but the loop stopped turning at 0
    engine.turned = 10.0
    assert engine.answering_at(20.0) == 10.0
    engine.close()
