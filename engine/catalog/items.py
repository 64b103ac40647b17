"""Catalog items and products, read from DF-MM folders, In-shop trees and manifests."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final, Literal

from engine.catalog.categories import canonical_category, canonical_gender
from engine.csvrows import csv_rows
from engine.errors import CatalogError

IMAGE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
MASK_SUFFIX: Final = "_segm.png"
MANIFEST_REQUIRED: Final = ("path", "gender", "category", "product_id")
MANIFEST_OPTIONAL: Final = ("item_id", "mask_path", "store_id")

_DFMM: Final = re.compile(
    r"^(?P<gender>WOMEN|MEN)-(?P<category>[A-Za-z_]+?)-(?P<product>id_\d{8})"
    r"-(?P<colour>\d{2})_(?P<view>\d+_[A-Za-z]+)$"
)
_INSHOP_FILE: Final = re.compile(r"^(?P<colour>\d{2})_(?P<view>\d+_[A-Za-z]+)$")
_PRODUCT_DIR: Final = re.compile(r"^id_\d{8}$")

CatalogKind = Literal["dfmm", "inshop", "manifest"]


@dataclass(frozen=True)
class Item:
    """One photo of one product: the unit that is embedded and stored."""

    item_id: str
    product_id: str
    gender: str
    category: str
    view: str
    image: Path
    mask: Path | None = None
    store_id: str | None = None


@dataclass(frozen=True)
class Problem:
    """An entry of the catalog that cannot be used, and why."""

    where: str
    reason: str


Entry = Item | Problem


@dataclass(frozen=True)
class ParsedName:
    """The fields encoded in a DF-MM name."""

    gender: str
    category: str
    product_id: str
    view: str


def parse_dfmm_stem(stem: str) -> ParsedName:
    """Parse `WOMEN-Dresses-id_00000021-05_1_front`; raise ValueError with the reason."""
    match = _DFMM.match(stem)
    if match is None:
        raise ValueError("name is not GENDER-Category-id_XXXXXXXX-NN_V_view")
    category = canonical_category(match["category"])
    if category is None or category != match["category"]:
        raise ValueError(f"unknown category {match['category']!r}")
    return ParsedName(
        gender=match["gender"],
        category=category,
        product_id=f"{match['product']}-{match['colour']}",
        view=match["view"].split("_", 1)[1],
    )


def inshop_item_id(relative: PurePosixPath) -> str:
    """Canonical (DF-MM style) id of `[img/]WOMEN/Dresses/id_00000021/05_1_front.jpg`."""
    parts = relative.parts[1:] if relative.parts[:1] == ("img",) else relative.parts
    if len(parts) != 4:
        raise ValueError("path is not [img/]GENDER/Category/id_XXXXXXXX/NN_V_view.jpg")
    gender, category, product, filename = parts
    stem = PurePosixPath(filename).stem
    if not _PRODUCT_DIR.match(product):
        raise ValueError(f"product folder {product!r} is not id_XXXXXXXX")
    if not _INSHOP_FILE.match(stem):
        raise ValueError(f"file name {filename!r} is not NN_V_view")
    return f"{gender}-{category}-{product}-{stem}"


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _mask_for(masks: Path | None, item_id: str) -> Path | None:
    if masks is None:
        return None
    candidate = masks / f"{item_id}{MASK_SUFFIX}"
    return candidate if candidate.is_file() else None


def _named_item(item_id: str, image: Path, masks: Path | None) -> Entry:
    try:
        parsed = parse_dfmm_stem(item_id)
    except ValueError as exc:
        return Problem(str(image), str(exc))
    return Item(
        item_id=item_id,
        product_id=parsed.product_id,
        gender=parsed.gender,
        category=parsed.category,
        view=parsed.view,
        image=image,
        mask=_mask_for(masks, item_id),
    )


def scan_dfmm(images: Path, masks: Path | None = None) -> Iterator[Entry]:
    """Items of a flat DF-MM folder, streamed in directory order."""
    with os.scandir(images) as entries:
        for entry in entries:
            if entry.is_file() and _is_image(entry.name):
                yield _named_item(os.path.splitext(entry.name)[0], Path(entry.path), masks)


def scan_inshop(root: Path, masks: Path | None = None) -> Iterator[Entry]:
    """Items of a DeepFashion In-shop tree (`img/GENDER/Category/id_X/NN_V_view.jpg`)."""
    base = root / "img" if (root / "img").is_dir() else root
    for folder, dirs, files in os.walk(base):
        dirs.sort()
        for name in sorted(files):
            if not _is_image(name):
                continue
            image = Path(folder) / name
            relative = PurePosixPath(image.relative_to(base).as_posix())
            try:
                item_id = inshop_item_id(relative)
            except ValueError as exc:
                yield Problem(str(image), str(exc))
                continue
            yield _named_item(item_id, image, masks)


def _inside(root: Path, relative: str) -> Path:
    if not relative:
        raise ValueError("empty path")
    if PurePosixPath(relative).is_absolute() or os.path.isabs(relative):
        raise ValueError(f"absolute path {relative!r}; paths are relative to the manifest")
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ValueError(f"path {relative!r} leaves the catalog folder")
    return resolved


def _manifest_item(row: dict[str, str], root: Path) -> Item:
    gender = canonical_gender(row["gender"] or "")
    if gender is None:
        raise ValueError(f"unknown gender {row['gender']!r} (use MEN or WOMEN)")
    category = canonical_category(row["category"] or "")
    if category is None:
        raise ValueError(f"unknown category {row['category']!r}")
    product_id = (row["product_id"] or "").strip()
    if not product_id:
        raise ValueError("empty product_id")
    path = (row["path"] or "").strip()
    image = _inside(root, path)
    item_id = (row.get("item_id") or "").strip() or PurePosixPath(path).with_suffix("").as_posix()
    mask_path = (row.get("mask_path") or "").strip()
    return Item(
        item_id=item_id,
        product_id=product_id,
        gender=gender,
        category=category,
        view=(row.get("view") or "").strip(),
        image=image,
        mask=_inside(root, mask_path) if mask_path else None,
        store_id=(row.get("store_id") or "").strip() or None,
    )


def read_manifest(manifest: Path) -> Iterator[Entry]:
    """Items of a manifest CSV (`path,gender,category,product_id[,item_id,mask_path,store_id]`).

    Paths are relative to the manifest's folder. Missing columns or a file that
    is not UTF-8 raise CatalogError; a bad row becomes a Problem naming the row.
    """
    root = manifest.parent
    seen: set[str] = set()
    for number, row in csv_rows(manifest, MANIFEST_REQUIRED, MANIFEST_OPTIONAL, CatalogError):
        where = f"{manifest}:{number}"
        if row is None:
            yield Problem(where, "wrong number of fields")
            continue
        try:
            item = _manifest_item(row, root)
        except ValueError as exc:
            yield Problem(where, str(exc))
            continue
        if item.item_id in seen:
            yield Problem(where, f"duplicate item_id {item.item_id!r}")
            continue
        seen.add(item.item_id)
        yield item


@dataclass(frozen=True)
class Catalog:
    """A catalog on disk: where it is and how to read it. Iterating streams its entries."""

    kind: CatalogKind
    path: Path
    masks: Path | None = None

    def __iter__(self) -> Iterator[Entry]:
        if self.kind == "manifest":
            return read_manifest(self.path)
        if self.kind == "inshop":
            return scan_inshop(self.path, self.masks)
        return scan_dfmm(self.path, self.masks)


def open_catalog(path: Path, masks: Path | None = None, manifest: bool = False) -> Catalog:
    """Recognise the catalog at path: a manifest CSV, an In-shop tree or a DF-MM folder."""
    if not path.exists():
        raise CatalogError(f"{path}: no such file or folder")
    if masks is not None and not masks.is_dir():
        raise CatalogError(f"{masks}: mask folder does not exist")
    if manifest or path.suffix.lower() == ".csv":
        if not path.is_file():
            raise CatalogError(f"{path}: a manifest must be a CSV file")
        return Catalog("manifest", path)
    if not path.is_dir():
        raise CatalogError(f"{path}: expected a folder of images, an In-shop tree or a .csv")
    base = path / "img" if (path / "img").is_dir() else path
    if any((base / gender).is_dir() for gender in ("MEN", "WOMEN")):
        return Catalog("inshop", path, masks)
    if masks is None and (path.parent / "segm").is_dir() and path.name != "segm":
        masks = path.parent / "segm"
    return Catalog("dfmm", path, masks)
