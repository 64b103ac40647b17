"""Vector stores: the interface (base), Qdrant Edge (edge) and a Qdrant server (server)."""

from __future__ import annotations

from pathlib import Path

from engine.vectorstore.base import VectorStore

__all__ = ["VectorStore", "open_store"]


def open_store(home: Path, qdrant_url: str | None = None, wait_s: float = 3.0) -> VectorStore:
    """The server store when a URL is given, else the embedded Edge shard under home
    (waiting up to wait_s for another process to release it)."""
    if qdrant_url:
        from engine.vectorstore.server import ServerStore

        return ServerStore.connect(qdrant_url)
    from engine.vectorstore.edge import EdgeStore

    return EdgeStore(home / "store", wait_s=wait_s)
