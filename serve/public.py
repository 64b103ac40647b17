"""What the service answers of the application's documents: all but this machine's paths
(the store's folder, an item's photo and mask files; a photo is reached by its URL)."""

from __future__ import annotations

from typing import Any, Final

from engine.application.documents import ItemDetail, Summary, plain
from engine.vocabulary.schema import IMAGE, MASK

PRIVATE: Final = (IMAGE, MASK)  # an item's payload fields that are paths on this machine


def item(detail: ItemDetail) -> dict[str, Any]:
    """An item, its photo's and mask's paths left out (`image_url` serves the photo)."""
    document: dict[str, Any] = plain(detail)
    document["payload"] = {k: v for k, v in document["payload"].items() if k not in PRIVATE}
    return document


def summary(found: Summary) -> dict[str, Any]:
    """What the home holds, but where its vectors are kept."""
    document: dict[str, Any] = plain(found)
    document.pop("vector_store", None)
    return document
