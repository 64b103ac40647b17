"""A retailer's own catalog: manifests as spreadsheets write them, its categories and genders
end to end (ingest, simulate, recommend in the client and in Qdrant), and the real shared
catalog stored whole."""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.catalog.items import Item, Naming, Problem
from engine.catalog.manifest import read_manifest
from engine.catalog.sources import open_catalog
from engine.catalog.taxonomy import Taxonomy, built_in, load
from engine.errors import CatalogError
from engine.evaluate.metrics import Pair, accuracy
from engine.recommend.recommender import Params, Recommender
from engine.recommend.scoring import Weights
from engine.shoppers.simulation import CatalogView, SimulationConfig, simulate
from engine.vectorstore.base import VectorStore
from engine.vectorstore.edge import EdgeStore
from engine.vocabulary.geo import DEFAULT_REGION
from engine.vocabulary.schema import CATEGORY, CATEGORY_GROUP, GENDER
from ingest.options import IngestOptions
from ingest.pipeline import ingest
from tests.builders import FAKE, FakeEmbedder, build_catalog, buy, fashionrec, shopper

SHARED = Path(__file__).parents[2] / "shared" / "data" / "fashion-products"
HEADER = "path,gender,category,product_id"


def _photo(path: Path, colour: tuple[int, int, int] = (200, 40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (60, 80), colour).save(path)
    return path


# --- manifests as retailers write them -----------------------------------------------------


def test_excel_csv_with_a_byte_order_mark_and_semicolons(tmp_path: Path) -> None:
    _photo(tmp_path / "images/25930.jpg")
    manifest = tmp_path / "catalog.csv"
    text = "path;gender;category;product_id\nimages/25930.jpg;Men;T-Shirt;25930\n"
    manifest.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    (item,) = list(read_manifest(manifest))
    assert isinstance(item, Item)
    assert (item.item_id, item.gender, item.category) == ("25930", "MEN", "Tshirts")


def test_tab_separated_and_a_missing_column_lists_what_was_found(tmp_path: Path) -> None:
    manifest = tmp_path / "catalog.tsv"
    manifest.write_text("path\tgender\tkind\tproduct_id\nx.jpg\tMen\tJeans\t1\n")
    with pytest.raises(CatalogError, match=r"missing column\(s\) category; .* found path,gender"):
        list(read_manifest(manifest))


def test_item_ids_are_stems_unless_two_files_share_one(tmp_path: Path) -> None:
    manifest = tmp_path / "catalog.csv"
    manifest.write_text(
        f"{HEADER}\nshirts/1.jpg,Men,Shirts,P1\ntees/1.jpg,Men,Tshirts,P2\nbags/7.png,Women,"
        "Handbags,P3\n"
    )
    ids = [e.item_id for e in read_manifest(manifest) if isinstance(e, Item)]
    assert ids == ["shirts/1", "tees/1", "7"]
    # a repeated row is the same file: its stem stays the id, the repeat a duplicate
    manifest.write_text(f"{HEADER}\nimages/47.jpg,Men,Shirts,P1\nimages/47.jpg,Men,Shirts,P1\n")
    entries = list(read_manifest(manifest))
    assert [e.item_id for e in entries if isinstance(e, Item)] == ["47"]
    assert [e.reason for e in entries if isinstance(e, Problem)] == ["duplicate item_id '47'"]


def test_paths_outside_the_folder_need_root_and_symlinks_inside_are_followed(
    tmp_path: Path,
) -> None:
    elsewhere = _photo(tmp_path / "elsewhere/photo.jpg")
    folder = tmp_path / "catalog"
    folder.mkdir()
    os.symlink(elsewhere.parent, folder / "linked")  # the owner's own link
    manifest = folder / "catalog.csv"
    manifest.write_text(
        f"{HEADER}\nlinked/photo.jpg,Men,Shirts,P1\n../elsewhere/photo.jpg,Men,Shirts,P2\n"
        f"{elsewhere},Men,Shirts,P3\n"
    )
    entries = list(read_manifest(manifest))
    assert isinstance(entries[0], Item) and entries[0].image.resolve() == elsewhere.resolve()
    assert isinstance(entries[1], Problem) and "leaves the catalog folder" in entries[1].reason
    assert isinstance(entries[2], Problem) and "absolute path" in entries[2].reason
    allowed = list(read_manifest(manifest, root=tmp_path / "elsewhere"))
    assert [type(e) for e in allowed] == [Item, Item, Item]


# --- the CLI: checked before any CNN, and an honest outcome --------------------------------


def _shop_catalog(folder: Path, rows: list[str]) -> Path:
    for number in range(len(rows)):
        _photo(folder / f"images/{number}.jpg", (40 * number % 255, 90, 160))
    manifest = folder / "catalog.csv"
    manifest.write_text("\n".join([f"{HEADER},store_id", *rows]) + "\n")
    return manifest


def test_unknown_store_ids_and_categories_stop_before_anything_is_written(tmp_path: Path) -> None:
    manifest = _shop_catalog(
        tmp_path / "catalog", ["images/0.jpg,Men,Shirts,P0,P09", "images/1.jpg,Men,Robes,P1,"]
    )
    home = tmp_path / "home"
    stores = fashionrec("ingest", manifest, "--weights", "random", home=home)
    assert stores.returncode == 1
    assert "shop id(s) P09 name no known shop; import the shops first" in stores.stderr
    assert not (home / "store").exists()
    manifest.write_text(f"{HEADER}\nimages/0.jpg,Men,Shirts,P0\nimages/1.jpg,Men,Robes,P1\n")
    failed = fashionrec(
        "ingest", manifest, "--weights", "random", "--unknown-category", "fail", home=home
    )
    assert failed.returncode == 1
    assert f"{manifest}:3: unknown category 'Robes' (taxonomy retail)" in failed.stderr
    assert not (home / "store").exists()


def test_new_categories_are_kept_listed_and_recorded(tmp_path: Path) -> None:
    manifest = tmp_path / "catalog.csv"
    for number in range(3):
        _photo(tmp_path / f"images/{number}.jpg")
    manifest.write_text(
        f"{HEADER}\nimages/0.jpg,Men,Robes,P0\nimages/1.jpg,Men,robes,P1\n"
        "images/2.jpg,Unisex,Sunglasses,P2\n"
    )
    home = tmp_path / "home"
    args = ("--weights", "random", "--workers", "0", "--device", "cpu", "--runtime", "torch")
    result = fashionrec("ingest", manifest, *args, home=home)
    assert result.returncode == 0, result.stderr
    assert "ingested 3" in result.stdout
    assert "new categories (not in taxonomy retail; each a group of its own): Robes 2" in (
        result.stdout
    )
    shown = fashionrec("taxonomy", "show", home=home)
    recorded = Taxonomy.parse(shown.stdout, "shown")
    assert recorded.group_of("Robes") == "Robes" and recorded.category("ROBES") == "Robes"
    assert recorded.group_of("Sunglasses") == "eyewear"


# --- genders: who is shown what ------------------------------------------------------------


def test_simulated_shoppers_have_a_personal_gender_and_buy_what_they_are_shown() -> None:
    genders = ["UNISEX"] * 12 + ["MEN"] * 6 + ["WOMEN"] * 6 + ["BOYS"] * 6
    view = CatalogView.build(
        [f"i{n:03d}" for n in range(len(genders))],
        [f"p{n:03d}" for n in range(len(genders))],
        genders,
        [""] * len(genders),
    )
    shown = built_in("retail").genders
    config = SimulationConfig(users=60, max_purchases=4, seed=3)
    result = simulate(
        view, np.zeros(len(genders), dtype=np.int64), DEFAULT_REGION, config, 1, shown
    )
    gender_of = dict(zip(view.item_ids.tolist(), view.genders.tolist(), strict=True))
    users = {u.id: u.gender for u in result.users}
    assert "UNISEX" not in users.values() and {"MEN", "WOMEN", "BOYS"} <= set(users.values())
    for purchase in result.purchases:
        assert gender_of[purchase.item_id] in shown[users[purchase.user_id]]


def test_gender_alignment_counts_what_the_user_is_shown() -> None:
    men = frozenset({"MEN", "UNISEX"})
    pairs = [
        Pair("MEN", 0.5, "Shirts", "a", "Shirts", "UNISEX", 0.5, 1.0, men),
        Pair("MEN", 0.5, "Shirts", "b", "Shirts", "WOMEN", 0.5, 1.0, men),
    ]
    assert accuracy(pairs).gender_alignment == 50.0


# --- recommendations under a custom taxonomy -----------------------------------------------


@pytest.mark.parametrize("backend", ["edge", "memory"])
def test_the_formula_in_qdrant_follows_a_custom_taxonomy(
    store: VectorStore, tmp_path: Path, backend: str
) -> None:
    """Regroup DeepFashion's categories: the client rerank and the formula inside Qdrant
    agree item for item, and both use the new CatSim values."""
    payloads = build_catalog(store)
    path = tmp_path / "custom.toml"
    path.write_text(
        'extends = "deepfashion"\nsame_group = 0.6\n[groups]\nwarm = ["Sweaters", "Denim"]\n'
        "[cross]\nwarm = { A = 0.9 }\n"
    )
    taxonomy = load(path)
    assert taxonomy("Sweaters", "Denim") == 0.6 and taxonomy("Tees_Tanks", "Denim") == 0.9
    engine = Recommender(store, taxonomy)
    weights = Weights(visual=0.4, popularity=0.2, category=0.4)
    for gender in ("MEN", "WOMEN"):
        bought = [p["item_id"] for p in payloads if p["gender"] == gender][::7][:3]
        user, purchases = shopper(gender, 0.3), buy(bought)
        client = engine.for_user(user, purchases, Params(k=8, weights=weights))
        server = engine.for_user(user, purchases, Params(k=8, weights=weights, rerank="server"))
        for (_, a), (_, b) in zip(client.per_purchase, server.per_purchase, strict=True):
            assert [r.item_id for r in a] == [r.item_id for r in b]
            np.testing.assert_allclose([r.relevance for r in a], [r.relevance for r in b], 1e-4)
            for r in a:
                query = next(p["category"] for p in payloads if p["item_id"] == r.query_item)
                assert r.category_sim == taxonomy(query, r.category)


# --- the real shared catalog ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared real catalog is not on this machine")
def test_the_real_catalog_is_stored_whole_and_recommends_within_genders(tmp_path: Path) -> None:
    with (SHARED / "labels.csv").open(encoding="utf-8") as handle:
        labels = list(csv.DictReader(handle))
    manifest = tmp_path / "catalog.csv"
    with manifest.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER.split(","))
        for row in labels:
            path = SHARED / "images" / row["filename"]
            writer.writerow([path, row["gender"], row["articleType"], row["id"]])
    catalog = open_catalog(manifest, root=SHARED)
    assert catalog.naming == Naming(built_in("retail"), "accept")
    store = EdgeStore(tmp_path / "store")
    try:
        options = IngestOptions(batch_size=64, workers=2)  # small photos: decoded here
        summary = ingest(
            catalog, store, {FAKE: FakeEmbedder()}, options, taxonomy=built_in("retail")
        )
        assert (summary.ingested, summary.failed, summary.unparsed) == (len(labels), 0, 0)
        assert store.count() == len(labels)
        assert set(store.facet(GENDER)) == {"MEN", "WOMEN", "UNISEX", "BOYS", "GIRLS"}
        assert len(store.facet(CATEGORY)) == 44
        assert store.facet(CATEGORY_GROUP)["footwear"] == sum(
            r["masterCategory"] == "Footwear" for r in labels
        )
        engine = Recommender(store, built_in("retail"))
        seen: Counter[str] = Counter()
        for row in labels[::400]:
            recs = engine.for_item(row["id"], Params(space=FAKE, k=10))
            gender = built_in("retail").gender(row["gender"])
            assert gender is not None and len(recs) == 10
            assert {r.gender for r in recs} <= built_in("retail").shown_to(gender)
            seen.update(r.gender for r in recs)
        assert seen["UNISEX"] > 0  # men and women are shown unisex items too
    finally:
        store.close()
