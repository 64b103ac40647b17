"""Catalog sources: DF-MM names, In-shop trees, manifests, and names that do not parse."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from engine.catalog.deepfashion import inshop_item_id, parse_dfmm_stem
from engine.catalog.items import Item, Naming, Problem
from engine.catalog.manifest import read_manifest
from engine.catalog.sources import open_catalog
from engine.catalog.taxonomy import built_in
from engine.errors import CatalogError


def test_dfmm_name_fields() -> None:
    parsed = parse_dfmm_stem("WOMEN-Dresses-id_00000021-05_1_front")
    assert (parsed.gender, parsed.category, parsed.product_id, parsed.view) == (
        "WOMEN",
        "Dresses",
        "id_00000021-05",
        "front",
    )
    assert parse_dfmm_stem("MEN-Jackets_Vests-id_00007310-01_7_additional").view == "additional"


@pytest.mark.parametrize(
    ("stem", "reason"),
    [
        ("KIDS-Dresses-id_00000021-05_1_front", "is not GENDER-Category"),
        ("WOMEN-Dresses-id_0000021-05_1_front", "is not GENDER-Category"),
        ("WOMEN-Dresses-id_00000021_1_front", "is not GENDER-Category"),
        ("photo", "is not GENDER-Category"),
    ],
)
def test_dfmm_bad_names(stem: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_dfmm_stem(stem)


def test_inshop_id_is_the_dfmm_id() -> None:
    path = PurePosixPath("img/WOMEN/Dresses/id_00000021/05_1_front.jpg")
    assert inshop_item_id(path) == "WOMEN-Dresses-id_00000021-05_1_front"
    assert inshop_item_id(PurePosixPath("MEN/Denim/id_00000080/01_2_side.jpg")) == (
        "MEN-Denim-id_00000080-01_2_side"
    )
    with pytest.raises(ValueError, match="not id_XXXXXXXX"):
        inshop_item_id(PurePosixPath("img/WOMEN/Dresses/x/05_1_front.jpg"))


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_dfmm_folder_with_masks_and_bad_names(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "segm"
    _touch(images / "WOMEN-Dresses-id_00000021-05_1_front.jpg")
    _touch(images / "MEN-Denim-id_00000080-01_2_side.jpg")
    _touch(images / "holiday.jpg")
    _touch(images / "notes.txt")  # not an image: ignored silently
    _touch(masks / "WOMEN-Dresses-id_00000021-05_1_front_segm.png")
    catalog = open_catalog(images)
    assert catalog.kind == "dfmm"
    assert catalog.masks == masks  # the sibling segm/ folder is found
    entries = list(catalog)
    items = {e.item_id: e for e in entries if isinstance(e, Item)}
    problems = [e for e in entries if isinstance(e, Problem)]
    assert set(items) == {"WOMEN-Dresses-id_00000021-05_1_front", "MEN-Denim-id_00000080-01_2_side"}
    assert items["WOMEN-Dresses-id_00000021-05_1_front"].mask == (
        masks / "WOMEN-Dresses-id_00000021-05_1_front_segm.png"
    )
    assert items["MEN-Denim-id_00000080-01_2_side"].mask is None
    assert items["MEN-Denim-id_00000080-01_2_side"].product_id == "id_00000080-01"
    assert [p.where.endswith("holiday.jpg") for p in problems] == [True]


def test_inshop_tree(tmp_path: Path) -> None:
    _touch(tmp_path / "img/WOMEN/Dresses/id_00000021/05_1_front.jpg")
    _touch(tmp_path / "img/WOMEN/Dresses/id_00000021/05_2_side.jpg")
    _touch(tmp_path / "img/MEN/Suiting/id_00000100/02_4_full.jpg")
    _touch(tmp_path / "img/MEN/Suiting/id_00000100/cover.jpg")
    catalog = open_catalog(tmp_path)
    assert catalog.kind == "inshop"
    entries = list(catalog)
    items = [e for e in entries if isinstance(e, Item)]
    assert [i.item_id for i in items] == [
        "MEN-Suiting-id_00000100-02_4_full",
        "WOMEN-Dresses-id_00000021-05_1_front",
        "WOMEN-Dresses-id_00000021-05_2_side",
    ]
    assert {i.product_id for i in items} == {"id_00000100-02", "id_00000021-05"}
    assert [type(e) for e in entries].count(Problem) == 1


def test_manifest_rows(tmp_path: Path) -> None:
    _touch(tmp_path / "photos/a.jpg")
    _touch(tmp_path / "photos/b.jpg")
    _touch(tmp_path / "masks/a.png")
    manifest = tmp_path / "catalog.csv"
    manifest.write_text(
        "path,gender,category,product_id,item_id,mask_path,store_id\n"
        "photos/a.jpg,women,dresses,P1,,masks/a.png,S2\n"
        "photos/b.jpg,MEN,Suiting,P2,b-front,,\n"
        "photos/c.jpg,MEN,Spacesuits,P3,,,\n"
        "../outside.jpg,MEN,Denim,P4,,,\n"
        "/etc/passwd,MEN,Denim,P5,,,\n"
        "photos/b.jpg,MEN,Suiting,P2,b-front,,\n"
        "photos/a.jpg,MEN\n",
        encoding="utf-8",
    )
    entries = list(read_manifest(manifest, Naming(built_in("retail"), "skip")))
    items = [e for e in entries if isinstance(e, Item)]
    problems = {e.where.rsplit(":", 1)[1]: e.reason for e in entries if isinstance(e, Problem)}
    assert items[0] == Item(
        item_id="a",  # the file's stem: no other row has it
        product_id="P1",
        gender="WOMEN",
        category="Dresses",
        view="",
        image=tmp_path / "photos/a.jpg",
        mask=tmp_path / "masks/a.png",
        store_id="S2",
    )
    assert items[1].item_id == "b-front" and items[1].mask is None and items[1].store_id is None
    assert len(items) == 2
    assert "unknown category 'Spacesuits'" in problems["4"]
    assert "leaves the catalog folder" in problems["5"]
    assert "absolute path" in problems["6"]
    assert "duplicate item_id 'b-front'" in problems["7"]
    assert "wrong number of fields" in problems["8"]


def test_manifest_missing_columns(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,gender\nx.jpg,MEN\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"m.csv: missing column\(s\) category, product_id"):
        list(read_manifest(manifest))


def test_manifest_not_utf8(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"path,gender,category,product_id\nph\xe9oto.jpg,MEN,Denim,P\n")
    with pytest.raises(CatalogError, match="not UTF-8"):
        list(read_manifest(manifest))


def test_missing_catalog(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no such file or folder"):
        open_catalog(tmp_path / "nowhere")


def test_a_manifests_other_columns_are_kept_as_attributes(tmp_path: Path) -> None:
    from ingest.pipeline import item_payload

    _touch(tmp_path / "a.jpg")
    _touch(tmp_path / "b.jpg")
    manifest = tmp_path / "catalog.csv"
    manifest.write_text(
        "path,gender,category,product_id,baseColour,season,usage\n"
        "a.jpg,Women,Dresses,P1,Navy Blue,Summer,Casual\n"
        "b.jpg,Men,Denim,P2,, ,Formal\n",
        encoding="utf-8",
    )
    a, b = list(read_manifest(manifest, Naming(built_in("retail"), "accept")))
    assert isinstance(a, Item) and isinstance(b, Item)
    assert a.attributes == (("baseColour", "Navy Blue"), ("season", "Summer"), ("usage", "Casual"))
    assert b.attributes == (("usage", "Formal"),)  # empty cells are left out
    assert item_payload(a, False)["attributes"] == {
        "baseColour": "Navy Blue",
        "season": "Summer",
        "usage": "Casual",
    }
    assert "attributes" not in item_payload(Item("c", "P3", "MEN", "Denim", "", tmp_path), False)
    from engine.catalog.sources import Catalog, survey

    found = survey(Catalog("manifest", manifest, naming=Naming(built_in("retail"), "accept")))
    assert found.attributes == {"baseColour": 1, "season": 1, "usage": 2}  # listed at ingest


def test_a_manifest_names_prices_links_and_stocks_its_items(tmp_path: Path) -> None:
    from ingest.pipeline import item_payload

    for name in ("a", "b", "c", "d"):
        _touch(tmp_path / f"{name}.jpg")
    manifest = tmp_path / "catalog.csv"
    manifest.write_text(
        "path,gender,category,product_id,name,price,url,in_stock\n"
        "a.jpg,Women,Dresses,P1,Red dress,19.99,https://x.example/p1,yes\n"
        "b.jpg,Women,Dresses,P2,,,,false\n"
        "c.jpg,Women,Dresses,P3,,cheap,,\n"
        "d.jpg,Women,Dresses,P4,,,,maybe\n",
        encoding="utf-8",
    )
    entries = list(read_manifest(manifest, Naming(built_in("retail"), "accept")))
    a, b = (e for e in entries if isinstance(e, Item))
    assert (a.name, a.price, a.url, a.in_stock) == (
        "Red dress",
        19.99,
        "https://x.example/p1",
        True,
    )
    assert (b.name, b.price, b.in_stock, b.attributes) == (None, None, False, ())
    payload = item_payload(b, False)
    assert (payload["in_stock"], payload["stock"]) == (False, "out")
    problems = [e.reason for e in entries if isinstance(e, Problem)]
    assert problems == [
        "price 'cheap' is not a number (use 19.99)",
        "in_stock 'maybe' is not true or false",
    ]
