"""Bad input, each with the message it must give; property-based tests of the parsers."""

from __future__ import annotations

import csv
import re
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.catalog.deepfashion import inshop_item_id, parse_dfmm_stem
from engine.catalog.items import Item, Problem
from engine.catalog.manifest import read_manifest
from engine.catalog.sources import open_catalog
from engine.errors import CatalogError, FashionrecError
from engine.shoppers.purchaselog import read_rows
from engine.shoppers.purchases import parse_timestamp
from engine.vectorstore.base import VectorStore
from ingest.democatalog import DemoCatalog
from ingest.options import IngestOptions
from ingest.pipeline import ingest
from ingest.report import Failure
from tests.builders import FAKE, FakeEmbedder, copy_catalog


def _failures(catalog: DemoCatalog, store: VectorStore) -> dict[str, str]:
    """Ingest with the fake embedder; the reason of each failure, by file name."""
    failures: list[Failure] = []
    options = IngestOptions(workers=0)
    embedders = {FAKE: FakeEmbedder()}
    ingest(open_catalog(catalog.images), store, embedders, options, on_failure=failures.append)
    return {Path(f.where).name: f.reason for f in failures}


def test_broken_images_are_reported_one_by_one(
    small_catalog: DemoCatalog, store: VectorStore, tmp_path: Path
) -> None:
    part = copy_catalog(small_catalog, tmp_path / "part", limit=6)
    a, b, c, d, e, _ = sorted(part.images.iterdir())
    a.write_bytes(a.read_bytes()[: len(a.read_bytes()) // 3])  # truncated JPEG
    b.write_bytes(b"")  # zero bytes
    c.write_text("this is not a photo")  # a text file named .jpg
    mask = part.masks / f"{d.stem}_segm.png"
    photo = Image.open(d).convert("RGB")
    photo.save(mask)  # a photo where the mask should be: colours outside the legend
    small = part.masks / f"{e.stem}_segm.png"
    Image.open(small).resize((30, 44), Image.Resampling.NEAREST).save(small)  # other size: fine
    reasons = _failures(part, store)
    assert "image file is truncated" in reasons[a.name] or "broken data stream" in reasons[a.name]
    assert reasons[b.name] == "not an image this tool can read (JPEG, PNG, WebP, …)"
    assert reasons[c.name] == reasons[b.name]  # in plain words, never an exception's name
    assert "colours outside the DF-MM legend" in reasons[d.name]
    assert e.name not in reasons and store.count() == 2


def test_decompression_bomb_is_refused(
    small_catalog: DemoCatalog, store: VectorStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = copy_catalog(small_catalog, tmp_path / "part", limit=1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 150×220 photos are now "bombs"
    reasons = _failures(part, store)
    assert next(iter(reasons.values())).startswith("Image size (33000 pixels)")
    assert store.count() == 0


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("path,gender,category\n", r"missing column\(s\) product_id"),
        ("path,gender,category,product_id\nx.jpg,MEN,,P\n", "empty category"),
        ("path,gender,category,product_id\nx.jpg,KIDS,Denim,P\n", "unknown gender 'KIDS'"),
        ("path,gender,category,product_id\n../x.jpg,MEN,Denim,P\n", "leaves the catalog folder"),
        ("path,gender,category,product_id\n/etc/x.jpg,MEN,Denim,P\n", "absolute path"),
        ("path,gender,category,product_id\nx.jpg,MEN\n", "wrong number of fields"),
        ("path,gender,category,product_id\nx.jpg,MEN,Denim,\n", "empty product_id"),
    ],
)
def test_manifest_messages(tmp_path: Path, rows: str, message: str) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(rows, encoding="utf-8")
    try:
        problems = [e.reason for e in read_manifest(manifest) if isinstance(e, Problem)]
    except CatalogError as exc:
        problems = [str(exc)]
    assert len(problems) == 1 and re.search(message, problems[0])


def test_purchase_log_not_utf8(tmp_path: Path) -> None:
    log = tmp_path / "p.csv"
    log.write_bytes(b"user_id,item_id,timestamp\nu\xff,i,2025-01-01\n")
    with pytest.raises(FashionrecError, match=r"not UTF-8 text.*nothing recorded"):
        read_rows(log)


# --- properties -------------------------------------------------------------------------

names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(names)
def test_dfmm_parser_never_crashes(stem: str) -> None:
    try:
        parsed = parse_dfmm_stem(stem)
    except ValueError as exc:
        assert str(exc)  # a reason, never an empty message
    else:
        assert stem.startswith(parsed.gender + "-" + parsed.category + "-")
        assert parsed.product_id.startswith("id_")


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["MEN", "WOMEN"]),
    st.sampled_from(["Denim", "Dresses", "Tees_Tanks", "Jackets_Vests"]),
    st.integers(0, 99_999_999),
    st.integers(0, 99),
    st.integers(1, 9),
    st.sampled_from(["front", "side", "back", "full", "flat", "additional"]),
)
def test_dfmm_and_inshop_names_agree(
    gender: str, category: str, product: int, colour: int, view: int, name: str
) -> None:
    stem = f"{gender}-{category}-id_{product:08d}-{colour:02d}_{view}_{name}"
    parsed = parse_dfmm_stem(stem)
    assert (parsed.gender, parsed.category, parsed.view) == (gender, category, name)
    assert parsed.product_id == f"id_{product:08d}-{colour:02d}"
    tree = PurePosixPath(f"img/{gender}/{category}/id_{product:08d}/{colour:02d}_{view}_{name}.jpg")
    assert inshop_item_id(tree) == stem


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(names, min_size=0, max_size=6), max_size=8))
def test_manifest_reader_reports_or_accepts_every_row(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]]
) -> None:
    folder = tmp_path_factory.mktemp("m")
    manifest = folder / "m.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "gender", "category", "product_id"])
        writer.writerows(rows)
    entries = list(read_manifest(manifest))
    for entry in entries:
        assert isinstance(entry, Item | Problem)
        if isinstance(entry, Problem):
            assert entry.reason and entry.where.startswith(str(manifest))
        else:
            assert entry.image.resolve().is_relative_to(folder.resolve())


