"""Writes a small synthetic DeepFashion-MultiModal-style catalog for the demo and tests."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image, ImageDraw

from engine.catalog.categories import CATEGORIES_BY_GENDER, GENDERS
from engine.catalog.masks import LEGEND, palette

VIEWS: Final = ("1_front", "2_side", "3_back")

_Rgb = tuple[int, int, int]
_Point = tuple[float, float]

_INDEX: Final[dict[str, int]] = {label: i for i, label in enumerate(LEGEND)}
_BACKGROUND: Final = (232, 232, 228)
_NEUTRAL: Final = (150, 150, 155)
_BASE: Final[dict[str, _Rgb]] = {
    "Tees_Tanks": (240, 110, 100), "Graphic_Tees": (220, 170, 40),
    "Blouses_Shirts": (170, 200, 235), "Shirts_Polos": (40, 110, 70),
    "Sweaters": (150, 40, 50), "Cardigans": (100, 170, 160),
    "Sweatshirts_Hoodies": (110, 120, 140), "Jackets_Coats": (150, 100, 60),
    "Jackets_Vests": (70, 90, 50), "Dresses": (210, 70, 140), "Skirts": (230, 120, 50),
    "Pants": (180, 160, 120), "Denim": (60, 90, 150), "Leggings": (25, 25, 28),
    "Shorts": (120, 160, 60), "Rompers_Jumpsuits": (160, 90, 200), "Suiting": (45, 50, 70),
}  # fmt: skip
# The mask label of each category's garment; every other category is a "top".
_MAIN: Final[dict[str, str]] = {
    "Cardigans": "outer", "Jackets_Coats": "outer", "Jackets_Vests": "outer", "Suiting": "outer",
    "Dresses": "dress", "Skirts": "skirt", "Pants": "pants", "Denim": "pants", "Shorts": "pants",
    "Leggings": "leggings", "Rompers_Jumpsuits": "rompers",
}  # fmt: skip
_HAIR: Final = ((40, 28, 20), (15, 15, 15), (190, 150, 90), (120, 50, 25))
_SKIN: Final = ((240, 200, 170), (215, 165, 125), (165, 115, 80), (105, 70, 50))
_SHOES: Final = ((20, 20, 20), (90, 55, 30), (160, 120, 80), (40, 45, 80))


@dataclass(frozen=True)
class DemoCatalog:
    """Where a written demo catalog is, and how many images it holds."""

    images: Path
    masks: Path
    count: int


@dataclass(frozen=True)
class _Shape:
    label: str
    colour: _Rgb
    points: tuple[_Point, ...]  # polygon corners, or an ellipse's bounding box, in unit coords
    ellipse: bool
    only: str  # "front": hidden in the back view; "back": only in the back view; "": always


class _Figure:
    """The ordered shapes of one person, in unit coordinates (u across, v down)."""

    def __init__(self, men: bool) -> None:
        self.men = men
        self.shapes: list[_Shape] = []
        sh = self.half(0.205)
        self.arm = ((0.5 - sh + 0.025, 0.215), (0.5 - sh - 0.03, 0.5))
        self.leg = ((0.445, 0.48), (0.452, 0.89))

    def half(self, v: float) -> float:
        """Half the body's width at height v (shoulders 0.205, waist 0.4, hips 0.5)."""
        sh, wa, hi = (0.125, 0.105, 0.105) if self.men else (0.11, 0.085, 0.115)
        if v <= 0.4:
            return sh + (wa - sh) * (v - 0.205) / 0.195
        return wa + (hi - wa) * min(1.0, (v - 0.4) / 0.1)

    def add(
        self,
        label: str,
        colour: _Rgb,
        points: Iterable[_Point],
        *,
        ellipse: bool = False,
        only: str = "",
        pair: bool = False,
    ) -> None:
        """Add a shape, and with pair=True its mirror image across the body's centre."""
        pts = tuple(points)
        self.shapes.append(_Shape(label, colour, pts, ellipse, only))
        if pair:
            mirror = tuple((1.0 - u, v) for u, v in (pts[::-1] if ellipse else pts))
            if ellipse:
                mirror = ((mirror[0][0], pts[0][1]), (mirror[1][0], pts[1][1]))
            self.shapes.append(_Shape(label, colour, mirror, ellipse, only))

    def rect(
        self, label: str, colour: _Rgb, u0: float, v0: float, u1: float, v1: float, only: str = ""
    ) -> None:
        self.add(label, colour, ((u0, v0), (u1, v0), (u1, v1), (u0, v1)), only=only)

    def torso(
        self,
        label: str,
        colour: _Rgb,
        v0: float,
        v1: float,
        grow: float,
        gap: float = 0.0,
        only: str = "",
    ) -> None:
        """The body between heights v0 and v1, grown by `grow`; open in front when gap > 0."""
        levels = [v0, *(v for v in (0.4, 0.5) if v0 < v < v1), v1]
        left = [(0.5 - self.half(v) - grow, v) for v in levels]
        if gap > 0:
            self.add(
                label, colour, [*left, (0.5 - gap, v1), (0.5 - 3 * gap, v0)], only=only, pair=True
            )
        else:
            self.add(label, colour, left + [(1.0 - u, v) for u, v in reversed(left)], only=only)

    def limb(
        self, label: str, colour: _Rgb, limb: tuple[_Point, _Point], widths: _Point, ts: _Point
    ) -> None:
        (ua, va), (ub, vb) = limb
        ends = [
            (ua + (ub - ua) * t, va + (vb - va) * t, widths[0] + (widths[1] - widths[0]) * t)
            for t in ts
        ]
        (u0, v0, w0), (u1, v1, w1) = ends
        quad = ((u0 - w0 / 2, v0), (u0 + w0 / 2, v0), (u1 + w1 / 2, v1), (u1 - w1 / 2, v1))
        self.add(label, colour, quad, pair=True)

    def sleeves(self, label: str, colour: _Rgb, length: float, grow: float) -> None:
        self.limb(label, colour, self.arm, (0.055 + grow, 0.04 + grow), (-0.04, length))

    def legs(self, label: str, colour: _Rgb, length: float, grow: float) -> None:
        self.limb(label, colour, self.leg, (0.1 + grow, 0.045 + grow), (-0.05, length))


