"""A catalog's taxonomy as data: categories in groups, CatSim values, aliases, and which item
genders each shopper gender is shown. Built in: `deepfashion` and `retail` (TOML files)."""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from difflib import get_close_matches
from importlib import resources
from pathlib import Path
from typing import Any, Final

from engine.errors import ConfigError

BUILT_IN: Final = ("deepfashion", "retail")
GENDERS: Final = ("MEN", "WOMEN", "UNISEX", "BOYS", "GIRLS")
KEYS: Final = (
    "name",
    "extends",
    "same_category",
    "same_group",
    "groups",
    "cross",
    "aliases",
    "genders",
    "gender_aliases",
)
_SPELLINGS: Final[dict[str, tuple[str, ...]]] = {
    "MEN": ("men", "man", "male", "m", "mens", "gents", "gentlemen"),
    "WOMEN": ("women", "woman", "female", "w", "f", "womens", "ladies", "lady"),
    "UNISEX": ("unisex", "u", "all", "adult unisex"),
    "BOYS": ("boys", "boy", "kids boys", "boys kids"),
    "GIRLS": ("girls", "girl", "kids girls", "girls kids"),
}


def key(name: str) -> str:
    """A name as matched: case, spaces, punctuation and separators ignored."""
    return re.sub(r"[\W_]+", "", name.casefold())


@dataclass(frozen=True)
class Taxonomy:
    """Categories in groups, CatSim, aliases and gender compatibility.

    CatSim(a, b) is `same_category` when a is b, `same_group` within a group, the `cross`
    value of their two groups otherwise (0 when not listed). A category outside every
    group (one a catalog brought, accepted as it is) is a group of its own.
    """

    name: str
    groups: Mapping[str, tuple[str, ...]]
    same_category: float = 1.0
    same_group: float = 0.8
    cross: Mapping[frozenset[str], float] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)  # key(raw) -> category
    genders: Mapping[str, frozenset[str]] = field(default_factory=dict)
    gender_aliases: Mapping[str, str] = field(default_factory=dict)  # key(raw) -> gender

    # lookups (tables built once per taxonomy: they run per catalog item and per hit) ------
    @functools.cached_property
    def categories(self) -> tuple[str, ...]:
        """Every category, sorted."""
        return tuple(sorted(c for cs in self.groups.values() for c in cs))

    @functools.cached_property
    def _group(self) -> dict[str, str]:
        return {c: g for g, cs in self.groups.items() for c in cs}

    @functools.cached_property
    def _names(self) -> dict[str, str]:
        """key(name) → category, for the categories' own spellings, then the aliases."""
        return {**self.aliases, **{key(c): c for c in self.categories}}

    @functools.cached_property
    def _gender_names(self) -> dict[str, str]:
        return {**{key(g): g for g in self.all_genders}, **self.gender_aliases}

    def group_of(self, category: str) -> str:
        """The group of a category (a category outside every group is its own group)."""
        return self._group.get(category, category)

    def category(self, raw: str) -> str | None:
        """The category a catalog's name means (its own spelling or an alias), or None."""
        return self._names.get(key(raw))

    @functools.cached_property
    def all_genders(self) -> tuple[str, ...]:
        """Every gender: the shoppers' ones, then item genders only items have (UNISEX, …)."""
        shown = {g for gs in self.genders.values() for g in gs}
        return (*self.genders, *sorted(shown - set(self.genders)))

    def gender(self, raw: str) -> str | None:
        """The canonical gender of a spelling (`Men`, `female`, `Boys`, …), or None."""
        return self._gender_names.get(key(raw))

    def shown_to(self, gender: str) -> frozenset[str]:
        """The item genders a shopper of this gender is shown (and buys)."""
        return self.genders.get(gender, frozenset({gender}))

    def __call__(self, a: str, b: str) -> float:
        """CatSim between two categories."""
        if a == b:
            return self.same_category
        ga, gb = self.group_of(a), self.group_of(b)
        if ga == gb:
            return self.same_group
        return self.cross.get(frozenset((ga, gb)), 0.0)

    def with_categories(self, categories: Iterable[str]) -> Taxonomy:
        """This taxonomy with categories it did not know, each a group of its own."""
        new = sorted({c for c in categories if self.category(c) is None})
        if not new:
            return self
        return replace(self, groups={**self.groups, **{c: (c,) for c in new}})

    # files -------------------------------------------------------------------------
    def to_toml(self) -> str:
        """The taxonomy as a TOML file that `from_toml` reads back to an equal taxonomy."""
        lines = [
            f"name = {_quote(self.name)}",
            f"same_category = {self.same_category}",
            f"same_group = {self.same_group}",
            "",
            "[groups]",
        ]
        lines += [
            f"{_quote(g)} = [{', '.join(_quote(c) for c in cs)}]" for g, cs in self.groups.items()
        ]
        lines += ["", "[cross]  # CatSim between two groups (either order); others are 0"]
        order = list(self.groups)
        rows: dict[str, list[str]] = {}
        for pair, value in self.cross.items():
            a, b = sorted(pair, key=lambda g: (order.index(g) if g in order else len(order), g))
            rows.setdefault(a, []).append(f"{_quote(b)} = {value}")
        lines += [f"{_quote(a)} = {{ {', '.join(vs)} }}" for a, vs in rows.items()]
        lines += ["", "[aliases]  # a catalog's name -> a category"]
        lines += [f"{_quote(a)} = {_quote(c)}" for a, c in sorted(self.aliases.items())]
        lines += ["", "[genders]  # a shopper's gender -> the item genders they are shown"]
        lines += [
            f"{g} = [{', '.join(_quote(s) for s in sorted(shown))}]"
            for g, shown in self.genders.items()
        ]
        custom = {a: g for a, g in self.gender_aliases.items() if a not in _BUILT_IN_SPELLINGS}
        lines += ["", "[gender_aliases]"]
        lines += [f"{_quote(a)} = {_quote(g)}" for a, g in sorted(custom.items())]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str, where: str) -> Taxonomy:
        """A taxonomy from TOML text (`where` names it in errors); `extends` starts from
        a built-in one, whose groups, values, aliases and genders the file then changes."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}: not TOML ({exc})") from None
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            close = [get_close_matches(k, KEYS, n=1, cutoff=0.6) for k in unknown]
            hints = [
                c[0] if len(unknown) == 1 else f"{c[0]} (for {k})"
                for k, c in zip(unknown, close, strict=True)
                if c
            ]
            hint = f"; did you mean {', '.join(hints)}?" if hints else ""
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}{hint}"
            )
        base = built_in(_text(data, "extends", where)) if "extends" in data else None
        return _build(data, where, base)

    @classmethod
    def read(cls, path: Path) -> Taxonomy:
        """A taxonomy from a TOML file; ConfigError naming the file."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the taxonomy ({exc})") from None
        return cls.parse(text, str(path))


