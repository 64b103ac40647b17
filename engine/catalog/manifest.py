"""A retailer's catalog as a manifest CSV: one row per photo (`path,gender,category,
product_id[,item_id,mask_path,store_id,view,name,price,url,in_stock,…]`), paths relative to
it; any other column kept as the item's attributes."""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Final

from engine.catalog.items import Entry, Item, Naming, Problem, Rejected, problem
from engine.catalog.taxonomy import built_in
from engine.csvrows import Row, csv_rows
from engine.errors import CatalogError

MANIFEST_REQUIRED: Final = ("path", "gender", "category", "product_id")
MANIFEST_OPTIONAL: Final = (
    "item_id",
    "mask_path",
    "store_id",
    "view",
    "name",
    "price",
    "url",
    "in_stock",
)
TRUE: Final = frozenset({"true", "yes", "y", "1"})
FALSE: Final = frozenset({"false", "no", "n", "0"})
KNOWN_COLUMNS: Final = frozenset((*MANIFEST_REQUIRED, *MANIFEST_OPTIONAL))


def _inside(folder: Path, relative: str, root: Path | None) -> Path:
    """The file a manifest names: inside its folder (or under `root`), symlinks followed."""
    if not relative:
        raise Rejected("bad path", "empty path")
    if "\0" in relative:
        raise Rejected("bad path", f"path {relative!r} holds a NUL character")
    absolute = PurePosixPath(relative).is_absolute() or os.path.isabs(relative)
    path = Path(os.path.normpath(Path(relative) if absolute else folder.absolute() / relative))
    allowed = [folder, *([root] if root else [])]
    if not any(path.is_relative_to(Path(os.path.normpath(a.absolute()))) for a in allowed):
        where = " or under --root" if root else ""
        if absolute:
            raise Rejected(
                "bad path",
                f"absolute path {relative!r}; paths are relative to the manifest{where} "
                "(--root DIR allows a folder of images elsewhere)",
            )
        raise Rejected(
            "bad path",
            f"path {relative!r} leaves the catalog folder (--root DIR allows a folder)",
        )
    return path


def _manifest_item(row: Row, folder: Path, root: Path | None, naming: Naming, where: str) -> Item:
    gender = naming.gender(row["gender"] or "")
    category = naming.category(row["category"] or "", where)
    product_id = (row["product_id"] or "").strip()
    if not product_id:
        raise Rejected("empty product_id", "empty product_id")
    path = (row["path"] or "").strip()
    image = _inside(folder, path, root)
    mask_path = (row.get("mask_path") or "").strip()
    return Item(
        item_id=(row.get("item_id") or "").strip(),
        product_id=product_id,
        gender=gender,
        category=category,
        view=(row.get("view") or "").strip(),
        image=image,
        mask=_inside(folder, mask_path, root) if mask_path else None,
        store_id=(row.get("store_id") or "").strip() or None,
        attributes=tuple(
            (name, value.strip())
            for name, value in row.items()
            if name not in KNOWN_COLUMNS and name and value and value.strip()
        ),
        name=(row.get("name") or "").strip() or None,
        price=parse_price(row.get("price") or ""),
        url=(row.get("url") or "").strip() or None,
        in_stock=parse_in_stock(row.get("in_stock") or ""),
    )


def parse_price(text: str) -> float | None:
    """A price cell: a number of 0 or more (empty: none); Rejected otherwise."""
    text = text.strip()
    if not text:
        return None
    try:
        price = float(text)
    except ValueError:
        raise Rejected("bad price", f"price {text!r} is not a number (use 19.99)") from None
    if not (math.isfinite(price) and price >= 0):
        raise Rejected("bad price", f"price {text!r} must be 0 or more")
    return price


def parse_in_stock(text: str) -> bool | None:
    """An in_stock cell: true/false, yes/no, 1/0 (empty: not said); Rejected otherwise."""
    word = text.strip().lower()
    if not word:
        return None
    if word in TRUE or word in FALSE:
        return word in TRUE
    raise Rejected("bad in_stock", f"in_stock {text.strip()!r} is not true or false")


def read_manifest(
    manifest: Path, naming: Naming | None = None, root: Path | None = None
) -> Iterator[Entry]:
    """Items of a manifest CSV (`path,gender,category,product_id[,item_id,mask_path,store_id,
    view]`), named by the `retail` taxonomy unless told otherwise; any other column (colour,
    season, ...) is kept as the item's attributes.

    Paths are relative to the manifest's folder (or under `root`). An item's id is its
    `item_id`, else its file's stem when no other file has that stem, else its path without
    the suffix (a row repeated names the same file: its stem stays the id, and the repeat is
    reported as a duplicate). Missing columns or a file that is not UTF-8 raise
    CatalogError; a bad row becomes a Problem naming the row.
    """
    naming = naming or Naming(built_in("retail"))
    folder = manifest.parent
    rows = list(csv_rows(manifest, MANIFEST_REQUIRED, MANIFEST_OPTIONAL, CatalogError))
    paths = {PurePosixPath((row["path"] or "").strip()) for _, row in rows if row is not None}
    stems = Counter(path.stem for path in paths)  # a row repeated is still one file
    seen: set[str] = set()
    for number, row in rows:
        where = f"{manifest}:{number}"
        if row is None:
            yield Problem(where, "wrong number of fields", "wrong number of fields")
            continue
        try:
            item = _manifest_item(row, folder, root, naming, where)
        except Rejected as exc:
            yield problem(where, exc)
            continue
        if not item.item_id:
            path = PurePosixPath((row["path"] or "").strip())
            unique = stems[path.stem] == 1
            item_id = path.stem if unique else path.with_suffix("").as_posix()
            item = Item(**{**item.__dict__, "item_id": item_id})
        if item.item_id in seen:
            yield Problem(
                where, f"duplicate item_id {item.item_id!r}", "duplicate item_id", item.item_id
            )
            continue
        seen.add(item.item_id)
        yield item
