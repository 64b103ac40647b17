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
    from engine.vectorstore.snapshot import create as make

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
    home: HomeOption = None,
) -> None:
    """Replace the store and the log with a snapshot's, after checking it."""
    from engine.vectorstore.snapshot import restore as load

    config = settings(home, None)
    manifest = load(path, config.home)
    console.print(
        f"restored {path} (taken {manifest['created']}): {manifest['points']} points, "
        f"{manifest.get('purchases', 0)} purchases"
    )