def _shade(rgb: _Rgb, factor: float) -> _Rgb:
    r, g, b = (min(255, max(0, round(c * factor))) for c in rgb)
    return (r, g, b)


def _dress(f: _Figure, category: str, c: _Rgb) -> None:
    """Add the category's garment (and any small neutral companion garment) to the figure."""
    main, dark, light = _MAIN.get(category, "top"), _shade(c, 0.75), _shade(c, 1.25)
    if main in ("top", "outer") and category != "Suiting":
        f.legs("pants", _NEUTRAL, 0.5, 0.01)  # plain knee-length shorts
        f.torso("pants", _NEUTRAL, 0.44, 0.53, 0.004)
    elif main in ("pants", "leggings", "skirt"):
        f.torso("top", _NEUTRAL, 0.205, 0.46, 0.0)  # plain tank top
    if category in ("Tees_Tanks", "Graphic_Tees"):
        f.sleeves(main, c, 0.3, 0.012)
        f.torso(main, c, 0.2, 0.47, 0.01)
        if category == "Graphic_Tees":
            f.add(main, (245, 245, 240), ((0.46, 0.25), (0.54, 0.31)), ellipse=True, only="front")
            f.add(main, (30, 30, 60), ((0.44, 0.38), (0.5, 0.32), (0.56, 0.38)), only="front")
            f.rect(main, (200, 30, 40), 0.45, 0.39, 0.55, 0.405, only="front")
    elif category in ("Blouses_Shirts", "Shirts_Polos"):
        f.sleeves(main, c, 0.93, 0.008)
        f.torso(main, c, 0.2, 0.5, 0.012)
        f.add(main, light, ((0.5, 0.23), (0.465, 0.195), (0.455, 0.24)), pair=True)
        f.rect(main, dark, 0.496, 0.23, 0.504, 0.5, only="front")
    elif category in ("Sweaters", "Sweatshirts_Hoodies"):
        if category == "Sweatshirts_Hoodies":
            f.add(main, dark, ((0.415, 0.02), (0.585, 0.225)), ellipse=True)  # hood
        f.sleeves(main, c, 0.95, 0.025)
        f.torso(main, c, 0.2, 0.53, 0.025)
        f.torso(main, dark, 0.505, 0.53, 0.026)  # ribbed hem
        if category == "Sweatshirts_Hoodies":
            f.add(main, dark, ((0.43, 0.42), (0.57, 0.42), (0.6, 0.5), (0.4, 0.5)), only="front")
            f.rect(main, light, 0.475, 0.2, 0.482, 0.3, only="front")
            f.rect(main, light, 0.518, 0.2, 0.525, 0.3, only="front")
    elif main == "outer":
        if category == "Suiting":
            f.legs("pants", c, 0.97, 0.014)
            f.torso("pants", c, 0.43, 0.53, 0.006)
            f.torso("top", (240, 240, 238), 0.2, 0.5, 0.01)
            f.add(
                "tie",
                (130, 25, 40),
                ((0.492, 0.215), (0.508, 0.215), (0.512, 0.36), (0.5, 0.38), (0.488, 0.36)),
                only="front",
            )
        else:
            f.torso("top", _NEUTRAL, 0.2, 0.5, 0.01)  # inner top
        hem = 0.62 if category == "Jackets_Coats" else 0.55
        f.sleeves(main, c, 0.95, 0.02)
        f.torso(main, c, 0.2, hem, 0.022, gap=0.02 if category == "Cardigans" else 0.03)
        f.torso(main, c, 0.2, hem, 0.022, only="back")
        if category == "Cardigans":
            for v in (0.28, 0.36, 0.44):
                f.add(main, dark, ((0.462, v), (0.474, v + 0.008)), ellipse=True, only="front")
        else:
            lapel = ((0.47, 0.2), (0.41, 0.215), (0.455, 0.34))
            f.add(main, dark, lapel, only="front", pair=True)
    elif main in ("dress", "skirt"):
        if main == "dress":
            f.torso(main, c, 0.2, 0.42, 0.008)
        flare, hem = (0.18, 0.68) if main == "dress" else (0.17, 0.66)
        wa = f.half(0.4) + 0.008
        f.add(main, c, ((0.5 - wa, 0.4), (0.5 + wa, 0.4), (0.5 + flare, hem), (0.5 - flare, hem)))
    elif main == "rompers":
        f.legs(main, c, 0.97, 0.03)
        f.torso(main, c, 0.2, 0.53, 0.01)
        f.torso(main, dark, 0.395, 0.415, 0.011)  # belt
    else:  # Pants, Denim, Leggings, Shorts
        grow, length = {"Leggings": (0.004, 0.98), "Shorts": (0.02, 0.42)}.get(
            category, (0.014, 0.97)
        )
        f.legs(main, c, length, grow)
        f.torso(main, c, 0.43, 0.53, 0.006)
        if category == "Denim":
            f.torso(main, light, 0.43, 0.445, 0.007)  # waistband


