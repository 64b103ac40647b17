"""A catalog on disk, recognised (a manifest CSV, an In-shop tree or a DF-MM folder) and named
by a taxonomy: its entries streamed, and surveyed before anything is embedded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from engine.catalog.deepfashion import scan_dfmm, scan_inshop
from engine.catalog.items import Entry, Naming, Problem, UnknownCategory
from engine.catalog.manifest import read_manifest
from engine.catalog.taxonomy import Taxonomy, built_in
from engine.errors import CatalogError
from engine.helpers import choice

CatalogKind = Literal["dfmm", "inshop", "manifest"]
UNKNOWN: Final[dict[str, UnknownCategory]] = {"accept": "accept", "skip": "skip", "fail": "fail"}


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
    how = UNKNOWN[unknown]
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
    naming = Naming(taxonomy or built_in(default_taxonomy(kind)), how)
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