@settings(max_examples=200, deadline=None)
@given(names)
def test_timestamps_parse_or_fail_cleanly(text: str) -> None:
    try:
        value = parse_timestamp(text)
    except ValueError:
        return
    assert value.tzinfo is not None and value.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


@pytest.mark.slow  # a subprocess that loads a CNN
def test_a_catalog_of_which_nothing_can_be_stored_leaves_nothing(tmp_path: Path) -> None:
    """Every row fails, for several reasons: each reason with its count and first row on
    screen, then one error line, exit 1, and no home left where there was none."""
    from tests.builders import fashionrec

    manifest = tmp_path / "catalog.csv"
    manifest.write_text(
        "path,gender,category,product_id\n/elsewhere/a.jpg,Men,Tshirts,1\n"
        "/elsewhere/b.jpg,Men,Tshirts,2\nmissing.jpg,Men,Tshirts,3\nc.jpg,Martian,Tshirts,4\n",
        encoding="utf-8",
    )
    home = tmp_path / "home"
    args = ("ingest", manifest, "--manifest", "--weights", "random", "--runtime", "torch")
    result = fashionrec(*args, home=home)
    assert result.returncode == 1, result.stdout
    said = " ".join(result.stdout.split())
    assert "4 item(s) not stored:" in said
    assert "bad path 2, the first: " in said and "catalog.csv:2: " in said
    assert "--root DIR" in said
    assert "missing photo 1, the first:" in said and "missing.jpg: no such file" in said
    assert "unknown gender 1 (Martian 1), the first: " in said and "catalog.csv:5: " in said
    assert "Error" not in said  # no exception's name
    line = result.stderr.strip().splitlines()[-1]  # after the random-weights warning
    assert line.startswith("error: no item of") and "(4 item(s);" in line
    assert "nothing was kept" in line and "Traceback" not in result.stderr
    assert not home.exists()
