"""The event log on both back-ends (SQLite and PostgreSQL): what it keeps, purchases numbered
for followers, jobs, processes writing at once, a copy into PostgreSQL, and two service
replicas sharing one log."""

from __future__ import annotations

import multiprocessing
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from engine.application import Application
from engine.catalog.taxonomy import deepfashion
from engine.errors import EventLogError
from engine.events.database import shown_url
from engine.events.eventlog import SIMULATED, EventLog
from engine.events.jobs import Jobs
from engine.events.logcopy import copy_log
from engine.events.trending import weight
from engine.settings import Settings
from engine.shops.shops import generate_shops
from engine.vectorstore.server import ServerStore
from engine.vocabulary.geo import DEFAULT_REGION, Location
from engine.vocabulary.records import Purchase, User
from tests.builders import catalog_items, fashionrec, store_items
from tests.writers import post

with warnings.catch_warnings():  # starlette would rather have httpx2; httpx works the same
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
HOME = Location(48.85, 2.35)
WRITERS = 4
OWN, SHARED = 40, 20  # purchases each writer posts alone, and those every writer posts


def _users(log: EventLog, *ids: str, source: str = "test") -> None:
    with log.transaction():
        log.add_users([User(u, "WOMEN", 0.25, HOME) for u in ids], source=source)


def test_what_the_log_keeps_reads_back(log: EventLog) -> None:
    shops = generate_shops(2, DEFAULT_REGION, seed=3)
    log.replace_shops(shops, DEFAULT_REGION, seed=3)
    log.set_taxonomy(deepfashion())
    _users(log, "b", "a")
    log.put("k", "1")
    log.put("k", "2")  # a second put replaces
    assert log.get("k") == "2" and log.get("missing") is None
    assert log.shops() == sorted(shops, key=lambda s: s.id) and log.region() == DEFAULT_REGION
    assert log.taxonomy() == deepfashion()
    assert log.user_ids() == ["a", "b"]
    assert log.user("a") == User("a", "WOMEN", 0.25, HOME) and log.user("zz") is None
    log.set_trendiness("a", 0.75)
    assert log.user("a") is not None and log.user("a").trendiness == 0.75  # type: ignore[union-attr]
    log.add_items(["x", "y"])
    log.set_initial_popularity([("x", 3)])
    assert log.items_without_initial_popularity() == ["y"]
    assert log.popularity() == {"x": 3, "y": 0} and log.popularity_range() == (0, 3)


def test_purchases_are_numbered_in_order_for_followers(log: EventLog) -> None:
    _users(log, "u")
    assert log.last_sequence() == 0 and log.purchases_since(0) == []
    with log.transaction():
        log.add_purchases([Purchase("u", "a", NOW, None, "e1")], source="api")
    first = log.last_sequence()
    with log.transaction():
        log.add_purchases(
            [Purchase("u", "b", NOW, None, "e2"), Purchase("u", "a", NOW, None, "e1")], "api"
        )
    assert [(item, key) for _, item, key in log.purchases_since(first)] == [("b", "e2")]
    numbers = [n for n, _, _ in log.purchases_since(0)]
    assert numbers == sorted(numbers) and numbers[-1] == log.last_sequence()
    assert log.purchases_by_source() == {"api": 2}


def test_simulated_shoppers_go_and_the_rest_stays(log: EventLog) -> None:
    _users(log, "sim-00001", "sim-00007", source=SIMULATED)
    _users(log, "sim-x", "real")  # not a simulated number: not counted as one
    with log.transaction():
        log.add_simulated_seed(7)
        log.add_purchases([Purchase("sim-00001", "a", NOW, None)], SIMULATED)
        log.add_purchases([Purchase("real", "a", NOW - timedelta(days=14), None)], "api")
    assert log.next_simulated_user() == 8 and log.simulated_seeds() == [7]
    assert log.clear_simulated() == (2, 1)
    assert log.user_ids() == ["real", "sim-x"] and log.simulated_seeds() == []
    assert log.popularity()["a"] == 1
    assert log.trending_as_of(NOW)["a"] == pytest.approx(0.5, rel=1e-6)


