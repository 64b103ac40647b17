"""Known-answer tests of the synthetic DeepFashion-MultiModal-style demo catalog."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from engine.catalog.categories import CATEGORIES, CATEGORIES_BY_GENDER
from engine.catalog.masks import LEGEND
from ingest.democatalog import _BASE, VIEWS, DemoCatalog, write_demo_catalog

DFMM = re.compile(r"^(WOMEN|MEN)-(.+?)-(id_\d{8})-(\d{2})_(\d+)_(\w+)$")
SMALL = (150, 220)
INDEX = {label: i for i, label in enumerate(LEGEND)}
BODY = {"background", "hair", "face", "skin"}
BACKGROUND = np.array([232, 232, 228])
# The mask label of each category's own garment.
MAIN = {
    "Tees_Tanks": "top", "Graphic_Tees": "top", "Blouses_Shirts": "top", "Shirts_Polos": "top",
    "Sweaters": "top", "Sweatshirts_Hoodies": "top", "Cardigans": "outer",
    "Jackets_Coats": "outer", "Jackets_Vests": "outer", "Suiting": "outer", "Dresses": "dress",
    "Skirts": "skirt", "Rompers_Jumpsuits": "rompers", "Pants": "pants", "Denim": "pants",
    "Shorts": "pants", "Leggings": "leggings",
}  # fmt: skip


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> DemoCatalog:
    root = tmp_path_factory.mktemp("demo")
    return write_demo_catalog(root, products_per_category=1, size=SMALL)


def _mask_of(catalog: DemoCatalog, image: Path) -> Path:
    return catalog.masks / f"{image.stem}_segm.png"


def _inner(region: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The region less its one-pixel border, where JPEG blurs colours across edges."""
    inner = region.copy()
    inner[1:] &= region[:-1]
    inner[:-1] &= region[1:]
    inner[:, 1:] &= region[:, :-1]
    inner[:, :-1] &= region[:, 1:]
    return inner


def test_counts(catalog: DemoCatalog) -> None:
    pairs = sum(len(cs) for cs in CATEGORIES_BY_GENDER.values())
    assert pairs == 23
    assert catalog.count == pairs * len(VIEWS) == 69
    assert len(list(catalog.images.glob("*.jpg"))) == 69
    assert len(list(catalog.masks.glob("*_segm.png"))) == 69
    assert catalog.images.name == "images" and catalog.masks.name == "segm"


def test_names_follow_dfmm(catalog: DemoCatalog) -> None:
    parsed = [DFMM.match(p.stem) for p in sorted(catalog.images.glob("*.jpg"))]
    assert all(parsed)
    groups = [m.groups() for m in parsed if m]
    assert {g[0] for g in groups} == {"MEN", "WOMEN"}
    assert {g[1] for g in groups} == set(CATEGORIES)
    assert len(CATEGORIES) == 17
    assert all(g[1] in CATEGORIES_BY_GENDER[g[0]] for g in groups)
    assert {f"{g[4]}_{g[5]}" for g in groups} == set(VIEWS)
    ids = {g[2] for g in groups}
    assert len(ids) == 23  # one product per gender and category, numbered apart
    assert (catalog.images / "MEN-Denim-id_00000001-01_1_front.jpg").is_file()


def test_masks_match_images_and_legend(catalog: DemoCatalog) -> None:
    legend = set(LEGEND.values())
    for path in catalog.images.glob("*.jpg"):
        with Image.open(path) as image, Image.open(_mask_of(catalog, path)) as mask:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert mask.mode == "P" and mask.size == image.size == SMALL
            rgb = np.asarray(mask.convert("RGB")).astype(np.int32)
            packed = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2])
            assert {(int(c) >> 16, int(c) >> 8 & 255, int(c) & 255) for c in packed} <= legend
            present = {list(LEGEND)[int(i)] for i in np.unique(np.asarray(mask))}
        category = DFMM.match(path.stem).group(2)  # type: ignore[union-attr]
        body = BODY - {"face"} if path.stem.endswith("back") else BODY
        assert body <= present, path.name
        assert present - BODY, path.name  # some garment
        assert {MAIN[category], "footwear"} <= present, path.name
        assert ("face" in present) != path.stem.endswith("back"), path.name


def test_front_pixels_are_drawn_where_the_mask_says(catalog: DemoCatalog) -> None:
    for path in catalog.images.glob("*_1_front.jpg"):
        category = DFMM.match(path.stem).group(2)  # type: ignore[union-attr]
        pixels = np.asarray(Image.open(path), dtype=np.float64)
        labels = np.asarray(Image.open(_mask_of(catalog, path)))
        garment = _inner(labels == INDEX[MAIN[category]])
        background = _inner(labels == INDEX["background"])
        assert garment.sum() > 1000, path.name
        base = np.array(_BASE[category])
        assert np.linalg.norm(pixels[garment].mean(axis=0) - base) < 40, path.name
        assert np.median(np.linalg.norm(pixels[garment] - base, axis=1)) < 40, path.name
        assert np.abs(pixels[background] - BACKGROUND).mean() < 4, path.name
        assert pixels[background].min() > 180, path.name  # light, JPEG ringing aside


def test_views_differ_but_share_the_garment_colour(catalog: DemoCatalog) -> None:
    stem = "WOMEN-Dresses-id_00000013-01"
    views = [np.asarray(Image.open(catalog.images / f"{stem}_{v}.jpg")) for v in VIEWS]
    masks = [np.asarray(Image.open(catalog.masks / f"{stem}_{v}_segm.png")) for v in VIEWS]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not np.array_equal(views[a], views[b])
            assert not np.array_equal(masks[a], masks[b])
    means = [v[_inner(m == INDEX["dress"])].mean(axis=0) for v, m in zip(views, masks, strict=True)]
    assert all(np.linalg.norm(mean - means[0]) < 6 for mean in means)


def _contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.*"))}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_demo_catalog(tmp_path / name, products_per_category=1, size=SMALL, seed=seed)
    a, b, c = (_contents(tmp_path / name) for name in "abc")
    assert len(a) == 2 * 69 and a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith(".jpg"))


def test_default_size_and_several_products(tmp_path: Path) -> None:
    catalog = write_demo_catalog(tmp_path, products_per_category=3, views=("1_front",))
    assert catalog.count == 69
    with Image.open(catalog.images / "WOMEN-Dresses-id_00000039-03_1_front.jpg") as image:
        assert image.size == (750, 1101)
    ids = {DFMM.match(p.stem).group(3) for p in catalog.images.glob("*.jpg")}  # type: ignore[union-attr]
    assert len(ids) == 69


@pytest.mark.parametrize("views", [("front",), ("1_front", "1_front"), ("1 front",)])
def test_rejects_views_that_are_not_dfmm_names(tmp_path: Path, views: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="views"):
        write_demo_catalog(tmp_path, views=views, size=SMALL)
