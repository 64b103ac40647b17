"""`fashionrec snapshot create|restore`: back up the embedded store and the event log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from cli.common import HomeOption, console, fail, settings

app = typer.Typer(help="Backups of the embedded store and event log.", no_args_is_help=True)


@app.command("create")
def create(
    path: Annotated[Path | None, typer.Argument(help="Archive (.tar.gz) to write.")] = None,
    home: HomeOption = None,
) -> None:
    """Snapshot the store and the log into one archive (written atomically)."""
    from engine.snapshot import create as make

    config = settings(home, None)
    if config.qdrant_url:
        raise fail(
            "a Qdrant server keeps its own snapshots; this command backs up the embedded store"
        )
    target = path or config.home / "snapshots" / f"snapshot-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    manifest = make(config.home, target)
    console.print(
        f"snapshot {target}: {manifest['points']} points, {manifest.get('purchases', 0)} purchases"
    )


@app.command("restore")
def restore(
    path: Annotated[Path, typer.Argument(help="Archive written by `snapshot create`.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace a home that holds data (what it holds is first snapshotted).",
        ),
    ] = False,
    home: HomeOption = None,
) -> None:
    """Replace the store and the log with a snapshot's, after checking it.

    A home that holds data is refused unless --force; with --force, what it holds is
    first written to an automatic snapshot under <home>/snapshots/, whose path is printed.
    """
    from engine.snapshot import restore as load

    config = settings(home, None)
    done = load(path, config.home, force=force)
    if done.replaced is not None:
        console.print(f"what the home held was saved first to {done.replaced}")
    manifest = done.manifest
    taken = manifest.get("created", "at an unknown time")
    console.print(
        f"restored {path} (taken {taken}): {manifest['points']} points, "
        f"{manifest.get('purchases', 0)} purchases"
    )