def test_jobs_are_kept_with_their_state(log: EventLog) -> None:
    Jobs(log).save("j1", "ingest", "running", '{"id": "j1"}')
    Jobs(log).save("j2", "ingest", "done", '{"id": "j2"}')
    Jobs(log).save("j1", "ingest", "failed", '{"id": "j1", "error": "x"}')
    assert Jobs(log).of_kind("ingest") == [
        ("j1", "failed", '{"id": "j1", "error": "x"}'),
        ("j2", "done", '{"id": "j2"}'),
    ]
    assert Jobs(log).of_kind("other") == []


def test_processes_writing_at_once_count_every_event_once(log: EventLog) -> None:
    _users(log, "u")
    where = log.where
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(target=post, args=(where, w, NOW, OWN, SHARED)) for w in range(WRITERS)
    ]
    for process in writers:
        process.start()
    for process in writers:
        process.join(120)
    assert [p.exitcode for p in writers] == [0] * WRITERS
    assert log.purchase_count() == WRITERS * OWN + SHARED
    expected: dict[str, int] = {}
    trend: dict[str, float] = {}
    for n in range(OWN + SHARED):
        times = 1 if n >= OWN else WRITERS
        item = f"item-{n % 5}"
        expected[item] = expected.get(item, 0) + times
        when = NOW - timedelta(hours=n)
        trend[item] = trend.get(item, 0.0) + times * weight(when, NOW, 14.0)
    assert log.popularity() == expected
    scores = log.trending_as_of(NOW)
    assert scores == pytest.approx(trend, rel=1e-9)
    numbers = [n for n, _, _ in log.purchases_since(0)]
    assert len(set(numbers)) == len(numbers) == log.purchase_count()


def test_a_sqlite_log_copies_into_postgresql(tmp_path: Path, postgres_url: str) -> None:
    source = EventLog(tmp_path / "events.sqlite")
    source.replace_shops(generate_shops(2, DEFAULT_REGION, seed=3), DEFAULT_REGION, seed=3)
    _users(source, "u", "v")
    with source.transaction():
        source.add_purchases(
            [Purchase("u", "a", NOW - timedelta(days=i), None) for i in range(5)], "t"
        )
    Jobs(source).save("j", "ingest", "done", "{}")
    target = EventLog(postgres_url)
    copied = copy_log(source, target)
    assert copied["purchases"] == 5 and copied["users"] == 2 and copied["jobs"] == 1
    assert list(target.purchases()) == list(source.purchases())
    assert target.trending_as_of(NOW) == pytest.approx(source.trending_as_of(NOW))
    assert target.shops() == source.shops() and target.last_sequence() == source.last_sequence()
    with target.transaction():  # numbering goes on after the copied purchases
        target.add_purchases([Purchase("v", "b", NOW, None)], "api")
    assert target.last_sequence() == source.last_sequence() + 1
    with pytest.raises(EventLogError, match="already holds users or purchases"):
        copy_log(source, target)
    assert target.purchase_count() == 6  # nothing merged


def test_migrate_events_to_from_the_command_line(tmp_path: Path, postgres_url: str) -> None:
    home = tmp_path / "home"
    log = EventLog(home / "events.sqlite")
    _users(log, "u")
    with log.transaction():
        log.add_purchases([Purchase("u", "a", NOW, None)], "t")
    log.close()
    result = fashionrec("migrate", "--events-to", postgres_url, home=home)
    assert result.returncode == 0, result.stderr
    assert "purchases 1" in result.stdout
    assert EventLog(postgres_url).purchase_count() == 1
    again = fashionrec("migrate", "--events-to", postgres_url, home=home)
    assert again.returncode == 1 and "already holds" in again.stderr
    assert "Traceback" not in again.stderr + again.stdout
    wrong = fashionrec("migrate", "--events-to", "mysql://x", home=home)
    assert wrong.returncode == 1 and "postgresql://" in wrong.stderr


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql://someone:secret@/nothing?host={tmp_path}"
    with pytest.raises(EventLogError, match="cannot connect to the event log") as caught:
        EventLog(url)
    assert "secret" not in str(caught.value) and "\n" not in str(caught.value)
    assert shown_url("postgresql://a:pw@h/db") == "postgresql://a:***@h/db"


