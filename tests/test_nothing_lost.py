"""Data a user could lose by accident: stores replaced under their items, purchase logs
and manifests naming no store, an export without its stores, a demo in a real home.

Each test first reproduces what went wrong, then checks the refusal (one line, exit 1,
nothing written) and the explicit way through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.errors import ShopsError
from engine.events.eventlog import EventLog
from engine.settings import EVENT_LOG, STORE_DIR
from engine.shops.placement import set_shops, stranded_items
from engine.shops.shops import generate_shops
from engine.vectorstore.base import VectorStore
from engine.vectorstore.edge import EdgeStore
from engine.vocabulary.geo import DEFAULT_REGION, Location
from engine.vocabulary.records import Shop
from tests.builders import catalog_items, fashionrec, home_with_items, store_items

STORES_CSV = "id,lat,lon,name\nP01,48.85,2.35,Louvre\nP02,48.80,2.13,Versailles\n"


def _placements(home: Path) -> dict[str, tuple[object, object]]:
    store = EdgeStore(home / STORE_DIR)
    try:
        return {
            str(r.payload["item_id"]): (r.payload.get("store_id"), r.payload.get("store_location"))
            for r in store.scroll(["item_id", "store_id", "store_location"])
        }
    finally:
        store.close()


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


# --- stores replaced under their items ------------------------------------------------------


def test_generating_stores_over_imported_ones_needs_replace(tmp_path: Path) -> None:
    """`shops generate` after `shops import` left every item naming a store that no
    longer existed; now it is refused unless --replace, which moves those items."""
    home = tmp_path / "home"
    home_with_items(home)
    shops = tmp_path / "shops.csv"
    shops.write_text(STORES_CSV, encoding="utf-8")
    assert fashionrec("shops", "import", shops, home=home).returncode == 0
    before = _placements(home)
    assert {s for s, _ in before.values()} == {"P01", "P02"}

    refused = fashionrec("shops", "generate", "--count", "3", home=home)
    assert refused.returncode == 1
    line = _one_line(refused.stderr)
    assert "30 item(s) are in shop(s) P01, P02 that the new shops lack" in line
    assert "--replace" in line
    assert _placements(home) == before  # nothing moved
    listed = fashionrec("shops", "list", home=home)
    assert "P01" in listed.stdout and "S01" not in listed.stdout  # the old stores stay

    replaced = fashionrec("shops", "generate", "--count", "3", "--replace", home=home)
    assert replaced.returncode == 0, replaced.stderr
    assert "30 item(s) placed" in replaced.stdout
    after = _placements(home)
    log = EventLog(home / EVENT_LOG)
    locations = {s.id: s.location.payload() for s in log.shops()}
    log.close()
    assert set(locations) == {"S01", "S02", "S03"}
    assert all(location == locations[str(shop)] for shop, location in after.values())

    # keeping the ids (new coordinates) needs no --replace: nothing is stranded
    moved = tmp_path / "moved.csv"
    moved.write_text("id,lat,lon\nS01,48.9,2.3\nS02,48.7,2.2\nS03,48.8,2.4\n", encoding="utf-8")
    assert fashionrec("shops", "import", moved, home=home).returncode == 0


def test_replace_moves_manifest_items_too(tmp_path: Path) -> None:
    store: VectorStore = EdgeStore(tmp_path / "store")
    log = EventLog(tmp_path / "events.sqlite")
    try:
        store_items(store, catalog_items(1, store_id="P01"))  # a manifest's store
        set_shops(store, log, [Shop("P01", "Louvre", Location(48.85, 2.35))], DEFAULT_REGION, 1)
        new = generate_shops(2, DEFAULT_REGION, seed=1)
        with pytest.raises(ShopsError, match=r"15 item\(s\) are in shop\(s\) P01"):
            set_shops(store, log, new, DEFAULT_REGION, seed=1)
        assert [s.id for s in log.shops()] == ["P01"]
        assert set_shops(store, log, new, DEFAULT_REGION, seed=1, replace=True) == 15
        assert stranded_items(store, {"S01", "S02"}) == {}
        origins = {str(r.payload["store_origin"]) for r in store.scroll(["store_origin"])}
        assert origins == {"round-robin"}
    finally:
        log.close()
        store.close()


def test_purchases_that_name_a_store_keep_it_even_with_replace(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home_with_items(home)
    assert fashionrec("simulate", "--users", "2", home=home).returncode == 0
    moved = fashionrec("shops", "generate", "--count", "5", "--seed", "7", home=home)
    assert moved.returncode == 0, moved.stderr  # the same ids S01…S05 elsewhere: allowed
    shrink = fashionrec("shops", "generate", "--count", "3", "--replace", home=home)
    assert shrink.returncode == 1
    line = _one_line(shrink.stderr)
    assert "purchases refer to the shops S04, S05; keep their ids" in line


# --- a purchase log or manifest naming no store ---------------------------------------------


def test_a_purchase_log_naming_no_store_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home_with_items(home)
    assert fashionrec("shops", "generate", "--count", "2", home=home).returncode == 0
    item = "MEN-Denim-id_00000001-01_1_front"
    sales = tmp_path / "sales.csv"
    sales.write_text(
        f"user_id,item_id,timestamp,store_id\nzoe,{item},2025-01-01T10:00:00Z,S09\n",
        encoding="utf-8",
    )
    refused = fashionrec("purchases", "import", sales, home=home)
    assert refused.returncode == 1
    assert "sales.csv:2: unknown shop 'S09'" in _one_line(refused.stderr)
    log = EventLog(home / EVENT_LOG)
    assert log.purchase_count() == 0 and log.user_ids() == []
    log.close()


# --- export and load into a new home --------------------------------------------------------


def _export(home: Path, out: Path) -> str:
    """Export resnet50 through the CLI, then pad the 4-d test vectors to ResNet-50's 2048."""
    import numpy as np

    exported = fashionrec("export", "--backbone", "resnet50", "--out", out, home=home)
    assert exported.returncode == 0, exported.stderr
    vectors = np.load(out / "vectors.npy")
    padded = np.zeros((len(vectors), 2048), dtype=np.float32)
    padded[:, : vectors.shape[1]] = vectors
    np.save(out / "vectors.npy", padded)
    return exported.stdout


