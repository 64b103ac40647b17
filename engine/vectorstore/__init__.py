"""Vector stores: the interface (base), Qdrant Edge (edge) and a Qdrant server (server)."""

from __future__ import annotations

from engine.errors import StoreLockedError
from engine.settings import Settings
from engine.vectorstore.base import VectorStore

__all__ = ["VectorStore", "open_store"]


def open_store(settings: Settings, wait_s: float = 3.0) -> VectorStore:
    """The server store when a URL is set, else the embedded Edge shard of the home
    (waiting up to wait_s for another process to release it; when a running
    `fashionrec serve` holds it, the error names the server)."""
    if settings.qdrant_url:
        from engine.vectorstore.server import ServerStore

        return ServerStore.connect(settings.qdrant_url)
    from engine.vectorstore.edge import EdgeStore
    from engine.vectorstore.holder import read_holder

    try:
        return EdgeStore(settings.store_path, wait_s=wait_s)
    except StoreLockedError:
        holder = read_holder(settings.serve_file)
        if holder is None:
            raise
        raise StoreLockedError(
            f"the store at {settings.store_path} is held by `fashionrec serve` at "
            f"{holder.url} (pid {holder.pid}); use its API, or stop it"
        ) from None
