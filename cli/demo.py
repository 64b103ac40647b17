"""`fashionrec demo`: a synthetic catalog, ingested end to end with random-init weights."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import HomeOption, console, settings
from cli.info import info_command
from cli.ingest import parse_backbones, run_ingest


def demo_command(
    backbone: Annotated[
        list[str] | None, typer.Option(help="Backbones to embed with (default resnet50).")
    ] = None,
    products: Annotated[int, typer.Option(help="Products per gender and category.")] = 2,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 2,
    home: HomeOption = None,
) -> None:
    """Write a synthetic DF-MM-style catalog, ingest it and show what the store holds."""
    from ingest.democatalog import write_demo_catalog

    config = settings(home, None)
    catalog = write_demo_catalog(config.home / "demo-catalog", products_per_category=products)
    console.print(
        f"[bold]Demo catalog[/]: {catalog.count} synthetic photos with segmentation masks "
        f"(23 gender/category pairs, all 17 categories, {products} products each, 3 views) "
        f"in {catalog.images.parent}"
    )
    run_ingest(
        config,
        catalog.images,
        masks=catalog.masks,
        backbones=parse_backbones(backbone or ["resnet50"]),
        weights="random",
        workers=workers,
    )
    info_command(home=config.home, qdrant_url=None)
