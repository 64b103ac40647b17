"""The application: one home held open (engine/application/base.py) with every use-case the
command line and the service call (the catalog's, the recommendations', the shoppers').
Each answers a document (engine/application/documents.py) that either face renders;
neither face computes anything of its own."""

from __future__ import annotations

import logging
from types import TracebackType

from engine.application.base import PhotoNetworks
from engine.application.catalog import CatalogUses
from engine.application.ranking import RankingUses
from engine.application.shoppers import ShopperUses
from engine.application.tuning import TuningUses
from engine.catalog.taxonomy import Taxonomy, deepfashion, load
from engine.errors import StoreError, one_line
from engine.events.database import BUSY_S, SERVING_BUSY_S
from engine.events.eventlog import EventLog
from engine.popularity.upkeep import Marks, popularity_in_step
from engine.settings import Settings
from engine.vectorstore import open_store
from engine.vectorstore.base import VectorStore

logger = logging.getLogger("fashionrec")


class Application(CatalogUses, RankingUses, ShopperUses, TuningUses):
    """One home, held open: the use-cases over its store and event log."""

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        serving: bool = False,
        store: VectorStore | None = None,
        marks: Marks | None = None,
        networks: PhotoNetworks | None = None,
    ) -> Application:
        """Open the configured store (or take `store`, a worker's copy, with its `marks`)
        and the event log; the taxonomy is the one asked for, else the one recorded at
        ingest, else DeepFashion's; `networks` embed photos to search by. `serving` (a
        long-lived process): bring the popularity payloads in step with the log and read
        the rerank's table now, so that no request pays for either (a failing store is
        logged, and every request then says so). Every store opened takes in the catalog's
        changes that workers recorded and it does not hold yet (engine.events.changes)."""
        store = open_store(settings) if store is None else store
        try:
            log = EventLog(settings.event_log, SERVING_BUSY_S if serving else BUSY_S)
        except BaseException:
            store.close()
            raise
        try:
            taxonomy = taxonomy_in_force(settings, log)
            app = cls(settings, store, log, taxonomy, marks=marks, networks=networks)
        except BaseException:
            log.close()
            store.close()
            raise
        try:
            if store.vector_dims():
                app.replay_changes()  # what workers changed that this store does not hold
        except StoreError as exc:  # a failing store: every use of it says so
            logger.warning("store not ready: %s", one_line(exc, 300))
        if serving:
            try:
                if store.vector_dims() and popularity_in_step(store, log, app.marks):
                    logger.info("popularity payloads brought in step with the event log")
                app.recommender(table=True)
            except StoreError as exc:
                logger.warning("store not ready: %s", one_line(exc, 300))
        return app

    def close(self) -> None:
        """Close the log and the store."""
        try:
            self.log.close()
        finally:
            self.store.close()

    def __enter__(self) -> Application:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def adopt(self, other: Application) -> VectorStore:
        """Serve from another application's store (a worker's fresh copy) from now on, with
        its table, marks and taxonomy; returns the store given up (the caller closes it).
        Its log connection is closed: this one's stays."""
        old = self.store
        self.store, self.columns, self.marks = other.store, other.columns, other.marks
        self.taxonomy = other.taxonomy
        self._recommender = None
        other.log.close()
        return old

    def ingested(self, taxonomy: Taxonomy) -> None:
        """What an ingest job recorded: the taxonomy with the catalog's new categories."""
        self.taxonomy = taxonomy


def taxonomy_in_force(settings: Settings, log: EventLog) -> Taxonomy:
    """The taxonomy asked for, else the one recorded at ingest, else DeepFashion's."""
    if settings.taxonomy:
        return load(settings.taxonomy)
    return log.taxonomy() or deepfashion()
