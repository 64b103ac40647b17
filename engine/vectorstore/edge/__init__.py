"""Qdrant Edge back-end: Qdrant's engine in-process, one shard on local disk (store), its
folder's lock (lock), the engine's queries in its terms (translate)."""

from engine.vectorstore.edge.lock import LOCK_FILE
from engine.vectorstore.edge.store import CONFIG_FILE, EdgeStore

__all__ = ["CONFIG_FILE", "LOCK_FILE", "EdgeStore"]
