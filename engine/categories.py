"""The 17 DeepFashion categories, their six groups and the CatSim matrix."""

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

GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "A": ("Tees_Tanks", "Blouses_Shirts", "Graphic_Tees", "Shirts_Polos"),
    "B": ("Shorts", "Pants", "Leggings", "Denim"),
    "C": ("Jackets_Coats", "Jackets_Vests"),
    "D": ("Dresses", "Skirts", "Rompers_Jumpsuits"),
    "E": ("Sweaters", "Cardigans", "Sweatshirts_Hoodies"),
    "F": ("Suiting",),
}

GROUP_NAMES: Final[dict[str, str]] = {
    "A": "tops",
    "B": "bottoms",
    "C": "outerwear",
    "D": "one-piece",
    "E": "knitwear",
    "F": "tailoring",
}

SAME_CATEGORY: Final = 1.0
SAME_GROUP: Final = 0.8
CROSS_GROUP: Final[dict[frozenset[str], float]] = {
    frozenset(pair): value
    for pair, value in {
        "AB": 0.2, "AC": 0.3, "AD": 0.1, "AE": 0.4, "AF": 0.2,
        "BC": 0.1, "BD": 0.1, "BE": 0.2, "BF": 0.2,
        "CD": 0.1, "CE": 0.4, "CF": 0.2,
        "DE": 0.1, "DF": 0.3,
        "EF": 0.2,
    }.items()
}  # fmt: skip

CATEGORIES: Final[tuple[str, ...]] = tuple(sorted({c for cs in GROUPS.values() for c in cs}))
_GROUP_OF: Final[dict[str, str]] = {c: g for g, cs in GROUPS.items() for c in cs}
_BY_LOWER: Final[dict[str, str]] = {c.lower(): c for c in CATEGORIES}
_GENDER_ALIASES: Final[dict[str, str]] = {
    **dict.fromkeys(("MEN", "MAN", "MALE", "M"), "MEN"),
    **dict.fromkeys(("WOMEN", "WOMAN", "FEMALE", "W", "F"), "WOMEN"),
}


def canonical_category(name: str) -> str | None:
    """The canonical spelling of a category name (case-insensitive), or None if unknown."""
    return _BY_LOWER.get(name.strip().lower())


def canonical_gender(name: str) -> str | None:
    """MEN or WOMEN for the usual spellings of a gender, or None if unknown."""
    key = name.strip().upper()
    return _GENDER_ALIASES.get(key)


def group_of(category: str) -> str:
    """The group letter (A–F) of a canonical category."""
    return _GROUP_OF[category]


def category_similarity(a: str, b: str) -> float:
    """CatSim between two canonical categories (1.0 same, 0.8 same group, else the table)."""
    if a == b:
        return SAME_CATEGORY
    ga, gb = _GROUP_OF[a], _GROUP_OF[b]
    if ga == gb:
        return SAME_GROUP
    return CROSS_GROUP[frozenset((ga, gb))]
