"""`fashionrec taxonomy show|init`: the categories, groups, CatSim and genders in force."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.common import HomeOption, TaxonomyOption, settings

app = typer.Typer(
    help="The catalog's taxonomy: categories, groups, CatSim values, genders.",
    no_args_is_help=True,
)


@app.command("show")
def show(taxonomy: TaxonomyOption = None, home: HomeOption = None) -> None:
    """Print the taxonomy in force as TOML (the one recorded at ingest, unless told)."""
    from engine.application import taxonomy_in_force
    from engine.events.eventlog import EventLog

    config = settings(home, None, taxonomy)
    log = EventLog(config.event_log)
    try:
        sys.stdout.write(taxonomy_in_force(config, log).to_toml())
    finally:
        log.close()


@app.command("init")
def init(
    catalog: Annotated[Path, typer.Option("--from", help="Catalog: folder or manifest CSV.")],
    taxonomy: TaxonomyOption = None,
) -> None:
    """Write a starting taxonomy for a catalog to standard output: the base one (the
    catalog kind's default unless --taxonomy), with the catalog's categories it does not
    know each in a group of its own, to be placed by hand."""
    from engine.catalog.sources import open_catalog, survey
    from engine.catalog.taxonomy import load

    found_catalog = open_catalog(catalog, taxonomy=load(taxonomy) if taxonomy else None)
    base = found_catalog.naming.taxonomy
    found = survey(found_catalog)
    placed = {c: n for c, n in found.categories.items() if c not in found.new_categories}
    lines = [
        f"# A taxonomy for {catalog}, starting from {base.name!r}.",
        f"# {len(placed)} of the catalog's {len(found.categories)} categories are placed by "
        "name or alias:",
        *(f"#   {c} ({n} items) -> group {base.group_of(c)}" for c, n in sorted(placed.items())),
    ]
    if found.new_categories:
        lines += [
            f"# {len(found.new_categories)} are new: each is a group of its own below. Move "
            "each into a group",
            "# (or add an alias to a category), then use this file: "
            "`fashionrec ingest ... --taxonomy FILE`.",
        ]
    text = base.with_categories(found.new_categories).to_toml()
    text = text.replace(f'name = "{base.name}"', f'name = "{catalog.stem or base.name}"', 1)
    sys.stdout.write("\n".join(lines) + "\n" + text)