def _load(out: Path, home: Path) -> tuple[int, str, str]:
    result = fashionrec(
        "ingest",
        "--vectors",
        out / "vectors.npy",
        "--payloads",
        out / "payloads.jsonl",
        "--backbone",
        "resnet50",
        home=home,
    )
    return result.returncode, result.stdout, result.stderr


def test_export_carries_the_stores_and_the_load_restores_them(tmp_path: Path) -> None:
    """`export` + `ingest --vectors` into a new home lost the stores; now they travel."""
    source, target, out = tmp_path / "source", tmp_path / "target", tmp_path / "export"
    home_with_items(source)
    shops = tmp_path / "shops.csv"
    shops.write_text(STORES_CSV, encoding="utf-8")
    assert fashionrec("shops", "import", shops, home=source).returncode == 0
    said = _export(source, out)
    assert f"2 shop(s) to {out / 'stores.csv'}" in said.replace("\n", "")
    code, stdout, stderr = _load(out, target)
    assert code == 0, stderr
    assert "2 shop(s) added from" in stdout and "P01, P02" in stdout
    log = EventLog(target / EVENT_LOG)
    assert [(s.id, s.name) for s in log.shops()] == [("P01", "Louvre"), ("P02", "Versailles")]
    log.close()
    assert _placements(target) == _placements(source)  # every item in its store, same place


