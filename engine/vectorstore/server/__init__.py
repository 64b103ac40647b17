"""Qdrant server back-end through qdrant-client: the store, the engine's queries in its terms
(translate), and its failures in one line (failures)."""

from engine.vectorstore.server.store import ServerStore

__all__ = ["ServerStore"]
