"""Trending popularity and events counted once: known decay values, a crafted log where the
modes disagree, re-imports that add nothing, and logs of an earlier version upgraded."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.errors import ConfigError, PurchaseLogError
from engine.events.eventlog import EventLog, event_id
from engine.events.trending import PopularitySettings, as_of, weight
from engine.settings import STORE_DIR
from engine.shoppers.purchaselog import import_purchases
from engine.shoppers.purchases import time_zone
from engine.vectorstore.base import VectorStore
from engine.vectorstore.edge import EdgeStore
from engine.vocabulary.geo import Location
from engine.vocabulary.records import Purchase, User
from tests.builders import catalog_items, fashionrec, store_items
from tests.conftest import OpenLog

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
HOME = Location(48.85, 2.35)


def _log(open_log: OpenLog, folder: Path, *users: str) -> EventLog:
    log = open_log(folder / "events.sqlite")
    with log.transaction():
        log.add_users([User(u, "WOMEN", 0.5, HOME) for u in users or ("u",)], source="test")
    return log


def _buy(log: EventLog, item: str, when: datetime, user: str = "u", n: int = 1) -> None:
    with log.transaction():
        log.add_purchases(
            [Purchase(user, item, when + timedelta(seconds=i), None) for i in range(n)],
            source="test",
        )


def test_a_score_halves_every_half_life(open_log: OpenLog, tmp_path: Path) -> None:
    log = _log(open_log, tmp_path)
    log.set_popularity_settings(PopularitySettings("trending", 14.0))
    _buy(log, "a", NOW - timedelta(days=14))
    _buy(log, "a", NOW - timedelta(days=28))
    _buy(log, "b", NOW)
    scores = log.trending_as_of(NOW)
    assert scores["a"] == pytest.approx(0.5 + 0.25, rel=1e-6)
    assert scores["b"] == pytest.approx(1.0, rel=1e-6)
    later = log.trending_as_of(NOW + timedelta(days=7))
    assert later["b"] == pytest.approx(2**-0.5, rel=1e-6)
    # as of a time before a purchase, the purchase does not count yet
    assert log.trending_as_of(NOW - timedelta(days=1))["b"] == 0.0
    assert log.trending_as_of(NOW - timedelta(days=14))["a"] == pytest.approx(1.5, rel=1e-6)
    assert log.popularity_settings() == PopularitySettings("trending", 14.0)


def test_the_order_of_purchases_does_not_matter(open_log: OpenLog, tmp_path: Path) -> None:
    """A late import of old sales adds what it would have added in time order."""
    one, two = _log(open_log, tmp_path / "1"), _log(open_log, tmp_path / "2")
    times = [NOW - timedelta(days=d) for d in (3, 40, 1, 90)]
    for t in times:
        _buy(one, "a", t)
    for t in sorted(times):
        _buy(two, "a", t)
    assert one.trending_as_of(NOW)["a"] == pytest.approx(two.trending_as_of(NOW)["a"], rel=1e-12)
    assert one.trending_as_of(NOW)["a"] == pytest.approx(
        sum(2 ** (-d / 14) for d in (3, 40, 1, 90))
    )


def test_old_best_sellers_lead_all_time_but_not_trending(open_log: OpenLog, tmp_path: Path) -> None:
    """20 sales 17 months ago against 3 sales last week."""
    log = _log(open_log, tmp_path)
    _buy(log, "old", NOW - timedelta(days=517), n=20)
    _buy(log, "new", NOW - timedelta(days=6), n=3)
    _buy(log, "never", NOW - timedelta(days=900), n=0)
    all_time = log.popularity()
    assert all_time["old"] > all_time["new"]
    trending = log.trending_as_of(NOW)
    assert trending["new"] > trending["old"]
    assert trending["new"] == pytest.approx(3 * 2 ** (-6 / 14), rel=1e-3)
    stored = log.trend()  # referred to the anchor: ranks as the decayed scores do
    assert stored["new"] > stored["old"]


def test_a_new_half_life_recomputes_every_score(open_log: OpenLog, tmp_path: Path) -> None:
    log = _log(open_log, tmp_path)
    _buy(log, "a", NOW - timedelta(days=30))
    log.set_popularity_settings(PopularitySettings("trending", 30.0))
    assert log.trending_as_of(NOW)["a"] == pytest.approx(0.5, rel=1e-6)
    log.set_popularity_settings(PopularitySettings("trending", 15.0))
    assert log.trending_as_of(NOW)["a"] == pytest.approx(0.25, rel=1e-6)
    with pytest.raises(ConfigError, match="--half-life must be between 1 and 3650 days"):
        log.set_popularity_settings(PopularitySettings("trending", 0.1))
    with pytest.raises(ConfigError, match="popularity mode"):
        log.set_popularity_settings(PopularitySettings("hot", 14.0))  # type: ignore[arg-type]


def test_scores_stay_finite_over_many_half_lives(open_log: OpenLog, tmp_path: Path) -> None:
    """A one-day half-life over years would overflow a fixed anchor: it moves instead."""
    log = _log(open_log, tmp_path)
    log.set_popularity_settings(PopularitySettings("trending", 1.0))
    _buy(log, "old", datetime(2021, 1, 1, tzinfo=UTC), n=5)
    _buy(log, "new", NOW - timedelta(days=2))
    stored = log.trend()
    assert all(value < 1e300 for value in stored.values())
    assert stored["new"] > stored["old"]
    assert log.trending_as_of(NOW)["new"] == pytest.approx(0.25, rel=1e-6)
    assert log.trend_anchor() > datetime(2025, 1, 1, tzinfo=UTC)


def test_weights_and_decay_are_inverse() -> None:
    anchor = datetime(2020, 1, 1, tzinfo=UTC)
    t = anchor + timedelta(days=70)
    assert weight(t, anchor, 14.0) == pytest.approx(32.0)
    assert as_of(weight(t, anchor, 14.0), t, anchor, 14.0) == pytest.approx(1.0)


# --- events counted once -------------------------------------------------------------------


def test_an_event_is_recorded_once(open_log: OpenLog, tmp_path: Path) -> None:
    log = _log(open_log, tmp_path)
    bought = Purchase("u", "a", NOW, "S01")
    with log.transaction():
        first = log.add_purchases([bought, bought], source="test")
    with log.transaction():
        again = log.add_purchases([bought, Purchase("u", "a", NOW, "S01", "till-1")], source="t")
    assert [p.event_id for p in first] == [event_id("u", "a", NOW, "S01")]
    assert [p.event_id for p in again] == ["till-1"]
    assert log.purchase_count() == 2 and log.popularity()["a"] == 2


def _sales(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sales.csv"
    path.write_text("user_id,item_id,timestamp,store_id\n" + text, encoding="utf-8")
    return path


def test_importing_a_file_twice_adds_nothing(
    store: VectorStore, log: EventLog, tmp_path: Path
) -> None:
    store_items(store, catalog_items(1))
    dress, skirt = "WOMEN-Dresses-id_00000001-01_1_front", "WOMEN-Skirts-id_00000002-01_2_side"
    rows = f"zoe,{dress},2025-03-01T10:00:00Z,\nzoe,{skirt},2025-03-02T10:00:00+01:00,\n"
    path = _sales(tmp_path, rows + f"zoe,{dress},2025-03-01T11:00:00+01:00,\n")
    first = import_purchases(store, log, path)
    assert (first.purchases, first.already, first.repeated) == (2, 0, (4,))  # 11:00+01 = 10:00Z
    popularity = log.popularity([dress, skirt])
    again = import_purchases(store, log, path)
    assert (again.purchases, again.new_users, again.already, again.repeated) == (0, 0, 2, (4,))
    assert log.popularity([dress, skirt]) == popularity
    overlap = _sales(tmp_path, rows + f"zoe,{dress},2025-03-05T10:00:00Z,\n")
    more = import_purchases(store, log, overlap)
    assert (more.purchases, more.already) == (1, 2)
    assert log.purchase_count() == 3


def test_an_event_id_column_is_the_event(store: VectorStore, log: EventLog, tmp_path: Path) -> None:
    store_items(store, catalog_items(1))
    dress = "WOMEN-Dresses-id_00000001-01_1_front"
    path = tmp_path / "ids.csv"
    path.write_text(
        "user_id,item_id,timestamp,event_id\n"
        f"zoe,{dress},2025-03-01T10:00:00Z,r1\nzoe,{dress},2025-03-01T10:00:00Z,r2\n",
        encoding="utf-8",
    )
    assert import_purchases(store, log, path).purchases == 2  # two sales of one dress at once
    assert import_purchases(store, log, path).already == 2


def test_times_need_a_zone_and_a_past(store: VectorStore, log: EventLog, tmp_path: Path) -> None:
    store_items(store, catalog_items(1))
    dress = "WOMEN-Dresses-id_00000001-01_1_front"
    naive = _sales(tmp_path, f"zoe,{dress},2025-03-01 10:00,\n")
    with pytest.raises(
        PurchaseLogError, match=r"sales.csv:2: timestamp '2025-03-01 10:00' has no time zone"
    ):
        import_purchases(store, log, naive)
    done = import_purchases(store, log, naive, zone=time_zone("Europe/Paris"))
    assert done.purchases == 1
    assert [p.timestamp for p in log.purchases("zoe")] == [datetime(2025, 3, 1, 9, 0, tzinfo=UTC)]
    future = _sales(
        tmp_path, f"zoe,{dress},{(datetime.now(UTC) + timedelta(days=3)).isoformat()},\n"
    )
    with pytest.raises(PurchaseLogError, match="is in the future"):
        import_purchases(store, log, future)
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        time_zone("Mars/Olympus")


def test_a_log_of_an_earlier_version_gets_event_ids_and_scores(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE users (id TEXT PRIMARY KEY, gender TEXT NOT NULL, trendiness REAL NOT NULL,
            lat REAL NOT NULL, lon REAL NOT NULL, source TEXT NOT NULL);
        CREATE TABLE items (item_id TEXT PRIMARY KEY, initial_popularity INTEGER);
        CREATE TABLE purchases (id INTEGER PRIMARY KEY, user_id TEXT NOT NULL,
            item_id TEXT NOT NULL, timestamp TEXT NOT NULL, store_id TEXT, source TEXT NOT NULL);
        INSERT INTO users VALUES ('u', 'WOMEN', 0.5, 48.8, 2.3, 'imported');
        INSERT INTO items VALUES ('a', 3);
        INSERT INTO purchases (user_id, item_id, timestamp, store_id, source) VALUES
            ('u', 'a', '2026-11-16T12:00:00+00:00', 'S01', 'import:x.csv'),
            ('u', 'a', '2026-11-16T12:00:00+00:00', 'S01', 'import:x.csv');
        """
    )
    db.commit()
    db.close()
    log = EventLog(path)
    keys = [p.event_id for p in log.purchases()]
    stamp = datetime(2026, 11, 16, 12, tzinfo=UTC)
    assert keys == [event_id("u", "a", stamp, "S01"), event_id("u", "a", stamp, "S01") + "-2"]
    assert log.popularity()["a"] == 5  # nothing recorded twice before is dropped
    assert log.trending_as_of(NOW)["a"] == pytest.approx(2 * 0.5, rel=1e-6)
    log.close()
    assert EventLog(path).purchase_count() == 2  # opening again changes nothing


