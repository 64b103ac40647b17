"""Catalog items and products, read from DF-MM folders, In-shop trees and manifests, named
by a taxonomy (its categories and genders, or a catalog's own categories accepted as new)."""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Final, Literal

from engine.catalog.taxonomy import Taxonomy, built_in, deepfashion, key
from engine.csvrows import Row, csv_rows
from engine.errors import CatalogError, ConfigError
from engine.helpers import choice
from engine.vocabulary.schema import stock_fields

IMAGE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
MASK_SUFFIX: Final = "_segm.png"
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

_DFMM: Final = re.compile(
    r"^(?P<gender>WOMEN|MEN)-(?P<category>[A-Za-z_]+?)-(?P<product>id_\d{8})"
    r"-(?P<colour>\d{2})_(?P<view>\d+_[A-Za-z]+)$"
)
_INSHOP_FILE: Final = re.compile(r"^(?P<colour>\d{2})_(?P<view>\d+_[A-Za-z]+)$")
_PRODUCT_DIR: Final = re.compile(r"^id_\d{8}$")

CatalogKind = Literal["dfmm", "inshop", "manifest"]
UnknownCategory = Literal["accept", "skip", "fail"]  # a category the taxonomy does not know


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
    attributes: tuple[tuple[str, str], ...] = ()  # a manifest's other columns (name, value)
    name: str | None = None  # the shop's name for it, its price and its page
    price: float | None = None
    url: str | None = None
    in_stock: bool | None = None


@dataclass(frozen=True)
class Problem:
    """An entry of the catalog that cannot be used, and why (`kind` and `detail` group it)."""

    where: str
    reason: str
    kind: str = "unreadable entry"
    detail: str = ""


Entry = Item | Problem