_BUILT_IN_SPELLINGS: Final = {key(s): g for g, spellings in _SPELLINGS.items() for s in spellings}


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data: Mapping[str, Any], name: str, where: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {name} must be a non-empty string, got {value!r}")
    return value.strip()


def _unit(value: object, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{where}: {name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _table(data: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    return value


def _names(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where} must be a list of names")
    return tuple(v.strip() for v in value)


def _build(data: Mapping[str, Any], where: str, base: Taxonomy | None) -> Taxonomy:
    start = base or Taxonomy(name="", groups={})
    # groups: listed groups replace the base's; a category moves to the group naming it
    groups = dict(start.groups)
    listed: dict[str, str] = {}
    for group, members in _table(data, "groups", where).items():
        names = _names(members, f"{where}: [groups] {group}")
        for name in names:
            if key(name) in listed:
                raise ConfigError(
                    f"{where}: category {name!r} is in two groups ({listed[key(name)]} and {group})"
                )
            listed[key(name)] = group
        groups[group] = names
    groups = {g: tuple(c for c in cs if listed.get(key(c), g) == g) for g, cs in groups.items()}
    groups = {g: cs for g, cs in groups.items() if cs}
    cross = dict(start.cross)
    for first, row in _table(data, "cross", where).items():
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: [cross] {first} must be a table of group = value")
        for second, value in row.items():
            for group in (first, second):
                if group not in groups:
                    raise ConfigError(
                        f"{where}: [cross] names group {group!r}, which [groups] does not have"
                    )
            if first == second:
                raise ConfigError(f"{where}: [cross] pairs {first!r} with itself; use same_group")
            cross[frozenset((first, second))] = _unit(value, where, f"cross.{first}.{second}")
    cross = {pair: v for pair, v in cross.items() if pair <= set(groups)}
    categories = {key(c): c for cs in groups.values() for c in cs}
    aliases = {a: c for a, c in start.aliases.items() if key(c) in categories}
    for alias, target in _table(data, "aliases", where).items():
        if not isinstance(target, str) or key(target) not in categories:
            raise ConfigError(
                f"{where}: alias {alias!r} points to {target!r}, which is not a category"
            )
        aliases[key(alias)] = categories[key(target)]
    genders = dict(start.genders) or {g: frozenset({g}) for g in GENDERS}
    for gender, shown in _table(data, "genders", where).items():
        genders[gender] = frozenset(_names(shown, f"{where}: [genders] {gender}"))
    gender_aliases = dict(_BUILT_IN_SPELLINGS) | dict(start.gender_aliases)
    known = {g for g in genders} | {g for gs in genders.values() for g in gs}
    for alias, target in _table(data, "gender_aliases", where).items():
        if target not in known:
            raise ConfigError(
                f"{where}: gender alias {alias!r} points to {target!r}, a gender [genders] "
                "does not name"
            )
        gender_aliases[key(alias)] = target
    same_category = _unit(data.get("same_category", start.same_category), where, "same_category")
    same_group = _unit(data.get("same_group", start.same_group), where, "same_group")
    if not groups:
        raise ConfigError(
            f'{where}: no categories; list them under [groups] (e.g. tops = ["Tees"]), '
            'or start from a built-in taxonomy with extends = "retail"'
        )
    return Taxonomy(
        name=_text(data, "name", where) if "name" in data else start.name or "custom",
        groups=groups,
        same_category=same_category,
        same_group=same_group,
        cross=cross,
        aliases=aliases,
        genders=genders,
        gender_aliases=gender_aliases,
    )


@functools.cache
def built_in(name: str) -> Taxonomy:
    """One of the built-in taxonomies by name; ConfigError listing them otherwise."""
    if name not in BUILT_IN:
        raise ConfigError(f"unknown taxonomy {name!r}; built in: {', '.join(BUILT_IN)}")
    text = resources.files("engine.catalog").joinpath(f"taxonomies/{name}.toml").read_text()
    return Taxonomy.parse(text, f"built-in taxonomy {name}")


def load(spec: str | Path) -> Taxonomy:
    """A built-in taxonomy by name, or a TOML file by path."""
    if str(spec) in BUILT_IN:
        return built_in(str(spec))
    if not Path(spec).exists():
        raise ConfigError(
            f"taxonomy {str(spec)!r} is neither built in ({', '.join(BUILT_IN)}) nor a file"
        )
    return Taxonomy.read(Path(spec))


def deepfashion() -> Taxonomy:
    """The paper's taxonomy: DeepFashion's 17 categories in six groups."""
    return built_in("deepfashion")
