"""Stores placed on items, simulation and purchase logs, kept in step with the vector store."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from engine.errors import FashionrecError
from engine.events.eventlog import EventLog
from engine.popularity.normpop import percentile_ranks
from engine.popularity.upkeep import sync_popularity
from engine.shoppers.purchaselog import export_purchases, import_purchases
from engine.shoppers.simulation import SimulationConfig
from engine.shoppers.simulations import clear_simulation, run_simulation
from engine.shops.placement import place_items, set_shops
from engine.shops.shops import generate_shops
from engine.vectorstore.base import VectorStore
from engine.vocabulary.geo import DEFAULT_REGION, Region
from engine.vocabulary.schema import point_id
from tests.builders import catalog_items, store_items
from tests.conftest import OpenLog


def _payloads(store: VectorStore) -> dict[str, dict[str, object]]:
    fields = ["item_id", "product_id", "category", "store_id", "store_location", "popularity"]
    return {str(r.payload["item_id"]): r.payload for r in store.scroll(fields)}


def test_every_view_of_a_product_shares_a_balanced_store(store: VectorStore, log: EventLog) -> None:
    store_items(store, catalog_items())
    stores = generate_shops(3, DEFAULT_REGION, seed=1)
    assert set_shops(store, log, stores, DEFAULT_REGION, seed=1) == 60
    payloads = _payloads(store)
    by_product: dict[str, set[object]] = defaultdict(set)
    per_category: dict[str, dict[object, int]] = defaultdict(lambda: defaultdict(int))
    for p in payloads.values():
        by_product[str(p["product_id"])].add(p["store_id"])
    assert all(len(s) == 1 for s in by_product.values())
    for p in payloads.values():
        if p["item_id"].endswith("1_front"):  # type: ignore[union-attr]
            per_category[str(p["category"])][p["store_id"]] += 1
    for counts in per_category.values():  # 4 products over 3 stores: 2/1/1
        assert sorted(counts.values()) == [1, 1, 2]
    location = {s.id: s.location.payload() for s in stores}
    assert all(p["store_location"] == location[str(p["store_id"])] for p in payloads.values())
    assert place_items(store, log) == 0  # placing again changes nothing


def test_manifest_stores_are_kept(store: VectorStore, log: EventLog) -> None:
    store_items(store, catalog_items(1, store_id="S02"))
    set_shops(store, log, generate_shops(3, DEFAULT_REGION, seed=1), DEFAULT_REGION, seed=1)
    payloads = _payloads(store)
    assert {p["store_id"] for p in payloads.values()} == {"S02"}
    assert all("store_location" in p for p in payloads.values())


def test_simulation_moves_popularity_in_the_store(store: VectorStore, log: EventLog) -> None:
    store_items(store, catalog_items())
    result = run_simulation(store, log, SimulationConfig(users=10, max_purchases=3, seed=4))
    assert log.shops() and len(result.purchases) == log.purchase_count() > 0
    payloads = _payloads(store)
    current = log.popularity()
    assert {k: int(v["popularity"]) for k, v in payloads.items()} == current  # type: ignore[call-overload]
    for purchase in result.purchases:
        assert purchase.store_id == payloads[purchase.item_id]["store_id"]
    low, high = log.popularity_range()
    assert log.get("popularity_range") == f"{low},{high}"
    again = run_simulation(store, log, SimulationConfig(users=2, seed=5))
    assert [u.id for u in again.users] == ["sim-00011", "sim-00012"]


def test_a_seed_simulates_once_and_clearing_keeps_the_real_purchases(
    store: VectorStore, log: EventLog, tmp_path: Path
) -> None:
    """Simulating the same seed twice would count the same shoppers twice under new ids;
    `simulate --clear` removes simulated shoppers, purchases and initial popularity, and
    what a till or an import recorded stays, with payloads and ranks in step."""
    store_items(store, catalog_items())
    run_simulation(store, log, SimulationConfig(users=6, seed=4))
    before = log.purchase_count()
    with pytest.raises(FashionrecError, match="simulated with seed 4 already"):
        run_simulation(store, log, SimulationConfig(users=6, seed=4))
    assert log.purchase_count() == before and log.simulated_seeds() == [4]
    dress = "WOMEN-Dresses-id_00000001-01_1_front"
    real = _csv(
        tmp_path / "sales.csv", f"user_id,item_id,timestamp\nann,{dress},2025-05-01T10:00Z\n"
    )
    import_purchases(store, log, real)
    assert log.purchases_by_source() == {"simulated": before, "import:sales.csv": 1}
    assert clear_simulation(store, log) == (6, before)
    assert log.purchases_by_source() == {"import:sales.csv": 1}
    assert log.user_ids() == ["ann"] and log.simulated_seeds() == []
    assert log.popularity() == {i: int(i == dress) for i in log.popularity()}
    fields = ["item_id", "popularity", "trending", "popularity_rank"]
    payloads = {str(r.payload["item_id"]): r.payload for r in store.scroll(fields)}
    assert {i: p["popularity"] for i, p in payloads.items()} == {
        i: float(i == dress) for i in payloads
    }
    assert payloads[dress]["popularity_rank"] == 1.0  # the only item sold
    run_simulation(store, log, SimulationConfig(users=2, seed=4))  # cleared: allowed again


def test_a_deleted_item_keeps_its_purchases_and_popularity_skips_it(
    store: VectorStore, log: EventLog, tmp_path: Path
) -> None:
    """The log keeps the purchases of a deleted item (history); every popularity and rank
    write skips its point, which is gone: a full sync, a new half-life's rescale, a new
    simulation, an import, a partial sync naming it, and clearing the simulation."""
    from engine.events.trending import PopularitySettings

    items = catalog_items(1)
    store_items(store, items)
    run_simulation(store, log, SimulationConfig(users=4, seed=4))
    gone, dress = items[1].item_id, items[0].item_id
    sales = "user_id,item_id,timestamp\n"
    import_purchases(store, log, _csv(tmp_path / "a.csv", f"{sales}ann,{gone},2025-05-01T10:00Z\n"))
    store.delete([point_id(gone)])
    assert sync_popularity(store, log) == len(items) - 1
    log.set_popularity_settings(PopularitySettings("trending", 7.0))
    assert sync_popularity(store, log, [gone, dress]) == 1
    run_simulation(store, log, SimulationConfig(users=2, seed=5))
    later = _csv(tmp_path / "b.csv", f"{sales}ann,{dress},2025-05-02T10:00Z\n")
    import_purchases(store, log, later)
    assert clear_simulation(store, log)[1] > 0
    assert [p.item_id for p in log.purchases("ann")] == [gone, dress]  # history stays
    assert log.popularity([gone]) == {gone: 1}
    payloads = _payloads(store)
    assert gone not in payloads and len(payloads) == len(items) - 1
    assert payloads[dress]["popularity"] == 1.0


def test_an_item_that_comes_back_carries_its_history(
    store: VectorStore, log: EventLog, tmp_path: Path
) -> None:
    """Deleted, then ingested again (written with popularity 0): its payload gets the
    popularity and trending score the log holds for it."""
    from engine.popularity.upkeep import restore_history

    items = catalog_items(1)
    store_items(store, items)
    run_simulation(store, log, SimulationConfig(users=4, seed=4))
    back = items[0].item_id
    expected = _payloads(store)[back]["popularity"]
    assert expected and restore_history(store, log) == 0  # nothing lacks it
    store.delete([point_id(back)])
    store_items(store, items[:1])  # as ingest writes a point: popularity 0
    assert _payloads(store)[back]["popularity"] == 0.0
    assert restore_history(store, log) == 1
    assert _payloads(store)[back]["popularity"] == expected


def test_clearing_the_simulation_keeps_a_simulated_shoppers_real_purchase(
    store: VectorStore, log: EventLog, tmp_path: Path
) -> None:
    """A till's sale to a shopper the simulation created stays, and so does the shopper:
    `simulate --clear` removes only what the simulation wrote."""
    items = catalog_items(1)
    store_items(store, items)
    run_simulation(store, log, SimulationConfig(users=3, seed=4))
    dress = items[0].item_id
    row = f"sim-00002,{dress},2025-06-01T10:00Z"
    sale = _csv(tmp_path / "s.csv", f"user_id,item_id,timestamp\n{row}\n")
    import_purchases(store, log, sale)
    shoppers, simulated = clear_simulation(store, log)
    assert shoppers == 2 and simulated > 0
    assert log.purchases_by_source() == {"import:s.csv": 1}
    assert log.user_ids() == ["sim-00002"]
    assert [p.item_id for p in log.purchases("sim-00002")] == [dress]
    assert _payloads(store)[dress]["popularity"] == 1.0


def test_popularity_sync_rebuilds_the_payload(store: VectorStore, log: EventLog) -> None:
    items = catalog_items(1)
    store_items(store, items)
    run_simulation(store, log, SimulationConfig(users=3, seed=4))
    store.set_payload([point_id(i.item_id) for i in items], {"popularity": -1.0})
    assert sync_popularity(store, log) == len(items)
    assert all(v["popularity"] >= 0 for v in _payloads(store).values())  # type: ignore[operator]


def _csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_import_creates_users_and_estimates_trendiness(
    store: VectorStore, log: EventLog, tmp_path: Path
) -> None:
    items = catalog_items(1)
    store_items(store, items)
    set_shops(store, log, generate_shops(2, DEFAULT_REGION, seed=1), DEFAULT_REGION, seed=1)
    dress = "WOMEN-Dresses-id_00000001-01_1_front"
    skirt = "WOMEN-Skirts-id_00000002-01_2_side"
    log_file = _csv(
        tmp_path / "p.csv",
        "user_id,item_id,timestamp\n"
        f"alice,{skirt},2025-03-02T10:00:00Z\n"
        f"alice,{dress},2025-03-01T10:00:00+01:00\n"
        f"bob,{dress},2025-04-01T00:00:00Z\n",
    )
    summary = import_purchases(store, log, log_file)
    assert (summary.purchases, summary.new_users, summary.items) == (3, 2, 2)
    alice = log.user("alice")
    assert alice is not None and alice.gender == "WOMEN"
    # popularity after the import: dress 2, skirt 1, others 0 → normalised 1.0 and 0.5
    assert alice.trendiness == pytest.approx(0.75)
    bob = log.user("bob")
    assert bob is not None and bob.trendiness == pytest.approx(1.0)
    assert [p.item_id for p in log.purchases("alice")] == [dress, skirt]  # time order
    assert _payloads(store)[dress]["popularity"] == 2.0


def test_an_import_costs_its_rows_not_the_catalog(
    store: VectorStore, log: EventLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a shop's log is under way, importing one sale reads that sale's item, not the
    catalog (it once scrolled every item into the log on every import): its ranks are
    counted in the store, exactly, and the others' are left to drift (as long as a shop's
    catalog is large beside the sales of one import; here the drift allowed is raised)."""
    monkeypatch.setattr("engine.popularity.upkeep.RANK_DRIFT", 0.5)
    store_items(store, catalog_items(4))  # 60 items
    dress = "WOMEN-Dresses-id_00000001-01_1_front"
    header = "user_id,item_id,timestamp\n"
    import_purchases(
        store, log, _csv(tmp_path / "a.csv", f"{header}ann,{dress},2025-03-01T10:00Z\n")
    )
    scrolled: list[object] = []
    scroll = type(store).scroll

    def counted(self: VectorStore, *args: object, **kwargs: object) -> object:
        scrolled.append(args)
        return scroll(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(type(store), "scroll", counted)
    one = _csv(tmp_path / "b.csv", f"{header}bea,{dress},2025-03-01T12:00Z\n")
    summary = import_purchases(store, log, one)
    assert (summary.purchases, summary.new_users) == (1, 1)
    assert scrolled == []
    fields = ["item_id", "popularity", "trending", "popularity_rank", "trending_rank"]
    payloads = {str(r.payload["item_id"]): r.payload for r in store.scroll(fields)}
    assert payloads[dress]["popularity"] == 2.0
    ids = sorted(payloads)
    for value, rank, other in (
        ("popularity", "popularity_rank", "trending"),
        ("trending", "trending_rank", "popularity"),
    ):
        exact = percentile_ranks(
            [payloads[i].get(value, 0.0) for i in ids], [payloads[i].get(other, 0.0) for i in ids]
        )
        assert payloads[dress][rank] == pytest.approx(exact[ids.index(dress)], abs=1e-6)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("user_id,item_id\nu,x\n", r"p.csv: missing column\(s\) timestamp"),
        ("user_id,item_id,timestamp\nu,MEN-Denim-id_00000004-01_1_front,yesterday\n",
         r"p.csv:2: bad timestamp 'yesterday'"),
        ("user_id,item_id,timestamp\nu,MEN-Denim-id_00000004-01_1_front,2025-01-01T00:00:00Z\n"
         "v,no-such-item,2025-01-02T00:00:00Z\nw,other,2025-01-03T00:00:00Z\n",
         r"p.csv:3: unknown item 'no-such-item'; .*p.csv:4: unknown item 'other'; nothing"),
        ("user_id,item_id,timestamp,trendiness\nu,MEN-Denim-id_00000004-01_1_front,2025-01-01T00:00:00Z,7\n",
         r"p.csv:2: trendiness '7' is not a number in \[0, 1\]"),
    ],
)  # fmt: skip
def test_bad_logs_import_nothing(
    store: VectorStore, log: EventLog, tmp_path: Path, body: str, message: str
) -> None:
    store_items(store, catalog_items(1))
    with pytest.raises(FashionrecError, match=message) as info:
        import_purchases(store, log, _csv(tmp_path / "p.csv", body))
    assert str(info.value).endswith("nothing recorded")
    assert log.purchase_count() == 0 and log.user_ids() == []


