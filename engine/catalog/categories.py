"""DeepFashion's 17 categories as its two genders wear them (the demo catalog draws these;
their groups and CatSim values are the built-in `deepfashion` taxonomy)."""

from __future__ import annotations

from typing import Final

GENDERS: Final = ("MEN", "WOMEN")

CATEGORIES_BY_GENDER: Final[dict[str, tuple[str, ...]]] = {
    "WOMEN": (
        "Blouses_Shirts",
        "Cardigans",
        "Denim",
        "Dresses",
        "Graphic_Tees",
        "Jackets_Coats",
        "Leggings",
        "Pants",
        "Rompers_Jumpsuits",
        "Shorts",
        "Skirts",
        "Sweaters",
        "Sweatshirts_Hoodies",
        "Tees_Tanks",
    ),
    "MEN": (
        "Denim",
        "Jackets_Vests",
        "Pants",
        "Shirts_Polos",
        "Shorts",
        "Suiting",
        "Sweaters",
        "Sweatshirts_Hoodies",
        "Tees_Tanks",
    ),
}

CATEGORIES: Final[tuple[str, ...]] = tuple(
    sorted({c for cs in CATEGORIES_BY_GENDER.values() for c in cs})
)
