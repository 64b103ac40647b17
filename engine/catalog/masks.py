"""The DeepFashion-MultiModal parsing legend, and garment masking by RGB colour."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from engine.errors import MaskError

# Label -> RGB colour of the DF-MM segmentation masks (index order of the palette).
LEGEND: Final[dict[str, tuple[int, int, int]]] = {
    "background": (0, 0, 0),
    "top": (255, 250, 250),
    "outer": (220, 220, 220),
    "skirt": (250, 235, 215),
    "dress": (255, 250, 205),
    "pants": (211, 211, 211),
    "leggings": (70, 130, 180),
    "headwear": (127, 255, 212),
    "eyeglass": (0, 100, 0),
    "neckwear": (50, 205, 50),
    "belt": (255, 255, 0),
    "footwear": (245, 222, 179),
    "bag": (255, 140, 0),
    "hair": (255, 0, 0),
    "face": (16, 78, 139),
    "skin": (144, 238, 144),
    "ring": (50, 205, 174),
    "wrist wearing": (50, 155, 250),
    "socks": (160, 140, 88),
    "gloves": (213, 140, 88),
    "necklace": (90, 140, 90),
    "rompers": (185, 210, 205),
    "earrings": (130, 165, 180),
    "tie": (225, 141, 151),
}

DEFAULT_REMOVED: Final = ("background", "hair", "face", "skin")
MissingMask = Literal["unmasked", "skip", "fail"]  # what to do with an image without a mask


def palette() -> list[int]:
    """The legend as a flat 256-entry PIL palette (label index = palette index)."""
    flat = [channel for rgb in LEGEND.values() for channel in rgb]
    return flat + [0] * (768 - len(flat))


def removed_labels(names: Iterable[str]) -> tuple[str, ...]:
    """Validate label names against the legend; raise naming the unknown ones."""
    labels = tuple(n.strip().lower() for n in names if n.strip())
    unknown = [n for n in labels if n not in LEGEND]
    if unknown:
        raise MaskError(f"unknown mask label(s) {', '.join(unknown)}; known: {', '.join(LEGEND)}")
    return labels


def _packed(rgb: NDArray[np.uint8]) -> NDArray[np.int32]:
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    return (r << 16) | (g << 8) | b


_ALL: Final = np.array([(r << 16) | (g << 8) | b for r, g, b in LEGEND.values()])
UNKNOWN_TOLERANCE: Final = 0.01  # share of pixels whose colour is not in the legend


def keep_mask(mask: Image.Image, removed: Iterable[str] = DEFAULT_REMOVED) -> NDArray[np.bool_]:
    """True where the mask's colour is not one of the removed labels.

    Raises MaskError when more than 1% of the pixels have colours outside the legend
    (a photo or a JPEG-compressed mask, not a palette segmentation mask).
    """
    packed = _packed(np.asarray(mask.convert("RGB"), dtype=np.uint8))
    unknown = ~np.isin(packed, _ALL)
    if unknown.mean() > UNKNOWN_TOLERANCE:
        example = int(packed[unknown][0])
        raise MaskError(
            f"{unknown.mean():.0%} of the mask's pixels have colours outside the DF-MM legend "
            f"(e.g. #{example:06x}); is it a lossless segmentation mask?"
        )
    colours = np.array([(r << 16) | (g << 8) | b for r, g, b in (LEGEND[n] for n in removed)])
    return ~np.isin(packed, colours)


def apply_mask(
    image: Image.Image, mask: Image.Image, removed: Iterable[str] = DEFAULT_REMOVED
) -> Image.Image:
    """The image with every pixel of a removed label set to black.

    A mask of another size is resized to the image with nearest neighbour, so
    label colours are never blended.
    """
    if mask.size != image.size:
        mask = mask.convert("RGB").resize(image.size, Image.Resampling.NEAREST)
    keep = keep_mask(mask, removed)
    pixels = np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    pixels[~keep] = 0
    return Image.fromarray(pixels, mode="RGB")