def test_a_replica_sees_another_replicas_purchase(postgres_url: str, tmp_path: Path) -> None:
    """Two services over one Qdrant (the server path, here qdrant-client's local mode) and
    one PostgreSQL log: a purchase posted to one is seen by the other."""
    client = QdrantClient(":memory:")
    seed = ServerStore(client)
    store_items(seed, catalog_items(1))
    item = "MEN-Denim-id_00000004-01_1_front"
    settings = Settings(home=tmp_path / "home", events_url=postgres_url)
    from serve.main import create_app

    apps = [
        Application(settings, ServerStore(client), EventLog(postgres_url), deepfashion())
        for _ in range(2)
    ]
    with (
        TestClient(create_app(settings, api_key="", application=apps[0])) as one,
        TestClient(create_app(settings, api_key="", application=apps[1])) as two,
    ):
        before = two.get(f"/items/{item}").json()["popularity"]
        posted = one.post(
            "/purchases",
            json={"user_id": "shopper", "item_id": item, "timestamp": "2026-11-01T10:00:00Z"},
        )
        assert posted.status_code == 201, posted.text
        assert two.get(f"/items/{item}").json()["popularity"] == before + 1
        assert [p["item_id"] for p in two.get("/users/shopper").json()["purchases"]] == [item]
        recs = two.get("/users/shopper/recommendations").json()
        assert recs["lists"], recs
    for app in apps:
        app.log.close()


def test_a_postgresql_log_survives_its_connections_dropped(postgres_url: str) -> None:
    """Every connection of the log's pool cut by the server (as a restart does): the next
    read and write reconnect, with nothing lost or doubled; the schema is made once
    (its version recorded), not by every log opened on it."""
    import psycopg

    name = f"frec_{uuid.uuid4().hex[:12]}"
    url = f"{postgres_url}&application_name={name}"
    log = EventLog(url)
    again = EventLog(url)
    try:
        assert log.db.fresh and not again.db.fresh  # the second found the version table
        user = User("u1", "WOMEN", 0.5, Location(48.85, 2.35))
        moment = datetime(2026, 11, 1, 10, tzinfo=UTC)
        with log.transaction():
            log.add_users([user], "test")
            log.add_purchases([Purchase("u1", "item-1", moment, None)], "test")
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            cut = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (name,),
            ).fetchall()
        assert cut  # the pools' connections are gone
        with log.transaction():
            log.add_purchases([Purchase("u1", "item-2", moment + timedelta(hours=1), None)], "t")
        assert [p.item_id for p in again.purchases()] == ["item-1", "item-2"]
    finally:
        log.close()
        again.close()


def test_a_postgresql_server_that_is_down_is_one_line_then_the_log_goes_on() -> None:
    """With the server down, a read and a write each end in one EventLogError (a service's
    503) once the pool's wait is over, not the driver's exception; with it up again the
    same log reads and writes, nothing lost."""
    from tests.pgserver import own_postgres

    with own_postgres() as server:
        log = EventLog(server.url)
        try:
            log.db.pool.timeout = 1.0  # type: ignore[attr-defined]  # the wait, shortened
            moment = datetime(2026, 11, 1, 10, tzinfo=UTC)
            with log.transaction():
                log.add_users([User("u1", "WOMEN", 0.5, Location(48.85, 2.35))], "test")
                log.add_purchases([Purchase("u1", "item-1", moment, None)], "test")
            server.stop("immediate")
            with pytest.raises(EventLogError, match="the event log cannot be reached") as read:
                log.purchase_count()
            with pytest.raises(EventLogError, match="cannot be reached"), log.transaction():
                log.add_purchases([Purchase("u1", "item-2", moment, None)], "test")
            assert "\n" not in str(read.value)
            server.start()
            log.db.pool.timeout = 10.0  # type: ignore[attr-defined]
            with log.transaction():
                log.add_purchases([Purchase("u1", "item-3", moment, None)], "test")
            assert [p.item_id for p in log.purchases()] == ["item-1", "item-3"]
        finally:
            log.close()