class Rejected(ValueError):
    """A catalog entry refused for a reason of a kind (unknown category, bad path, …)."""

    def __init__(self, kind: str, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.kind, self.detail = kind, detail


@dataclass(frozen=True)
class Naming:
    """How a catalog's names become a taxonomy's categories and genders."""

    taxonomy: Taxonomy = field(default_factory=deepfashion)
    unknown: UnknownCategory = "accept"
    # the first spelling of each accepted new category, so `Robes` and `robes` are one
    accepted: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def category(self, raw: str, where: str) -> str:
        """The category a name means; an unknown one is accepted as it is, skipped
        (Rejected) or stops the run (CatalogError), as `unknown` says."""
        known = self.taxonomy.category(raw)
        if known is not None:
            return known
        name = raw.strip()
        if not name:
            raise Rejected("empty category", "empty category")
        if self.unknown == "accept":
            return self.accepted.setdefault(key(name), name)
        if self.unknown == "fail":
            raise CatalogError(
                f"{where}: unknown category {name!r} (taxonomy {self.taxonomy.name}); add it "
                "to a taxonomy file (--taxonomy FILE) or run with --unknown-category accept|skip"
            )
        raise Rejected("unknown category", f"unknown category {name!r}", name)

    def gender(self, raw: str) -> str:
        """The canonical gender of a spelling; Rejected naming the known ones otherwise."""
        gender = self.taxonomy.gender(raw)
        if gender is None:
            known = ", ".join(self.taxonomy.all_genders)
            raise Rejected("unknown gender", f"unknown gender {raw!r} (use {known})", raw.strip())
        return gender


@dataclass(frozen=True)
class ParsedName:
    """The fields encoded in a DF-MM name."""

    gender: str
    category: str
    product_id: str
    view: str


def parse_dfmm_stem(stem: str) -> ParsedName:
    """Parse `WOMEN-Dresses-id_00000021-05_1_front`; Rejected (a ValueError) with the reason.

    The category is returned as written; the catalog's Naming decides what it means.
    """
    match = _DFMM.match(stem)
    if match is None:
        raise Rejected("bad name", "name is not GENDER-Category-id_XXXXXXXX-NN_V_view")
    return ParsedName(
        gender=match["gender"],
        category=match["category"],
        product_id=f"{match['product']}-{match['colour']}",
        view=match["view"].split("_", 1)[1],
    )


def inshop_item_id(relative: PurePosixPath) -> str:
    """Canonical (DF-MM style) id of `[img/]WOMEN/Dresses/id_00000021/05_1_front.jpg`."""
    parts = relative.parts[1:] if relative.parts[:1] == ("img",) else relative.parts
    if len(parts) != 4:
        raise Rejected("bad name", "path is not [img/]GENDER/Category/id_XXXXXXXX/NN_V_view.jpg")
    gender, category, product, filename = parts
    stem = PurePosixPath(filename).stem
    if not _PRODUCT_DIR.match(product):
        raise Rejected("bad name", f"product folder {product!r} is not id_XXXXXXXX")
    if not _INSHOP_FILE.match(stem):
        raise Rejected("bad name", f"file name {filename!r} is not NN_V_view")
    return f"{gender}-{category}-{product}-{stem}"


def _problem(where: str, exc: Rejected) -> Problem:
    return Problem(where, str(exc), exc.kind, exc.detail)


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _mask_for(masks: Path | None, item_id: str) -> Path | None:
    if masks is None:
        return None
    candidate = masks / f"{item_id}{MASK_SUFFIX}"
    return candidate if candidate.is_file() else None


def _named_item(item_id: str, image: Path, masks: Path | None, naming: Naming) -> Entry:
    try:
        parsed = parse_dfmm_stem(item_id)
        category = naming.category(parsed.category, str(image))
    except Rejected as exc:
        return _problem(str(image), exc)
    return Item(
        item_id=item_id,
        product_id=parsed.product_id,
        gender=parsed.gender,
        category=category,
        view=parsed.view,
        image=image,
        mask=_mask_for(masks, item_id),
    )


def scan_dfmm(
    images: Path, masks: Path | None = None, naming: Naming = Naming()
) -> Iterator[Entry]:
    """Items of a flat DF-MM folder, streamed in directory order."""
    with os.scandir(images) as entries:
        for entry in entries:
            if entry.is_file() and _is_image(entry.name):
                stem = os.path.splitext(entry.name)[0]
                yield _named_item(stem, Path(entry.path), masks, naming)


def scan_inshop(
    root: Path, masks: Path | None = None, naming: Naming = Naming()
) -> Iterator[Entry]:
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
            except Rejected as exc:
                yield _problem(str(image), exc)
                continue
            yield _named_item(item_id, image, masks, naming)


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
            yield _problem(where, exc)
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


@dataclass(frozen=True)
class Catalog:
    """A catalog on disk: where it is, how to read it and name its entries. Iterating
    streams its entries."""

    kind: CatalogKind
    path: Path
    masks: Path | None = None
    naming: Naming = field(default_factory=Naming)
    root: Path | None = None  # manifests: a folder images may come from besides their own

    def __iter__(self) -> Iterator[Entry]:
        if self.kind == "manifest":
            return read_manifest(self.path, self.naming, self.root)
        if self.kind == "inshop":
            return scan_inshop(self.path, self.masks, self.naming)
        return scan_dfmm(self.path, self.masks, self.naming)


def default_taxonomy(kind: CatalogKind) -> str:
    """The taxonomy a kind of catalog is named by unless told: DeepFashion's for its own
    folders, `retail` for manifests."""
    return "retail" if kind == "manifest" else "deepfashion"


def open_catalog(
    path: Path,
    masks: Path | None = None,
    manifest: bool = False,
    taxonomy: Taxonomy | None = None,
    unknown: str = "accept",
    root: Path | None = None,
) -> Catalog:
    """Recognise the catalog at path: a manifest CSV, an In-shop tree or a DF-MM folder;
    named by `taxonomy` (default: the kind's, see default_taxonomy)."""
    choice(UnknownCategory, unknown, "--unknown-category")
    if not path.exists():
        raise CatalogError(f"{path}: no such file or folder")
    if masks is not None and not masks.is_dir():
        raise CatalogError(f"{masks}: mask folder does not exist")
    if root is not None and not root.is_dir():
        raise CatalogError(f"{root}: --root must be a folder")
    kind: CatalogKind
    if manifest or path.suffix.lower() == ".csv":
        if not path.is_file():
            raise CatalogError(f"{path}: a manifest must be a CSV file")
        kind = "manifest"
    elif not path.is_dir():
        raise CatalogError(f"{path}: expected a folder of images, an In-shop tree or a .csv")
    else:
        base = path / "img" if (path / "img").is_dir() else path
        if any((base / gender).is_dir() for gender in ("MEN", "WOMEN")):
            kind = "inshop"
        else:
            kind = "dfmm"
            if masks is None and (path.parent / "segm").is_dir() and path.name != "segm":
                masks = path.parent / "segm"
    naming = Naming(taxonomy or built_in(default_taxonomy(kind)), unknown)  # type: ignore[arg-type]
    return Catalog(kind, path, masks, naming, root)


@dataclass
class Survey:
    """What a catalog holds, read before anything is embedded: its usable items, the
    problems by kind, the categories its taxonomy does not know, the stores it names."""

    items: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)
    new_categories: Counter[str] = field(default_factory=Counter)
    store_ids: set[str] = field(default_factory=set)
    attributes: Counter[str] = field(default_factory=Counter)  # other columns: items with one


def survey(catalog: Catalog) -> Survey:
    """Read the whole catalog once (names only, no pixels); CatalogError as reading does."""
    found = Survey()
    taxonomy = catalog.naming.taxonomy
    for entry in catalog:
        if isinstance(entry, Problem):
            found.problems[entry.kind] += 1
            continue
        found.items += 1
        found.categories[entry.category] += 1
        found.attributes.update(name for name, _ in entry.attributes)
        if taxonomy.category(entry.category) is None:
            found.new_categories[entry.category] += 1
        if entry.store_id is not None:
            found.store_ids.add(entry.store_id)
    return found


@dataclass(frozen=True)
class ItemChanges:
    """What a shop changes of a stored item (None: left as it is)."""

    in_stock: bool | None = None
    price: float | None = None
    name: str | None = None
    url: str | None = None

    def payload(self) -> dict[str, object]:
        """The payload fields to set; ConfigError for a bad value or nothing to change."""
        if self.price is not None and not (math.isfinite(self.price) and self.price >= 0):
            raise ConfigError(f"price must be 0 or more, got {self.price}")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"url must start with http:// or https://, got {self.url!r}")
        if self.name is not None and not self.name.strip():
            raise ConfigError("name must not be empty")
        fields = {
            "in_stock": self.in_stock,
            "price": self.price,
            "name": self.name,
            "url": self.url,
        }
        changes: dict[str, object] = {k: v for k, v in fields.items() if v is not None}
        if self.in_stock is not None:
            changes |= stock_fields(self.in_stock)
        if not changes:
            raise ConfigError(
                "nothing to change: give --in-stock/--out-of-stock, --price, --name or --url"
            )
        return changes