def _figure(gender: str, category: str, colour: _Rgb, rng: np.random.Generator) -> _Figure:
    """One person wearing the category's garment in the given colour."""
    hair, skin, shoes = (p[int(rng.integers(len(p)))] for p in (_HAIR, _SKIN, _SHOES))
    f = _Figure(gender == "MEN")
    if not f.men:
        f.rect("hair", hair, 0.432, 0.06, 0.568, 0.27)  # long hair behind the shoulders
    f.torso("skin", skin, 0.2, 0.52, 0.0)
    f.rect("skin", skin, 0.475, 0.15, 0.525, 0.22)
    f.limb("skin", skin, f.arm, (0.05, 0.036), (-0.02, 1.0))
    hu = f.arm[1][0]
    f.add("skin", skin, ((hu - 0.022, 0.49), (hu + 0.022, 0.545)), ellipse=True, pair=True)
    f.limb("skin", skin, f.leg, (0.095, 0.042), (0.0, 1.0))
    _dress(f, category, colour)
    lu = f.leg[1][0]
    f.add("footwear", shoes, ((lu - 0.034, 0.875), (lu + 0.028, 0.945)), ellipse=True, pair=True)
    f.add("face", _shade(skin, 0.97), ((0.445, 0.045), (0.555, 0.175)), ellipse=True, only="front")
    for u in (0.468, 0.516):
        f.add("face", (40, 30, 30), ((u, 0.105), (u + 0.016, 0.115)), ellipse=True, only="front")
    f.add("hair", hair, ((0.438, 0.028), (0.562, 0.095)), ellipse=True, only="front")
    f.add("hair", hair, ((0.438, 0.028), (0.562, 0.178)), ellipse=True, only="back")
    if not f.men:
        f.rect("hair", hair, 0.432, 0.09, 0.568, 0.28, only="back")
    return f


