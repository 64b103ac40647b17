"""`fashionrec ingest`: bulk ingestion of a catalog into the vector store."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    Progress,
    ProgressColumn,
    Task,
)
from rich.text import Text

from cli.common import (
    ApiOption,
    HomeOption,
    TaxonomyOption,
    UrlOption,
    bulk_progress,
    console,
    fail,
    home_of,
    interrupted,
    settings,
    warn_random_weights,
)
from engine.catalog.framing import Framing
from engine.catalog.items import UnknownCategory
from engine.catalog.masks import DEFAULT_REMOVED, MissingMask, removed_labels
from engine.helpers import one_of
from engine.settings import Settings
from engine.vocabulary.backbones import BACKBONES
from ingest.job import IngestJob
from ingest.options import IngestOptions
from ingest.outcome import Outcome


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


def note(text: str) -> None:
    """A line from the embedder while it chooses its runtime (the choice itself plain)."""
    if text.startswith("WARNING"):
        console.print(Text(text, style="bold yellow"))
    else:
        console.print(Text(text, style="" if text.startswith("runtime:") else "dim"))


INCOMPLETE = 3  # exit code: the run finished, but some items of the catalog were not stored


def progress_bar() -> Progress:
    """The bar of an ingest: stage, items done of the total, images/s, time left."""
    return bulk_progress(RateColumn())


def run_ingest(config: Settings, job: IngestJob, report: Path | None = None) -> bool:
    """Ingest a catalog and print a summary (shared by `ingest` and `demo`); returns whether
    every item of the catalog (up to --limit) is stored.

    Everything that can be checked without a CNN is checked first (ingest.runs.check_job):
    a bad catalog stops in a moment and leaves no store behind. A run that could store no
    item at all into a home it created removes that home and ends in one line with the
    commonest reason (exit 1).
    """
    from ingest.runs import Ingester, check_job, report_path

    created = not config.home.exists()
    checked = check_job(config, job)
    if job.weights == "random":
        warn_random_weights()
    with home_of(config) as app:
        ingester = Ingester(app, on_note=note)
        embedders = ingester.embedders(job)
        console.print(ingester.header(checked, embedders), soft_wrap=True)
        try:
            with progress_bar() as progress:
                task = progress.add_task("planning", total=None)
                outcome = ingester.run(
                    checked,
                    embedders,
                    report or report_path(config),
                    on_stage=lambda stage, n: progress.update(task, description=stage, total=n),
                    on_progress=lambda n: progress.advance(task, n),
                )
        except KeyboardInterrupt:
            # every batch written stays; a rerun skips the items that hold their vectors
            raise interrupted("interrupted; run the same command again to resume") from None
        empty = outcome.summary.ingested == 0 and app.store.count() == 0
    if empty and outcome.not_stored:
        if created:
            shutil.rmtree(config.home, ignore_errors=True)
        console.print(f"[bold yellow]{outcome.not_stored} item(s) not stored[/]:")
        for line, first in zip(outcome.reasons, outcome.examples, strict=False):
            console.print(Text(f"  {line}, the first: {first}"))
        kept = f"; every row is listed in {report}" if report is not None else ""
        raise fail(
            f"no item of {job.path} could be stored ({outcome.not_stored} item(s); the "
            "reasons are above: fix them and run again)"
            + ("; nothing was kept" if created else "")
            + kept
        )
    print_outcome(outcome)
    return outcome.not_stored == 0


def print_outcome(outcome: Outcome) -> None:
    """The summary of a run: counts, new categories, why items were not stored, placement."""
    summary = outcome.summary
    vectors = (
        ", ".join(
            f"{k} {v}" + (f" ({summary.runtimes[k]})" if k in summary.runtimes else "")
            for k, v in summary.vectors.items()
        )
        or "none"
    )
    console.print(
        f"ingested {summary.ingested} · skipped {summary.skipped} "
        f"(already stored {summary.already}, no mask {summary.no_mask_skipped}) · "
        f"failed {summary.failed} · unparsed {summary.unparsed} · "
        f"unmasked {summary.unmasked} · vectors written: {vectors}"
        + (f" · colours added to {summary.recoloured} stored item(s)" if summary.recoloured else "")
    )
    if outcome.new_categories:
        listed = ", ".join(f"{c} {n}" for c, n in outcome.new_categories.items())
        console.print(
            f"new categories (not in taxonomy {outcome.taxonomy}; each a group of its own): "
            f"{listed}"
        )
    if outcome.not_stored:
        console.print(f"[bold yellow]{outcome.not_stored} item(s) not stored[/]:")
        for line in outcome.reasons:
            console.print(f"  {line}")
        console.print(f"every one is listed in {outcome.report}")
    if outcome.placed:
        console.print(f"{outcome.placed} new item(s) placed in a shop")


def remote_ingest(url: str, job: IngestJob, report: Path | None) -> bool:
    """Run an ingest inside the service and follow it with a progress bar; returns whether
    every item of the catalog is stored (as `run_ingest`)."""
    from cli.remote import Remote, follow_ingest

    if report is not None:
        raise fail("with --api the service writes the failure report under its home; drop --report")
    shown = False
    run: dict[str, Any] = {}
    try:
        with progress_bar() as progress:
            task = progress.add_task("checking the catalog", total=None)
            for run in follow_ingest(Remote(url), job):
                if run["header"] and not shown:
                    _started(run)
                    shown = True
                progress.update(
                    task, description=str(run["stage"]), total=run["total"], completed=run["done"]
                )
    except KeyboardInterrupt:
        where = f" ({url}{run['url']} follows it)" if run else ""
        raise interrupted(f"interrupted; the ingest goes on in the service{where}") from None
    if run["state"] == "failed":
        raise fail(f"{url}: {run['error']}")
    outcome = Outcome.from_json(run["outcome"])
    print_outcome(outcome)
    return outcome.not_stored == 0


def _started(run: dict[str, Any]) -> None:
    """What a local run prints once its checks pass: the warning, then the header."""
    if run["weights"] == "random":
        warn_random_weights()
    console.print(run["header"], soft_wrap=True)


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
        typer.Option(help=f"{', '.join(BACKBONES)}; repeat or comma-separate."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per inference batch.")] = 32,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes for decoding.")] = 2,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    weights: Annotated[
        str, typer.Option(help="imagenet (TORCH_HOME cache), a state-dict PATH, or random.")
    ] = "imagenet",
    limit: Annotated[int | None, typer.Option(help="Ingest at most this many items.")] = None,
    pooling: Annotated[
        str,
        typer.Option(
            help="Of the last convolutional map: avg, gem (generalised mean, p 3), or auto "
            "(the store's pooling of the backbone, else gem; vgg16's fc7: avg only)."
        ),
    ] = "auto",
    runtime: Annotated[
        str,
        typer.Option(
            help="Where the CNN runs: torch, onnxruntime, openvino (CPU), or auto (fastest "
            "measured on this machine among settings that keep the neighbours)."
        ),
    ] = "auto",
    precision: Annotated[
        str,
        typer.Option(
            help="fp32, bf16 (torch), int8 (calibrated on the catalog), or auto (the store's, "
            "else by measurement)."
        ),
    ] = "auto",
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
    taxonomy: TaxonomyOption = None,
    unknown_category: Annotated[
        str,
        typer.Option(help="A category the taxonomy lacks: accept (its own group), skip, or fail."),
    ] = "accept",
    root: Annotated[
        Path | None,
        typer.Option(help="Manifests: a folder images may come from besides the manifest's."),
    ] = None,
    api: ApiOption = None,
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Embed a garment catalog and store its vectors; resumable and idempotent.

    Exit code 0 when every item of the catalog is stored, 3 when the run finished but
    some were not (the summary says which and why), 1 when a mistake stops it.
    """
    if vectors is not None or payloads is not None:
        if vectors is None or payloads is None or path is not None:
            raise fail("bulk load: give --vectors FILE.npy and --payloads FILE.jsonl, no PATH")
        names = parse_backbones(backbone or ["resnet50"])
        if len(names) != 1:
            raise fail("bulk load: give exactly one --backbone")
        from cli.bulk import load_vectors

        load_vectors(settings(home, qdrant_url, taxonomy), names[0], vectors, payloads)
        return
    if path is None:
        raise fail("give the catalog PATH (or --vectors and --payloads)")
    job = IngestJob(
        path=path,
        backbones=tuple(parse_backbones(backbone or ["resnet50"])),
        masks=masks,
        manifest=manifest,
        weights=weights,
        device=device,
        options=IngestOptions(
            batch_size=batch_size,
            workers=workers,
            framing=one_of(Framing, framing, "--framing"),
            missing_mask=one_of(MissingMask, missing_mask, "--missing-mask"),
            removed=removed_labels(remove.split(",")),
            limit=limit,
        ),
        unknown_category=one_of(UnknownCategory, unknown_category, "--unknown-category"),
        root=root,
        pooling=pooling,
        runtime=runtime,
        precision=precision,
    ).validate()
    if api is not None:
        given = [
            f
            for f, v in (("--taxonomy", taxonomy), ("--home", home), ("--qdrant-url", qdrant_url))
            if v
        ]
        if given:
            raise fail(
                f"{', '.join(given)} with --api: the service's own settings apply (start "
                "`fashionrec serve` with them)"
            )

        complete = remote_ingest(api, job, report)
    else:
        complete = run_ingest(settings(home, qdrant_url, taxonomy), job, report)
    if not complete:
        raise typer.Exit(INCOMPLETE)
