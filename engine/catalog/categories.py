"""The 17 DeepFashion categories, their six groups and the CatSim matrix."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from engine.errors import ConfigError

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


@dataclass(frozen=True)
class CategorySimilarity:
    """CatSim: 1.0 within a category, `same_group` within a group, else a per-pair table.

    The default is the paper's matrix; `from_toml` reads another, e.g.::

        same_category = 1.0
        same_group = 0.8
        [cross]
        AB = 0.2   # group letters as in GROUPS; missing pairs are 0
    """

    same_category: float = SAME_CATEGORY
    same_group: float = SAME_GROUP
    cross: Mapping[frozenset[str], float] = field(default_factory=lambda: dict(CROSS_GROUP))

    def __call__(self, a: str, b: str) -> float:
        if a == b:
            return self.same_category
        ga, gb = _GROUP_OF.get(a), _GROUP_OF.get(b)
        if ga is None or gb is None:
            return 0.0
        if ga == gb:
            return self.same_group
        return self.cross.get(frozenset((ga, gb)), 0.0)

    @classmethod
    def from_toml(cls, path: Path) -> CategorySimilarity:
        """Read a CatSim matrix from TOML; ConfigError naming the file on bad content."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the category matrix ({exc})") from None
        cross: dict[frozenset[str], float] = {}
        for pair, value in dict(data.get("cross", {})).items():
            if len(pair) != 2 or not set(pair) <= set(GROUPS) or pair[0] == pair[1]:
                raise ConfigError(f"{path}: [cross] key {pair!r} is not two group letters")
            cross[frozenset(pair)] = _unit(path, f"cross.{pair}", value)
        return cls(
            _unit(path, "same_category", data.get("same_category", SAME_CATEGORY)),
            _unit(path, "same_group", data.get("same_group", SAME_GROUP)),
            cross,
        )


def _unit(path: Path, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{path}: {key} must be a number in [0, 1], got {value!r}")
    return float(value)


PAPER_MATRIX: Final = CategorySimilarity()
