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
    home_of,
    settings,
    store_for,
)
from engine.errors import ShopsError
from engine.settings import Settings
from engine.vocabulary.records import Shop
from engine.vocabulary.schema import CATEGORY


def export_command(
    backbone: Annotated[str, typer.Option(help="Whose vectors to export.")],
    out: Annotated[
        Path, typer.Option(help="Folder for vectors.npy, payloads.jsonl and stores.csv.")
    ],
    home: HomeOption = None,
    qdrant_url: UrlOption = None,
) -> None:
    """Export one backbone's vectors and payloads, and the shops, to load elsewhere with
    `ingest --vectors` (which restores the shops from stores.csv beside the payloads)."""
    from engine.shops.shops import write_shops
    from engine.vectorstore.transfer import PAYLOADS, STORES, VECTORS, export_points

    config = settings(home, qdrant_url)
    shops = _home_shops(config)
    store = store_for(config)
    try:
        count = export_points(store, backbone, out)
    finally:
        store.close()
    stores = out / STORES
    if shops:
        write_shops(shops, stores)
        carried = f"; {len(shops)} shop(s) to {stores}"
    else:
        stores.unlink(missing_ok=True)  # an earlier export's shops are not these
        carried = "; this home has no shops, so none were exported"
    console.print(
        f"{count} {backbone} vector(s) written to {out / VECTORS} and {out / PAYLOADS}{carried}"
    )


def _home_shops(config: Settings) -> list[Shop]:
    """The home's shops, read without creating an event log where there is none."""
    from engine.events.eventlog import EventLog

    if not config.has_event_log:
        return []
    log = EventLog(config.event_log)
    try:
        return log.shops()
    finally:
        log.close()


def _stores_to_add(config: Settings, payloads: Path) -> tuple[list[Shop], Path]:
    """The shops a load must add for its payloads' shop ids: from stores.csv beside the
    payloads. Raises ShopsError, before anything is written, naming what is missing."""
    from engine.shops.shops import read_shops
    from engine.vectorstore.transfer import STORES, store_ids

    stores = payloads.parent / STORES
    known = {s.id for s in _home_shops(config)}
    missing = sorted(store_ids(payloads) - known)
    if not missing:
        return [], stores
    shown = ", ".join(missing[:5]) + (", …" if len(missing) > 5 else "")
    if not stores.is_file():
        raise ShopsError(
            f"{payloads} names shop(s) {shown} that {config.home} does not know and there "
            f"is no {stores} beside it; import them first (`fashionrec shops import FILE`) "
            "or put the export's stores.csv beside the payloads"
        )
    offered = read_shops(stores)
    lacking = sorted(set(missing) - {s.id for s in offered})
    if lacking:
        raise ShopsError(
            f"{payloads} names shop(s) {', '.join(lacking[:5])} that neither "
            f"{config.home} nor {stores} knows; add them to {stores} and load again"
        )
    return [s for s in offered if s.id not in known], stores


def load_vectors(config: Settings, backbone: str, vectors: Path, payloads: Path) -> None:
    """`ingest --vectors --payloads`: precomputed embeddings into the store, named by the
    taxonomy asked for or recorded (DeepFashion's by default), which is then recorded.

    The shops the payloads name come from stores.csv beside them (what `export`
    writes) when the home lacks them; a shop named nowhere stops the load before it
    writes anything. Loaded items without a store are placed in the home's stores, and
    projected into the home's compact spaces derived from the backbone."""
    from engine.catalog.items import Naming
    from engine.shops.placement import place_items
    from engine.spaces.build import update_spaces
    from engine.vectorstore.transfer import load_points
    from engine.vocabulary.geo import Region

    added, source = _stores_to_add(config, payloads)
    with home_of(config) as app:
        store, log = app.store, app.log
        naming = Naming(app.taxonomy)
        written, already = load_points(store, backbone, vectors, payloads, naming=naming)
        log.set_taxonomy(naming.taxonomy.with_categories(store.facet(CATEGORY)))
        if added:
            before = log.shops()
            shops = [*before, *added]
            region = (log.region() if before else None) or Region.around(
                [s.location for s in shops]
            )
            log.replace_shops(shops, region, int(log.get("assign_seed") or 42))
        placed = place_items(store, log)
        projected = update_spaces(store, config.home, [backbone])
        if placed or projected:
            store.optimize()  # the writes moved points out of the indexed segments
    console.print(f"loaded {written} {backbone} vector(s); {already} were already stored")
    for space, count in projected.items():
        console.print(f"{count} item(s) projected into {space}")
    if added:
        ids = ", ".join(s.id for s in added)
        console.print(f"{len(added)} shop(s) added from {source}: {ids}")
    if placed:
        console.print(f"{placed} item(s) placed in a shop")


def migrate_command(
    to: Annotated[
        str | None, typer.Option("--to", help="URL of the Qdrant server or cluster.")
    ] = None,
    events_to: Annotated[
        str | None,
        typer.Option(
            "--events-to",
            help="postgresql://… URL: copy the home's event log (SQLite) into this empty "
            "PostgreSQL database.",
        ),
    ] = None,
    collection: Annotated[str, typer.Option(help="Collection on the server.")] = "fashionrec",
    shards: Annotated[int | None, typer.Option(help="Shards (default: one per peer).")] = None,
    replicas: Annotated[int | None, typer.Option(help="Replicas per shard (cluster: 2).")] = None,
    home: HomeOption = None,
) -> None:
    """Copy the embedded store (every vector and payload) into a Qdrant server or cluster
    (--to), and/or the event log into PostgreSQL (--events-to)."""
    if to is None and events_to is None:
        raise fail("say where to: --to QDRANT_URL (the vectors) and/or --events-to URL (the log)")
    config = settings(home, None)
    if events_to is not None:
        _migrate_events(config, events_to)
    if to is not None:
        _migrate_points(config, to, collection, shards, replicas)


def _migrate_events(config: Settings, url: str) -> None:
    from engine.events.database import is_url, shown_url
    from engine.events.eventlog import EventLog
    from engine.events.logcopy import copy_log
    from engine.settings import EVENTS_URL_ENV

    if not is_url(url):
        raise fail(f"--events-to {url!r}: give a postgresql://user:password@host/database URL")
    if not config.event_log_path.is_file():
        raise fail(f"no event log at {config.event_log_path} to migrate")
    source = EventLog(config.event_log_path)
    try:
        target = EventLog(url)
        try:
            copied = copy_log(source, target)
        finally:
            target.close()
    finally:
        source.close()
    summary = ", ".join(f"{table} {count}" for table, count in copied.items())
    console.print(f"event log copied to {shown_url(url)}: {summary} row(s)", soft_wrap=True)
    console.print(f"use it with: export {EVENTS_URL_ENV}=<the URL>", soft_wrap=True)


def _migrate_points(
    config: Settings, to: str, collection: str, shards: int | None, replicas: int | None
) -> None:
    from engine.vectorstore import open_edge
    from engine.vectorstore.server import ServerStore
    from engine.vectorstore.transfer import copy_points

    source = open_edge(config.home)
    if not source.exists:
        source.close()
        raise fail(f"no embedded store at {config.store_path} to migrate")
    try:
        target = ServerStore.connect(
            to, collection, shards=shards, replicas=replicas, api_key=config.qdrant_api_key
        )
        try:
            copied = copy_points(source, target)
        finally:
            target.close()
    finally:
        source.close()
    summary = ", ".join(f"{name} {count}" for name, count in copied.items())
    console.print(f"migrated to {collection} on {to}: {summary} point(s) per vector")
    console.print(f"use it with: export FASHIONREC_QDRANT_URL={to}")