def test_export_then_import_round_trips(
    store: VectorStore, log: EventLog, open_log: OpenLog, tmp_path: Path
) -> None:
    store_items(store, catalog_items(1))
    run_simulation(store, log, SimulationConfig(users=5, seed=2))
    exported = tmp_path / "all.csv"
    assert export_purchases(log, exported) == log.purchase_count()
    fresh = open_log(tmp_path / "fresh.sqlite")
    fresh.replace_shops(log.shops(), Region.around([s.location for s in log.shops()]), 42)
    import_purchases(store, fresh, exported)
    assert list(fresh.purchases()) == list(log.purchases())
    assert fresh.user_ids() == log.user_ids()
    for user_id in log.user_ids():
        old, new = log.user(user_id), fresh.user(user_id)
        assert old is not None and new is not None
        assert (old.gender, old.trendiness) == (new.gender, new.trendiness)


def test_moved_stores_move_their_items(store: VectorStore, log: EventLog) -> None:
    store_items(store, catalog_items(1))
    set_shops(store, log, generate_shops(2, DEFAULT_REGION, seed=1), DEFAULT_REGION, seed=1)
    before = _payloads(store)
    moved = generate_shops(2, DEFAULT_REGION, seed=9)  # same ids, other places
    assert set_shops(store, log, moved, DEFAULT_REGION, seed=1) == len(before)
    after = _payloads(store)
    location = {s.id: s.location.payload() for s in moved}
    for item, payload in after.items():
        assert payload["store_id"] == before[item]["store_id"]
        assert payload["store_location"] == location[str(payload["store_id"])]


def test_a_log_that_cannot_write_imports_nothing(
    store: VectorStore, log: EventLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_items(store, catalog_items(1))
    item = "MEN-Denim-id_00000004-01_1_front"
    body = (
        f"user_id,item_id,timestamp\nu1,{item},2025-01-01T00:00:00Z\n"
        f"u2,{item},2025-01-02T00:00:00Z\n"
    )

    def full(*args: object, **kwargs: object) -> None:
        raise log.db.errors[0]("database or disk is full")  # as the back-end's driver would

    monkeypatch.setattr(EventLog, "add_purchases", full)
    with pytest.raises(FashionrecError, match=r"could not write \(database or disk is full\)"):
        import_purchases(store, log, _csv(tmp_path / "p.csv", body))
    assert log.purchase_count() == 0 and log.user_ids() == []  # the users went back too
