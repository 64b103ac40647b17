"""`fashionrec demo`: a synthetic catalog end to end, with real weights wherever they exist."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Final

import typer

from cli.common import console, fail, home_of
from cli.evaluate import evaluate_command
from cli.info import info_command
from cli.ingest import parse_backbones, run_ingest
from cli.recommend import recommend_command
from cli.shoppers import users_show
from engine.settings import EVENT_LOG, STORE_DIR, Settings
from engine.vocabulary.backbones import BACKBONES
from ingest.job import IngestJob
from ingest.options import IngestOptions

DEMO_HOME: Final = Path("demo")  # under the current directory
FALLBACK: Final = "mobilenet_v2"  # the demo's network where none has real weights: the fastest
MARKER: Final = ".fashionrec-demo"  # in a home the demo made: it may run there again
ENVIRONMENT: Final = ("FASHIONREC_HOME", "FASHIONREC_QDRANT_URL", "FASHIONREC_TAXONOMY")

DemoHomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="The demo's own store folder (default ./demo); never $FASHIONREC_HOME's store.",
    ),
]


def demo_home(home: Path | None) -> Path:
    """The demo's home: --home, else ./demo; refused when it holds a store the demo did
    not make (so that no real catalog ever receives the synthetic one)."""
    chosen = (home if home is not None else DEMO_HOME).absolute()
    holds = (chosen / STORE_DIR).exists() or (chosen / EVENT_LOG).exists()
    if holds and not (chosen / MARKER).is_file():
        raise fail(
            f"{chosen} holds a store the demo did not make; the demo runs in a home of its "
            "own: give --home a new or empty folder"
        )
    return chosen


@contextmanager
def isolated(home: Path) -> Iterator[Settings]:
    """Settings of the demo's home alone while the demo runs: FASHIONREC_HOME points at
    it, and no configured Qdrant server or taxonomy applies; the environment is put back
    afterwards."""
    saved = {name: os.environ.get(name) for name in ENVIRONMENT}
    for name in ENVIRONMENT:
        os.environ.pop(name, None)
    os.environ["FASHIONREC_HOME"] = str(home)
    try:
        yield Settings(home=home)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def demo_command(
    backbone: Annotated[
        list[str] | None,
        typer.Option(
            help="Backbones to embed with (default: those with real ImageNet weights on this "
            "machine, else mobilenet_v2 with random-init weights); others run random-init.",
            show_default=False,
        ),
    ] = None,
    products: Annotated[int, typer.Option(help="Products per gender and category.")] = 2,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 2,
    home: DemoHomeOption = None,
) -> None:
    """Synthetic catalog → ingest → shoppers → recommendations → evaluation.

    It runs in a home of its own (./demo, or --home), never in $FASHIONREC_HOME's store
    nor on a configured Qdrant server. Each backbone uses real ImageNet weights where this
    machine has them (`make weights`), random-init weights otherwise, and says which.
    """
    chosen = demo_home(home)
    chosen.mkdir(parents=True, exist_ok=True)
    (chosen / MARKER).write_text("made by `fashionrec demo`\n", encoding="utf-8")
    console.print(
        f"[bold]Demo home[/]: {chosen} (a store of its own; $FASHIONREC_HOME is not touched)"
    )
    with isolated(chosen) as config:
        _run_demo(config, backbone, products, workers)
    console.print(
        f"The demo's store is in {chosen}: explore it with `fashionrec info --home {chosen}`"
    )


def _run_demo(config: Settings, backbone: list[str] | None, products: int, workers: int) -> None:
    from ingest.democatalog import write_demo_catalog
    from ingest.weights import offline_imagenet

    catalog = write_demo_catalog(config.home / "demo-catalog", products_per_category=products)
    console.print(
        f"[bold]Demo catalog[/]: {catalog.count} synthetic photos with segmentation masks "
        f"(23 gender/category pairs, all 17 categories, {products} products each, 3 views) "
        f"in {catalog.images.parent}"
    )
    available = {name: offline_imagenet(name) for name in BACKBONES}
    if backbone:
        names = parse_backbones(backbone)
    else:  # random-init networks embed every photo alike: their figures mean nothing
        names = [n for n, found in available.items() if found] or [FALLBACK]
    real = {name: available[name] for name in names}
    for name, found in real.items():
        missing = "random-init weights (none on this machine; `make weights` imports some)"
        console.print(f"[bold]{name}[/]: " + (f"ImageNet weights ({found})" if found else missing))
    others = [n for n in BACKBONES if n not in names]
    if others and not backbone:
        console.print(
            f"[dim]not embedded: {', '.join(others)} ("
            + ("no real weights here; " if any(not available[n] for n in others) else "")
            + "--backbone NAME adds one)[/]"
        )
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

    from engine.shoppers.simulation import SimulationConfig
    from engine.shoppers.simulations import run_simulation
    from engine.shops.placement import set_shops
    from engine.shops.shops import generate_shops
    from engine.vocabulary.geo import DEFAULT_REGION

    with home_of(config) as app:
        store, log = app.store, app.log
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
    console.print(
        f"[bold]Recommendations[/] for sim-00001 with {names[0]} (top 5 per purchase, then merged):"
    )
    recommend_command(user="sim-00001", space=names[0], home=config.home)
    console.print("[bold]Evaluation[/] (20 simulated users, every ingested backbone):")
    evaluate_command(
        users=20,
        backbones=",".join(names),
        out=config.home / "results",
        name="demo",
        home=config.home,
    )
