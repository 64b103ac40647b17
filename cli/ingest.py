"""`fashionrec ingest`: bulk ingestion of a catalog into the vector store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from cli.common import (
    HomeOption,
    UrlOption,
    console,
    fail,
    settings,
    store_for,
    warn_random_weights,
)
from engine.backbones import BACKBONES
from engine.catalog.items import open_catalog
from engine.catalog.masks import DEFAULT_REMOVED, removed_labels
from engine.settings import Settings
from engine.vectorstore import VectorStore
from ingest.options import IngestOptions


class RateColumn(ProgressColumn):
    """Images per second."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0.0:6.1f} img/s")


def parse_backbones(values: list[str]) -> list[str]:
    """Backbone names from repeated and/or comma-separated flags, validated."""
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKBONES]
    if unknown or not names:
        raise fail(
            f"unknown backbone {', '.join(unknown) or '(none)'}; choose from {', '.join(BACKBONES)}"
        )
    return list(dict.fromkeys(names))


def run_ingest(
    config: Settings,
    path: Path,
    *,
    masks: Path | None = None,
    manifest: bool = False,
    backbones: list[str],
    batch_size: int = 32,
    workers: int = 2,
    device: str = "auto",
    weights: str = "imagenet",
    limit: int | None = None,
    framing: str = "letterbox",
    missing_mask: str = "unmasked",
    remove: str = ",".join(DEFAULT_REMOVED),
    report: Path | None = None,
) -> None:
    """Ingest a catalog and print a summary (shared by `ingest` and `demo`)."""
    options = IngestOptions(
        batch_size=batch_size,
        workers=workers,
        framing=framing,  # type: ignore[arg-type]  # validated here
        missing_mask=missing_mask,  # type: ignore[arg-type]  # validated here
        removed=removed_labels(remove.split(",")),
        limit=limit,
    ).validate()
    catalog = open_catalog(path, masks, manifest)

    from ingest.embedder import Embedder
    from ingest.pipeline import ingest
    from ingest.report import FailureReport

    store = store_for(config)
    try:
        if weights == "random":
            warn_random_weights()
        embedders = {name: Embedder(name, weights, device) for name in backbones}
        first = next(iter(embedders.values()))
        console.print(
            f"Ingesting {catalog.kind} catalog {catalog.path}"
            + (f" (masks: {catalog.masks})" if catalog.masks else "")
            + f" into {store.location}: {', '.join(backbones)} on {first.device} "
            f"({first.precision}), weights {weights}"
        )
        stamp = time.strftime("%Y%m%d-%H%M%S")
        failures = FailureReport(report or config.home / "reports" / f"ingest-{stamp}.csv")
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("planning", total=None)
            try:
                summary = ingest(
                    catalog,
                    store,
                    embedders,
                    options,
                    on_failure=failures,
                    on_stage=lambda stage, n: progress.update(task, description=stage, total=n),
                    on_progress=lambda n: progress.advance(task, n),
                )
            finally:
                failures.close()
        placed = _place_new_items(config, store)
    finally:
        store.close()
    vectors = ", ".join(f"{k} {v}" for k, v in summary.vectors.items()) or "none"
    console.print(
        f"ingested {summary.ingested} · skipped {summary.skipped} "
        f"(already stored {summary.already}, no mask {summary.no_mask_skipped}) · "
        f"failed {summary.failed} · unparsed {summary.unparsed} · "
        f"unmasked {summary.unmasked} · vectors written: {vectors}"
    )
    if failures.count:
        console.print(f"{failures.count} problem(s) written to {failures.path}")
    if placed:
        console.print(f"{placed} new item(s) placed in a store")


def _place_new_items(config: Settings, store: VectorStore) -> int:
    """Give newly ingested items a store when the event log has stores."""
    from engine.shoppers.eventlog import EventLog
    from engine.shoppers.sync import place_items

    if not config.event_log_path.is_file():
        return 0
    log = EventLog(config.event_log_path)
    try:
        return place_items(store, log)
    finally:
        log.close()


def ingest_command(
    path: Annotated[
        Path | None, typer.Argument(help="DF-MM image folder, In-shop tree or manifest CSV.")
    ] = None,
    masks: Annotated[
        Path | None, typer.Option(help="Folder of <item>_segm.png masks (DF-MM: ../segm).")
    ] = None,
    manifest: Annotated[bool, typer.Option("--manifest", help="PATH is a manifest CSV.")] = False,
    backbone: Annotated[
        list[str] | None,
        typer.Option(help="resnet50, densenet121 or vgg16; repeat or comma-separate."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per inference batch.")] = 32,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes for decoding.")] = 2,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    weights: Annotated[
        str, typer.Option(help="imagenet (TORCH_HOME cache), a state-dict PATH, or random.")
    ] = "imagenet",
    limit: Annotated[int | None, typer.Option(help="Ingest at most this many items.")] = None,
    framing: Annotated[
        str, typer.Option(help="letterbox (whole garment) or center-crop (the paper's).")
    ] = "letterbox",
    missing_mask: Annotated[
        str, typer.Option(help="For images without a mask: unmasked, skip or fail.")
    ] = "unmasked",
    remove: Annotated[
        str, typer.Option(help="Mask labels blacked out, comma-separated.")
    ] = ",".join(DEFAULT_REMOVED),
    report: Annotated[
        Path | None, typer.Option(help="Failure report CSV (default under the store folder).")
    ] = None,
    vectors: Annotated[
        Path | None, typer.Option(help="Precomputed vectors (.npy) instead of photos.")
    ] = None,
    payloads: Annotated[
        Path | None, typer.Option(help="Their payloads (.jsonl), one line per vector.")
    ] = None,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Embed a garment catalog and store its vectors; resumable and idempotent."""
    if vectors is not None or payloads is not None:
        if vectors is None or payloads is None or path is not None:
            raise fail("bulk load: give --vectors FILE.npy and --payloads FILE.jsonl, no PATH")
        names = parse_backbones(backbone or ["resnet50"])
        if len(names) != 1:
            raise fail("bulk load: give exactly one --backbone")
        from cli.bulk import load_vectors

        load_vectors(home, qdrant_url, names[0], vectors, payloads)
        return
    if path is None:
        raise fail("give the catalog PATH (or --vectors and --payloads)")
    run_ingest(
        settings(home, qdrant_url),
        path,
        masks=masks,
        manifest=manifest,
        backbones=parse_backbones(backbone or ["resnet50"]),
        batch_size=batch_size,
        workers=workers,
        device=device,
        weights=weights,
        limit=limit,
        framing=framing,
        missing_mask=missing_mask,
        remove=remove,
        report=report,
    )
