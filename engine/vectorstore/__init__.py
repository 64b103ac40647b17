"""Vector stores: the interface (base), Qdrant Edge (edge) and a Qdrant server (server)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import StoreLockedError
from engine.settings import SERVE_FILE, STORE_DIR, Settings
from engine.vectorstore.base import VectorStore

if TYPE_CHECKING:
    from engine.vectorstore.edge import EdgeStore

__all__ = ["VectorStore", "open_edge", "open_store"]


def open_store(settings: Settings, wait_s: float = 3.0) -> VectorStore:
    """The server store when a URL is set, else the embedded Edge shard of the home
    (waiting up to wait_s for another process to release it; when a running
    `fashionrec serve` holds it, the error names the server)."""
    if settings.qdrant_url:
        from engine.vectorstore.server import ServerStore

        return ServerStore.connect(settings.qdrant_url, api_key=settings.qdrant_api_key)
    return open_edge(settings.home, wait_s)


def open_edge(home: Path, wait_s: float = 0.0) -> EdgeStore:
    """The embedded store of a home (waiting up to wait_s for another process to release
    it). While a `fashionrec serve` runs on it, the error names the server: its workers
    open the store only to write, so the lock alone would not tell."""
    import os

    from engine.vectorstore.edge import EdgeStore
    from engine.vectorstore.holder import read_holder

    holder = read_holder(home / SERVE_FILE)
    if holder is not None and holder.pid != os.getpid():
        raise StoreLockedError(
            f"the store at {home / STORE_DIR} is held by `fashionrec serve` at "
            f"{holder.url} (pid {holder.pid}); use its API (ingest, items and purchases take "
            f"--api {holder.url}), or stop it"
        )
    return EdgeStore(home / STORE_DIR, wait_s=wait_s)
