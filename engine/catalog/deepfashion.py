"""DeepFashion's catalogs: the flat DF-MM folder (`WOMEN-Dresses-id_00000021-05_1_front.jpg`,
masks as `<stem>_segm.png`) and the In-shop tree (`img/WOMEN/Dresses/id_00000021/05_1_front.jpg`),
their names parsed into items."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

from engine.catalog.items import Entry, Item, Naming, Rejected, problem

IMAGE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
MASK_SUFFIX: Final = "_segm.png"
_DFMM: Final = re.compile(
    r"^(?P<gender>WOMEN|MEN)-(?P<category>[A-Za-z_]+?)-(?P<product>id_\d{8})"
    r"-(?P<colour>\d{2})_(?P<view>\d+_[A-Za-z]+)$"
)
_INSHOP_FILE: Final = re.compile(r"^(?P<colour>\d{2})_(?P<view>\d+_[A-Za-z]+)$")
_PRODUCT_DIR: Final = re.compile(r"^id_\d{8}$")


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
        return problem(str(image), exc)
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
                yield problem(str(image), exc)
                continue
            yield _named_item(item_id, image, masks, naming)