# --- the commands ----------------------------------------------------------------------------


def test_popularity_mode_and_top_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = EdgeStore(home / STORE_DIR)
    store_items(store, catalog_items(1))
    store.close()
    old, new = "WOMEN-Dresses-id_00000001-01_1_front", "WOMEN-Skirts-id_00000002-01_2_side"
    now = datetime.now(UTC)
    rows = [f"a{i},{old},{(now - timedelta(days=517, minutes=i)).isoformat()}" for i in range(20)]
    rows += [f"b{i},{new},{(now - timedelta(days=6, minutes=i)).isoformat()}" for i in range(3)]
    sales = tmp_path / "sales.csv"
    sales.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert fashionrec("purchases", "import", sales, home=home).returncode == 0

    assert "popularity: all-time" in fashionrec("popularity", "mode", home=home).stdout
    top = fashionrec("popularity", "top", "-n", "2", "--json", home=home)
    assert [p["item_id"] for p in json.loads(top.stdout)["items"]] == [old, new]
    skirts = fashionrec(
        "popularity", "top", "--gender", "women", "--category", "skirts", "--json", home=home
    )
    assert {p["category"] for p in json.loads(skirts.stdout)["items"]} == {"Skirts"}
    for wrong, said in (("--gender", "gender must be one of"), ("--category", "unknown category")):
        refused = fashionrec("popularity", "top", wrong, "Kids", home=home)
        assert refused.returncode == 1 and said in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    changed = fashionrec("popularity", "mode", "trending", "--half-life", "7", home=home)
    assert changed.returncode == 0, changed.stderr
    assert "popularity: trending (half-life 7 days) (was all-time)" in changed.stdout
    assert "popularity: trending (half-life 7 days)" in fashionrec("info", home=home).stdout
    trending = json.loads(fashionrec("popularity", "top", "-n", "2", "--json", home=home).stdout)
    assert [p["item_id"] for p in trending["items"]] == [new, old]
    assert trending["items"][0]["purchases"] == 3
    assert trending["items"][0]["score"] == pytest.approx(3 * 2 ** (-6 / 7), rel=0.01)
    # a list shows each item's trending popularity as of now (sales), not the stored score
    skirt = new.removesuffix("2_side")
    rows = [f"c,{skirt}{v},{(now - timedelta(days=6)).isoformat()}" for v in ("1_front", "3_back")]
    sales.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert fashionrec("purchases", "import", sales, home=home).returncode == 0
    tee = "WOMEN-Tees_Tanks-id_00000003-01_1_front"
    similar = fashionrec("recommend", "--item", tee, "-k", "3", "--json", home=home)
    listed = {
        r["item_id"]: r["popularity"]
        for r in json.loads(similar.stdout)["lists"][0]["recommendations"]
    }
    shown = next(i for i in listed if i.startswith(skirt))
    sold = 3 if shown == new else 1
    assert listed[shown] == pytest.approx(sold * 2 ** (-6 / 7), rel=0.01)
    before = fashionrec("popularity", "top", "-n", "1", "--as-of", "2024-01-01", home=home)
    assert "sales" in before.stdout and " 0 " in before.stdout  # nothing sold yet then
    table = fashionrec("popularity", "top", "--mode", "all-time", "--gender", "WOMEN", home=home)
    assert table.stdout.index(old) < table.stdout.index(new)
    assert "…" not in table.stdout  # ids are wrapped whole, never cut
    payload = EdgeStore(home / STORE_DIR)
    stored = {str(r.payload["item_id"]): r.payload for r in payload.scroll(None)}
    payload.close()
    assert stored[new]["trending"] > stored[old]["trending"]  # the payload carries the mode

    for args, message in [
        (("popularity", "mode", "hot"), "popularity mode must be one of all-time, trending"),
        (("popularity", "mode", "--half-life", "0"), "--half-life must be between 1 and 3650"),
        (("popularity", "top", "--as-of", "yesterday"), "--as-of 'yesterday' is not a date"),
        (("popularity", "top", "--as-of", "2025-01-01T10:00"), "has no time zone"),
        (("purchases", "import", sales, "--timezone", "Mars/Olympus"), "unknown time zone"),
    ]:
        failed = fashionrec(*args, home=home)
        assert failed.returncode == 1 and message in failed.stderr, failed
        assert len(failed.stderr.strip().splitlines()) == 1