def test_a_load_whose_stores_are_missing_says_so_and_writes_nothing(tmp_path: Path) -> None:
    source, target, out = tmp_path / "source", tmp_path / "target", tmp_path / "export"
    home_with_items(source)
    assert fashionrec("shops", "generate", "--count", "2", home=source).returncode == 0
    _export(source, out)
    (out / "stores.csv").unlink()  # an export of an earlier version: no stores.csv
    code, _, stderr = _load(out, target)
    assert code == 1
    line = _one_line(stderr)
    assert "names shop(s) S01, S02 that" in line and "shops import" in line
    assert not target.exists()  # no store, no event log: nothing at all
    (out / "stores.csv").write_text("id,lat,lon\nS01,48.8,2.3\n", encoding="utf-8")
    code, _, stderr = _load(out, target)
    assert code == 1 and "names shop(s) S02 that neither" in _one_line(stderr)
    # a home without stores exports none, and says so
    bare, elsewhere = tmp_path / "bare", tmp_path / "elsewhere"
    home_with_items(bare)
    assert "this home has no shops" in _export(bare, elsewhere).replace("\n", " ")
    assert not (elsewhere / "stores.csv").exists()


# --- the demo in a home of its own ----------------------------------------------------------


@pytest.mark.slow
def test_the_demo_never_touches_the_configured_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fashionrec demo` with FASHIONREC_HOME at a real shop added 138 synthetic items to
    it; now it runs in ./demo and says so, whatever FASHIONREC_HOME, FASHIONREC_QDRANT_URL
    and FASHIONREC_TAXONOMY say, the runtime chosen by `auto`."""
    from cli.demo import demo_home as chosen

    real = tmp_path / "real"
    home_with_items(real)
    before = _placements(real)
    configured = {
        "FASHIONREC_HOME": str(real),
        "FASHIONREC_QDRANT_URL": "http://127.0.0.1:9",  # a server nobody should write to
        "FASHIONREC_TAXONOMY": "retail",
        "COLUMNS": "200",
    }
    monkeypatch.chdir(tmp_path)
    args = ["demo", "--backbone", "mobilenet_v2", "--products", "1", "--workers", "0"]
    result = CliRunner().invoke(app, args, env=configured, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    demo_home = tmp_path / "demo"
    assert f"Demo home: {demo_home}" in result.stdout
    assert "runtime: mobilenet_v2 " in result.stdout  # what auto chose, and why
    assert _placements(real) == before  # the real home: the same 30 items, untouched
    assert not (real / "demo-catalog").exists() and not (real / EVENT_LOG).exists()
    store = EdgeStore(demo_home / STORE_DIR)
    assert store.count() == 69  # 23 gender/category pairs × 1 product × 3 views
    store.close()

    assert chosen(demo_home) == demo_home  # its own home (marked so): it may run there again
    refused = fashionrec("demo", "--home", real, home=real)
    assert refused.returncode == 1
    line = _one_line(refused.stderr)
    assert f"{real} holds a store the demo did not make" in line
    assert _placements(real) == before


def test_the_demo_puts_the_environment_back(tmp_path: Path) -> None:
    """While the demo runs, its home is the only one configured; afterwards the
    environment is as it was."""
    from cli.demo import ENVIRONMENT, isolated

    saved = {name: os.environ.get(name) for name in ENVIRONMENT}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FASHIONREC_HOME", "/shop/home")
        patch.setenv("FASHIONREC_QDRANT_URL", "http://127.0.0.1:9")
        patch.delenv("FASHIONREC_TAXONOMY", raising=False)
        with isolated(tmp_path / "demo") as config:
            assert config.home == tmp_path / "demo" and config.qdrant_url is None
            assert os.environ["FASHIONREC_HOME"] == str(tmp_path / "demo")
            assert "FASHIONREC_QDRANT_URL" not in os.environ
        assert os.environ["FASHIONREC_HOME"] == "/shop/home"
        assert os.environ["FASHIONREC_QDRANT_URL"] == "http://127.0.0.1:9"
        assert "FASHIONREC_TAXONOMY" not in os.environ
    assert {name: os.environ.get(name) for name in ENVIRONMENT} == saved
