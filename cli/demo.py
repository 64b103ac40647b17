"""`fashionrec demo`: a synthetic catalog end to end, with real weights wherever they exist."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import HomeOption, console, settings, world
from cli.evaluate import evaluate_command
from cli.info import info_command
from cli.ingest import parse_backbones, run_ingest
from cli.recommend import recommend_command
from cli.shoppers import users_show
from engine.backbones import BACKBONES
from ingest.options import IngestJob, IngestOptions


def demo_command(
    backbone: Annotated[
        list[str] | None, typer.Option(help="Backbones to embed with (default: all four).")
    ] = None,
    products: Annotated[int, typer.Option(help="Products per gender and category.")] = 2,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 2,
    home: HomeOption = None,
) -> None:
    """Synthetic catalog → ingest → shoppers → recommendations → evaluation.

    Each backbone uses real ImageNet weights where this machine has them (`make weights`),
    random-init weights otherwise, and says which.
    """
    from ingest.democatalog import write_demo_catalog
    from ingest.weights import offline_imagenet

    config = settings(home, None)
    catalog = write_demo_catalog(config.home / "demo-catalog", products_per_category=products)
    console.print(
        f"[bold]Demo catalog[/]: {catalog.count} synthetic photos with segmentation masks "
        f"(23 gender/category pairs, all 17 categories, {products} products each, 3 views) "
        f"in {catalog.images.parent}"
    )
    names = parse_backbones(backbone or list(BACKBONES))
    real = {name: offline_imagenet(name) for name in names}
    for name, found in real.items():
        missing = "random-init weights (none on this machine; `make weights` imports some)"
        console.print(f"[bold]{name}[/]: " + (f"ImageNet weights ({found})" if found else missing))
    for weights in ("imagenet", "random"):
        chosen = [n for n in names if bool(real[n]) == (weights == "imagenet")]
        if chosen:
            job = IngestJob(
                catalog.images,
                tuple(chosen),
                masks=catalog.masks,
                weights=weights,
                options=IngestOptions(workers=workers),
            )
            run_ingest(config, job)
    info_command(home=config.home, qdrant_url=None)

    from engine.geo import DEFAULT_REGION
    from engine.shoppers.shops import generate_shops
    from engine.shoppers.simulation import SimulationConfig
    from engine.shoppers.sync import run_simulation, set_shops

    with world(config) as (store, log):
        shops = generate_shops(5, DEFAULT_REGION, seed=42)
        placed = set_shops(store, log, shops, DEFAULT_REGION, seed=42)
        console.print(
            f"[bold]Stores[/]: {len(shops)} in Greater Paris; {placed} item(s) placed "
            "(per-category round-robin)"
        )
        if log.purchase_count():
            console.print("[bold]Shoppers[/]: already simulated (the log has purchases)")
        else:
            result = run_simulation(store, log, SimulationConfig())
            console.print(
                f"[bold]Shoppers[/]: {len(result.users)} simulated users, "
                f"{len(result.purchases)} purchases over 2025; popularity synced"
            )
        low, high = log.popularity_range()
        console.print(f"popularity range over the catalog: {low}..{high}")
    users_show("sim-00001", home=config.home, qdrant_url=None)
    console.print("[bold]Recommendations[/] for sim-00001 (top 5 per purchase, then merged):")
    recommend_command(user="sim-00001", home=config.home)
    console.print("[bold]Evaluation[/] (20 simulated users, every ingested backbone):")
    evaluate_command(
        users=20,
        backbones=",".join(names),
        out=config.home / "results",
        name="demo",
        home=config.home,
    )
