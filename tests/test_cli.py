"""The command line as a user runs it: one-line errors, ingest, info, --help without torch.

Most commands run in this process through typer's CliRunner; a few run as real processes,
to check what only a process shows (exit codes, stderr, what gets imported)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.events.eventlog import EventLog
from ingest.democatalog import DemoCatalog
from tests.builders import copy_catalog, fashionrec, fashionrec_subprocess, home_with_items


def test_missing_folder_is_one_line(tmp_path: Path) -> None:
    result = fashionrec_subprocess(
        "ingest", tmp_path / "nowhere", "--weights", "random", home=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nowhere'}: no such file or folder"
    ]
    assert "Traceback" not in result.stderr


def test_unknown_backbone_is_one_line(tmp_path: Path) -> None:
    result = fashionrec("ingest", tmp_path, "--backbone", "alexnet", home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: unknown backbone alexnet; choose from resnet50, densenet121, vgg16, mobilenet_v2"
    ]


def test_bad_flag_values(tmp_path: Path) -> None:
    result = fashionrec("ingest", tmp_path, "--batch-size", "0", home=tmp_path)
    assert result.returncode == 1 and "--batch-size must be 1 to 512, got 0" in result.stderr


@pytest.mark.slow
def test_ingest_then_info(small_catalog: DemoCatalog, tmp_path: Path) -> None:
    part = copy_catalog(small_catalog, tmp_path / "catalog", limit=4)
    (part.images / "broken.jpg").write_bytes(b"")
    home = tmp_path / "home"
    result = fashionrec(
        "ingest",
        part.images,
        "--backbone",
        "mobilenet_v2",
        "--weights",
        "random",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--runtime",
        "torch",
        "--report",
        tmp_path / "report.csv",
        home=home,
    )
    assert result.returncode == 3, result.stderr  # finished, but one item was not stored
    assert "WARNING: random-init weights" in result.stderr
    assert "ingested 4 · skipped 0" in result.stdout and "unparsed 1" in result.stdout
    assert "1 item(s) not stored:\n  bad name 1\n" in result.stdout
    report = (tmp_path / "report.csv").read_text().splitlines()
    assert report[0] == "where,item_id,stage,reason" and "broken.jpg" in report[1]
    info = fashionrec("info", home=home)
    assert info.returncode == 0, info.stderr
    assert "items: 4 · masked 100.0%" in info.stdout
    assert "mobilenet_v2 │ 1280 │ 4" in info.stdout
    args = (
        "--backbone",
        "mobilenet_v2",
        "--weights",
        "random",
        "--workers",
        "0",
        "--runtime",
        "torch",
    )
    again = fashionrec("ingest", part.images, *args, home=home)
    assert "ingested 0 · skipped 4 (already stored 4" in again.stdout


def test_help_does_not_import_torch(tmp_path: Path) -> None:
    code = "import sys, cli.main; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False"
    after_help = (
        "import sys\nfrom cli.main import main\nsys.argv = ['fashionrec', '--help']\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    print('exit', exit.code)\n"
        "print('torch' in sys.modules)\n"
    )
    shown = subprocess.run([sys.executable, "-c", after_help], capture_output=True, text=True)
    lines = shown.stdout.strip().splitlines()
    assert lines[-2:] == ["exit 0", "False"], shown.stdout + shown.stderr
    assert "ingest" in shown.stdout and "recommend" in shown.stdout


def test_stores_simulate_users_purchases(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home_with_items(home)
    made = fashionrec("stores", "generate", "--count", "3", "--seed", "1", home=home)  # once
    assert made.returncode == 0, made.stderr
    assert "30 item(s) placed in a shop" in made.stdout
    sim = fashionrec("simulate", "--users", "4", "--max-purchases", "2", home=home)
    assert sim.returncode == 0, sim.stderr
    assert "4 users" in sim.stdout
    again = fashionrec("simulate", "--users", "4", home=home)
    assert again.returncode == 1 and "simulated with seed 42 already" in again.stderr
    assert (
        "simulated (seed 42; `fashionrec simulate --clear`" in fashionrec("info", home=home).stdout
    )
    shown = fashionrec("users", "show", "sim-00001", home=home)
    assert shown.returncode == 0 and "trendiness" in shown.stdout and "km away" in shown.stdout
    out = tmp_path / "export.csv"
    exported = fashionrec("purchases", "export", out, home=home)
    assert exported.returncode == 0 and out.read_text().startswith("user_id,item_id,timestamp")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "user_id,item_id,timestamp\nzoe,nothing,2025-01-01T00:00:00Z\n", encoding="utf-8"
    )
    refused = fashionrec("purchases", "import", bad, home=home)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: {bad}:2: unknown item 'nothing'; nothing recorded"
    ]
    unknown = fashionrec("users", "show", "nobody", home=home)
    assert unknown.returncode == 1 and "unknown user 'nobody'" in unknown.stderr
    synced = fashionrec("popularity", "sync", home=home)
    assert synced.returncode == 0 and "popularity of 30 item(s) written" in synced.stdout
    region = fashionrec("shops", "generate", "--region", "1,2,3", home=home)
    assert region.returncode == 1 and "LAT_MIN,LAT_MAX,LON_MIN,LON_MAX" in region.stderr


def test_recommend_for_a_user_and_an_item(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home_with_items(home)
    assert fashionrec("simulate", "--users", "3", home=home).returncode == 0
    result = fashionrec("recommend", "--user", "sim-00001", "--json", "-k", "3", home=home)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["user"]["id"] == "sim-00001"
    assert body["lists"][-1]["list"] == "merged"
    for entry in body["lists"]:
        assert 1 <= len(entry["recommendations"]) <= 3
        for rec in entry["recommendations"]:
            assert rec["gender"] == body["user"]["gender"] and rec["distance_km"] is not None
    item = body["lists"][0]["recommendations"][0]["item_id"]
    table = fashionrec("recommend", "--item", item, "--preset", "paper", "--csv", home=home)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.strip().splitlines()
    # the catalog has 4 products of that gender: the item's own product is never returned
    assert lines[0].startswith("list,rank,item_id") and len(lines) == 1 + 3
    diverse = fashionrec("recommend", "--item", item, "--diversity", "1", "--csv", home=home)
    assert diverse.returncode == 0, diverse.stderr
    rows = diverse.stdout.strip().splitlines()[1:]
    assert len(rows) == 3 and len({row.split(",")[3] for row in rows}) == 3  # 3 products


def test_recommend_errors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home_with_items(home)
    cases = {
        ("recommend",): "give exactly one of --item ITEM_ID, --user USER_ID or --image PATH",
        ("recommend", "--item", "nope"): "unknown item 'nope'",
        ("recommend", "--user", "nobody"): "unknown user 'nobody'",
        ("recommend", "--item", "x", "--w-visual", "2"): "weight visual must be in [0, 1], got 2.0",
        ("recommend", "--item", "x", "--gamma", "0"): "gamma must be positive",
        ("recommend", "--item", "x", "--normalise", "z"): "normalise must be one of rank, minmax",
        ("recommend", "--item", "x", "-k", "0"): "k must be positive",
        ("recommend", "--item", "x", "--diversity", "2"): "diversity must be in [0, 1], got 2.0",
        ("recommend", "--item", "x", "--backbone", "vgg16"): "backbone vgg16 is not ingested",
    }
    for args, message in cases.items():
        result = fashionrec(*args, home=home)
        assert result.returncode == 1, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)


def test_evaluate_and_show(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home_with_items(home)
    missing = fashionrec("evaluate", "--backbones", "vgg16", home=home)
    assert missing.returncode == 1
    assert "backbone(s) vgg16 not ingested (the store has resnet50)" in missing.stderr
    tasteless = fashionrec("evaluate", "--shoppers", "taste", home=home)
    assert tasteless.returncode == 1
    assert "taste shoppers need a style the ranker never reads" in tasteless.stderr
    out = tmp_path / "results"
    # no --backbones: the store's spaces (a default ingest has one)
    result = fashionrec("evaluate", "--users", "6", "--out", out, "--name", "r", home=home)
    assert result.returncode == 0, result.stderr
    assert "## Table 1" in result.stdout and "## Leave-last-out" in result.stdout
    metrics = json.loads((out / "r" / "metrics.json").read_text())
    assert metrics["setting"]["backbones"] == ["resnet50"]
    assert metrics["setting"]["normalise"] == "rank"
    assert sorted(p.name for p in (out / "r").iterdir()) == [
        "grid.png",
        "metrics.json",
        "sweep.png",
        "tables.md",
    ]
    assert fashionrec("simulate", "--users", "2", home=home).returncode == 0
    grid = tmp_path / "grid.png"
    shown = fashionrec("show", "--user", "sim-00001", "--out", grid, home=home)
    assert shown.returncode == 0, shown.stderr
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stores_import(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home_with_items(home)
    good = tmp_path / "stores.csv"
    good.write_text("id,lat,lon,name\nA,48.85,2.35,Louvre\nB,48.80,2.13\n", encoding="utf-8")
    result = fashionrec("shops", "import", good, home=home)
    assert result.returncode == 0, result.stderr
    assert "30 item(s) placed" in result.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("id,lat,lon\nA,48.85,east\n", encoding="utf-8")
    refused = fashionrec("shops", "import", bad, home=home)
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"error: {bad}:2: lat/lon are not numbers"


def test_items_update_and_delete_from_the_command_line(tmp_path: Path) -> None:
    """A sold-out item leaves the lists; a deleted one leaves the catalog, and a shopper who
    bought it still gets recommendations from the rest of their purchases."""
    home = tmp_path / "home"
    home_with_items(home)
    assert fashionrec("simulate", "--users", "3", "--max-purchases", "3", home=home).returncode == 0
    item = "WOMEN-Dresses-id_00000001-01_1_front"
    before = fashionrec("recommend", "--item", item, "-k", "2", "--csv", home=home).stdout
    top = before.splitlines()[1].split(",")[2]
    done = fashionrec("items", "update", top, "--out-of-stock", "--price", "12.5", home=home)
    assert done.returncode == 0 and '"in_stock": false' in done.stdout and "12.5" in done.stdout
    after = fashionrec("recommend", "--item", item, "-k", "2", "--csv", home=home).stdout
    assert top not in after
    anyway = fashionrec("recommend", "--item", item, "-k", "2", "--csv", "--any-stock", home=home)
    assert top in anyway.stdout
    log = EventLog(home / "events.sqlite")
    bought = [p.item_id for p in log.purchases("sim-00001")]
    log.close()
    assert fashionrec("items", "delete", bought[0], home=home).returncode == 0
    left = fashionrec("recommend", "--user", "sim-00001", "--json", home=home)
    if len(set(bought)) > 1:
        assert left.returncode == 0, left.stderr
    else:
        assert "no longer in the catalog" in left.stderr
    for args, said in (
        (("items", "delete", "nope"), "unknown item 'nope'; nothing deleted"),
        (("items", "update", item), "nothing to change"),
        (("items", "update", item, "--url", "ftp://x"), "url must start with http"),
    ):
        refused = fashionrec(*args, home=home)
        assert refused.returncode == 1 and said in refused.stderr, args


def test_tables_name_items_and_an_empty_result_says_so(tmp_path: Path) -> None:
    """Where the catalog names and prices its items, recommend, popularity top and users
    show print them (a deleted purchase says so); filters nothing passes print one line."""
    from dataclasses import replace

    from engine.settings import STORE_DIR
    from engine.vectorstore.edge import EdgeStore
    from tests.builders import catalog_items, store_items

    home = tmp_path / "home"
    items = [
        replace(item, name=f"Linen piece {n}", price=10.0 + n)
        for n, item in enumerate(catalog_items(1))
    ]
    store = EdgeStore(home / STORE_DIR)
    store_items(store, items)
    store.close()
    first, second = items[0].item_id, items[3].item_id
    sales = tmp_path / "sales.csv"
    sales.write_text(
        f"user_id,item_id,timestamp\nann,{first},2025-05-01T10:00Z\nann,{second},2025-05-02T10:00Z\n",
        encoding="utf-8",
    )
    assert fashionrec("purchases", "import", sales, home=home).returncode == 0
    assert fashionrec("items", "delete", first, home=home).returncode == 0

    listed = fashionrec("recommend", "--user", "ann", "-k", "3", home=home)
    assert listed.returncode == 0, listed.stderr
    assert "Linen piece" in listed.stdout and "price" in listed.stdout
    top = fashionrec("popularity", "top", "-n", "3", home=home).stdout
    assert "Linen piece 3" in top and "13.00" in top
    shown = fashionrec("users", "show", "ann", home=home).stdout
    assert "Linen piece 3" in shown and "no longer in the catalog" in shown
    assert (
        json.loads(fashionrec("users", "show", "ann", "--json", home=home).stdout)["purchases"][0][
            "in_catalog"
        ]
        is False
    )

    empty = fashionrec("recommend", "--item", second, "--max-price", "0.5", home=home)
    assert empty.returncode == 0
    assert "nothing matches --max-price 0.5" in empty.stdout and "┃" not in empty.stdout
