"""Masking on hand-made masks, and the two framings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.catalog.framing import center_crop, decode_size, letterbox
from engine.catalog.inputs import load_input
from engine.catalog.items import Item
from engine.catalog.masks import LEGEND, apply_mask, keep_mask, palette, removed_labels
from engine.errors import CatalogError

GARMENT = (200, 30, 30)


def _image() -> Image.Image:
    """4×2 image, every pixel the garment colour."""
    return Image.new("RGB", (4, 2), GARMENT)


def _mask(labels: list[list[str]]) -> Image.Image:
    """An RGB mask from a grid of label names."""
    rgb = np.array([[LEGEND[name] for name in row] for row in labels], dtype=np.uint8)
    return Image.fromarray(rgb, mode="RGB")


def test_removed_labels_become_black_and_garments_stay() -> None:
    mask = _mask(
        [
            ["background", "hair", "face", "skin"],
            ["top", "pants", "footwear", "bag"],
        ]
    )
    out = np.asarray(apply_mask(_image(), mask))
    assert (out[0] == 0).all()
    assert (out[1] == GARMENT).all()


def test_configurable_labels() -> None:
    mask = _mask([["background", "hair", "top", "bag"], ["top", "top", "top", "top"]])
    out = np.asarray(apply_mask(_image(), mask, removed=("bag",)))
    assert out[0, 3].tolist() == [0, 0, 0]
    assert out[0, 0].tolist() == list(GARMENT)  # background kept when not removed
    with pytest.raises(CatalogError, match="unknown mask label"):
        removed_labels(["background", "cape"])


def test_palette_masks_match_on_colour_not_index() -> None:
    indices = np.array([[13, 1, 1, 0], [15, 14, 5, 5]], dtype=np.uint8)  # hair top top bg / ...
    mask = Image.fromarray(indices, mode="P")
    mask.putpalette(palette())
    keep = keep_mask(mask)
    assert keep.tolist() == [[False, True, True, False], [False, False, True, True]]
    # the same colours under a re-indexed palette give the same answer
    order = list(LEGEND.values())[::-1]
    flat = [c for rgb in order for c in rgb]
    reindexed = Image.fromarray((len(order) - 1 - indices).astype(np.uint8), mode="P")
    reindexed.putpalette(flat + [0] * (768 - len(flat)))
    assert keep_mask(reindexed).tolist() == keep.tolist()


def test_mask_of_another_size_is_resized_nearest() -> None:
    # 2×1 mask for a 4×2 image: left half hair, right half top
    mask = _mask([["hair", "top"]])
    out = np.asarray(apply_mask(_image(), mask))
    assert (out[:, :2] == 0).all()
    assert (out[:, 2:] == GARMENT).all()


def test_letterbox_keeps_the_whole_photo() -> None:
    tall = Image.new("RGB", (750, 1101), (255, 255, 255))
    out = np.asarray(letterbox(tall))
    assert out.shape == (224, 224, 3)
    assert (out[:, 112] == 255).all()  # the full height is there
    assert (out[112, :30] == 0).all() and (out[112, -30:] == 0).all()  # black side bars


def test_center_crop_is_the_papers_framing() -> None:
    tall = Image.new("RGB", (750, 1101), (0, 0, 0))
    tall.paste((255, 0, 0), (0, 0, 750, 100))  # the head band is cut by the crop
    out = np.asarray(center_crop(tall))
    assert out.shape == (224, 224, 3)
    assert (out[..., 0] == 0).all()


def test_decode_size_never_below_the_input() -> None:
    assert min(decode_size((750, 1101), "center-crop")) >= 256
    assert max(decode_size((750, 1101), "letterbox")) >= 224
    assert decode_size((100, 50), "letterbox") == (100, 50)  # never upscaled


def test_the_letterbox_pads_with_the_photos_background(tmp_path: Path) -> None:
    """White around an unmasked product photo, black around a masked one."""
    photo = tmp_path / "p.png"
    Image.new("RGB", (60, 120), (200, 30, 30)).save(photo)
    mask = tmp_path / "m.png"
    Image.new("RGB", (60, 120), LEGEND["top"]).save(mask)
    base = Item("p", "P", "MEN", "Shirts", "", photo)
    plain, masked_flag = load_input(base, "letterbox")
    assert not masked_flag and (plain[:, :, 0] == 255).all()  # the left padding column
    masked, masked_flag = load_input(replace(base, mask=mask), "letterbox")
    assert masked_flag and (masked[:, :, 0] == 0).all()
    assert (plain[:, 112, 112] == masked[:, 112, 112]).all()  # the garment is the same
