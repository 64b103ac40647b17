"""Vector stores: the interface (base), Qdrant Edge (edge) and a Qdrant server (server)."""

from __future__ import annotations

from engine.settings import Settings
from engine.vectorstore.base import VectorStore

__all__ = ["VectorStore", "open_store"]


def open_store(settings: Settings, wait_s: float = 3.0) -> VectorStore:
    """The server store when a URL is set, else the embedded Edge shard of the home
    (waiting up to wait_s for another process to release it)."""
    if settings.qdrant_url:
        from engine.vectorstore.server import ServerStore

        return ServerStore.connect(settings.qdrant_url)
    from engine.vectorstore.edge import EdgeStore

    return EdgeStore(settings.store_path, wait_s=wait_s)
