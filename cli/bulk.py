"""`fashionrec export` and `fashionrec migrate`: move vectors between machines and stores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    HomeOption,
    UrlOption,
    console,
    fail,
    settings,
    store_for,
    taxonomy_for,
    world,
)
from engine.schema import CATEGORY
from engine.settings import Settings


def export_command(
    backbone: Annotated[str, typer.Option(help="Whose vectors to export.")],
    out: Annotated[Path, typer.Option(help="Folder for vectors.npy and payloads.jsonl.")],
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Export one backbone's vectors and payloads, to load elsewhere with `ingest --vectors`."""
    from engine.vectorstore.transfer import PAYLOADS, VECTORS, export_points

    store = store_for(settings(home, qdrant_url))
    try:
        count = export_points(store, backbone, out)
    finally:
        store.close()
    console.print(f"{count} {backbone} vector(s) written to {out / VECTORS} and {out / PAYLOADS}")


def load_vectors(config: Settings, backbone: str, vectors: Path, payloads: Path) -> None:
    """`ingest --vectors --payloads`: precomputed embeddings into the store, named by the
    taxonomy asked for or recorded (DeepFashion's by default), which is then recorded."""
    from engine.catalog.items import Naming
    from engine.vectorstore.transfer import load_points

    with world(config) as (store, log):
        naming = Naming(taxonomy_for(config, log))
        written, already = load_points(store, backbone, vectors, payloads, naming=naming)
        log.set_taxonomy(naming.taxonomy.with_categories(store.facet(CATEGORY)))
    console.print(f"loaded {written} {backbone} vector(s); {already} were already stored")


def migrate_command(
    to: Annotated[str, typer.Option("--to", help="URL of the Qdrant server or cluster.")],
    collection: Annotated[str, typer.Option(help="Collection on the server.")] = "fashionrec",
    shards: Annotated[int | None, typer.Option(help="Shards (default: one per peer).")] = None,
    replicas: Annotated[int | None, typer.Option(help="Replicas per shard (cluster: 2).")] = None,
    home: HomeOption = None,
) -> None:
    """Copy the embedded store (every vector and payload) into a Qdrant server or cluster."""
    from engine.vectorstore import open_edge
    from engine.vectorstore.server import ServerStore
    from engine.vectorstore.transfer import copy_points

    config = settings(home, None)
    source = open_edge(config.home)
    if not source.exists:
        source.close()
        raise fail(f"no embedded store at {config.store_path} to migrate")
    try:
        target = ServerStore.connect(to, collection, shards=shards, replicas=replicas)
        try:
            copied = copy_points(source, target)
        finally:
            target.close()
    finally:
        source.close()
    summary = ", ".join(f"{name} {count}" for name, count in copied.items())
    console.print(f"migrated to {collection} on {to}: {summary} point(s) per vector")
    console.print(f"use it with: export FASHIONREC_QDRANT_URL={to}")