def _render(
    f: _Figure, view: str, size: tuple[int, int], rng: np.random.Generator, twill: bool
) -> tuple[Image.Image, Image.Image]:
    """Draw the figure's shapes on an RGB image and, as label indices, on a P-mode mask."""
    w, h = size
    image, mask = Image.new("RGB", size, _BACKGROUND), Image.new("P", size, 0)
    mask.putpalette(palette())
    draw_image, draw_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    squeeze, shift = (0.6, 0.04) if view == "side" else (1.0, 0.0)
    for s in f.shapes:
        if (s.only == "front" and view == "back") or (s.only == "back" and view != "back"):
            continue
        xy = [((0.5 + (u - 0.5) * squeeze + shift) * w, v * h) for u, v in s.points]
        for draw, fill in ((draw_image, s.colour), (draw_mask, _INDEX[s.label])):
            if s.ellipse:
                draw.ellipse(xy, fill=fill)
            else:
                draw.polygon(xy, fill=fill)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-4, 5, (h, w, 1), dtype=np.int16)
    if twill:  # diagonal denim weave on the trousers
        y, x = np.indices((h, w))
        weave = (((x + y) // max(2, w // 150)) % 2 * 16 - 8).astype(np.int16)
        on = np.asarray(mask) == _INDEX["pants"]
        pixels[on] += weave[on][:, None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), mask


def write_demo_catalog(
    root: Path,
    *,
    products_per_category: int = 2,
    views: Sequence[str] = VIEWS,
    size: tuple[int, int] = (750, 1101),
    seed: int = 0,
) -> DemoCatalog:
    """Write the catalog under root/images and root/segm and return where it is.

    Every category of every gender gets `products_per_category` products, each photographed
    in every view ("<n>_<name>"; a name containing "side" or "back" is drawn so, else front).
    """
    if products_per_category < 0 or seed < 0 or min(size) < 1:
        raise ValueError("products_per_category and seed must be >= 0, size positive")
    if len(set(views)) != len(views) or not all(re.fullmatch(r"\d+_\w+", v) for v in views):
        raise ValueError(f"views must be distinct names like '1_front', got {list(views)}")
    kinds = ["side" if "side" in v else "back" if "back" in v else "front" for v in views]
    images, masks = root / "images", root / "segm"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    number = count = 0
    for gender in GENDERS:
        for category in CATEGORIES_BY_GENDER[gender]:
            for i in range(products_per_category):
                number += 1
                rng = np.random.default_rng([seed, number])
                shifted = np.multiply(_BASE[category], rng.uniform(0.92, 1.08))
                shifted += rng.integers(-10, 11, 3)  # related to the category, not identical
                r, g, b = (int(c) for c in np.clip(np.round(shifted), 0, 255))
                figure = _figure(gender, category, (r, g, b), rng)
                stem = f"{gender}-{category}-id_{number:08d}-{i % 99 + 1:02d}"
                for view, kind in zip(views, kinds, strict=True):
                    image, mask = _render(figure, kind, size, rng, category == "Denim")
                    image.save(images / f"{stem}_{view}.jpg", quality=90)
                    mask.save(masks / f"{stem}_{view}_segm.png")
                    count += 1
    return DemoCatalog(images, masks, count)
