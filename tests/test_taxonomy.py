"""Taxonomies: the built-in ones (known answers), TOML files and their errors, aliases,
gender compatibility, and categories a catalog brings that no taxonomy knows."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from engine.catalog.items import Naming, Rejected
from engine.catalog.taxonomy import Taxonomy, built_in, deepfashion, key, load
from engine.errors import CatalogError, ConfigError

SHARED = Path(__file__).parents[2] / "shared" / "data" / "fashion-products"


def test_the_papers_category_matrix() -> None:
    paper = deepfashion()
    assert paper("Dresses", "Dresses") == 1.0
    assert paper("Dresses", "Skirts") == 0.8
    assert paper("Tees_Tanks", "Sweaters") == 0.4  # A–E
    assert paper("Denim", "Suiting") == 0.2  # B–F
    assert paper("Suiting", "Denim") == 0.2  # symmetric
    assert paper("Dresses", "Jackets_Coats") == 0.1  # C–D
    assert len(paper.categories) == 17 and len(paper.groups) == 6


def test_a_file_extends_a_built_in_one(tmp_path: Path) -> None:
    path = tmp_path / "catsim.toml"
    path.write_text(
        'extends = "deepfashion"\nsame_group = 0.5\n[cross]\nA = { B = 0.9 }\n', encoding="utf-8"
    )
    matrix = load(path)
    assert matrix("Dresses", "Skirts") == 0.5
    assert matrix("Tees_Tanks", "Denim") == 0.9
    assert matrix("Tees_Tanks", "Suiting") == 0.2  # the base's value stays
    assert matrix("Leggings", "Dresses") == 0.1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("same_categroy = 1.0\n", r"unknown key\(s\) same_categroy; known: name, extends"),
        ('extends = "deepfashion"\n[cross]\nA = { Z = 0.3 }\n', "names group 'Z'"),
        ('extends = "deepfashion"\n[cross]\nA = { A = 0.3 }\n', "pairs 'A' with itself"),
        ("same_group = 2\n", r"same_group must be a number in \[0, 1\]"),
        ('extends = "nope"\n', "unknown taxonomy 'nope'; built in: deepfashion, retail"),
        ('[groups]\na = ["X"]\nb = ["x"]\n', "category 'x' is in two groups"),
        ('[groups]\na = ["X"]\n[aliases]\nY = "Z"\n', "alias 'Y' points to 'Z'"),
        ('[groups]\na = ["X"]\n[gender_aliases]\nhe = "MAN"\n', "gender alias 'he'"),
        ("[groups\n", "not TOML"),
    ],
)
def test_file_errors_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as info:
        load(path)
    assert str(path) in str(info.value) or "unknown taxonomy" in str(info.value)


def test_round_trip_through_toml() -> None:
    for name in ("deepfashion", "retail"):
        taxonomy = built_in(name)
        assert Taxonomy.parse(taxonomy.to_toml(), "again") == taxonomy


def test_names_match_ignoring_case_and_separators() -> None:
    retail = built_in("retail")
    assert key("Casual Shoes") == key("casual_shoes") == key("CASUAL-SHOES")
    for raw in ("Casual Shoes", "casual_shoes", "casual shoes"):
        assert retail.category(raw) == "Casual Shoes"
    assert retail.category("T-Shirt") == "Tshirts"  # an alias
    assert retail.category("Tees_Tanks") == "Tshirts"  # DeepFashion's name, as an alias
    assert retail.category("Spacesuits") is None
    assert retail("Casual Shoes", "Sandals") > retail("Casual Shoes", "Shirts")
    assert retail("Handbags", "Handbags") == 1.0


def test_genders_and_what_each_is_shown() -> None:
    retail = built_in("retail")
    spellings = {"Men": "MEN", "male": "MEN", "Women": "WOMEN", "Ladies": "WOMEN",
                 "Unisex": "UNISEX", "Boys": "BOYS", "Girls": "GIRLS"}  # fmt: skip
    for raw, gender in spellings.items():
        assert retail.gender(raw) == gender
    assert retail.gender("robot") is None
    assert retail.shown_to("MEN") == {"MEN", "UNISEX"}
    assert retail.shown_to("WOMEN") == {"WOMEN", "UNISEX"}
    assert retail.shown_to("BOYS") == {"BOYS"} and retail.shown_to("GIRLS") == {"GIRLS"}


def test_unknown_category_policies() -> None:
    accept, skip, fail = (Naming(built_in("retail"), u) for u in ("accept", "skip", "fail"))
    assert accept.category(" Spacesuits ", "row 2") == "Spacesuits"
    with pytest.raises(Rejected, match="unknown category 'Spacesuits'"):
        skip.category("Spacesuits", "row 2")
    with pytest.raises(CatalogError, match="row 2: unknown category 'Spacesuits'"):
        fail.category("Spacesuits", "row 2")
    assert fail.category("casual shoes", "row 3") == "Casual Shoes"
    grown = accept.taxonomy.with_categories(["Spacesuits", "Tshirts"])
    assert grown.group_of("Spacesuits") == "Spacesuits"  # a group of its own
    assert grown("Spacesuits", "Spacesuits") == 1.0 and grown("Spacesuits", "Tshirts") == 0.0
    assert grown.categories == (*sorted([*accept.taxonomy.categories, "Spacesuits"]),)


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared real catalog is not on this machine")
def test_every_article_type_and_gender_of_the_real_catalog_maps() -> None:
    retail = built_in("retail")
    with (SHARED / "labels.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["articleType"] for r in rows if retail.category(r["articleType"]) is None} == set()
    assert {retail.gender(r["gender"]) for r in rows} == {"MEN", "WOMEN", "UNISEX", "BOYS", "GIRLS"}


def test_the_readme_example_file_reads_as_documented() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    shop = Taxonomy.parse(example, "README")
    assert shop.name == "my-shop" and shop.category("bathing suit") == "Swimsuits"
    assert shop("Swimsuits", "Bikinis") == 0.8 and shop("Swimsuits", "Dresses") == 0.3
    assert shop("Tshirts", "Shirts") == 0.8  # the retail base stays
    assert shop.gender("Kids") == "KIDS" and shop.shown_to("BOYS") == {"BOYS", "KIDS"}
