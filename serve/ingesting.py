"""Ingest jobs inside the service: `fashionrec ingest --api URL` starts one with POST /ingest
and follows it with GET /ingest/{id} while recommendations go on being served.

A job runs in a thread of its own with its own connection to the event log; the store is
the service's (Qdrant Edge serialises the calls). One job at a time; networks stay loaded
between jobs.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from engine.catalog.taxonomy import Taxonomy, load
from engine.errors import FashionrecError, one_line
from engine.settings import Settings
from engine.shoppers.eventlog import EventLog
from engine.vectorstore.base import VectorStore
from ingest.options import IngestJob, numerics_for, pooling_for
from ingest.outcome import Outcome

logger = logging.getLogger("fashionrec.serve")
State = Literal["checking", "running", "done", "failed"]


@dataclass
class IngestRun:
    """One job, as GET /ingest/{id} reports it."""

    id: str
    job: IngestJob
    state: State = "checking"
    header: str = ""
    stage: str = "checking the catalog"
    done: int = 0
    total: int | None = None
    outcome: Outcome | None = None
    error: str | None = None
    status: int = 200  # the HTTP status the error would have had
    started: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        """The run's state; the outcome once done, the one-line error once failed."""
        return {
            "id": self.id,
            "state": self.state,
            "header": self.header,
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "weights": self.job.weights,
            "pooling": self.job.pooling,
            "outcome": None if self.outcome is None else self.outcome.to_json(),
            "error": self.error,
            "status": self.status,
        }


class Ingests:
    """The service's ingest jobs: at most one running, the finished ones kept for reading."""

    def __init__(
        self,
        settings: Settings,
        store: VectorStore,
        status_of: Callable[[FashionrecError], int],
        on_taxonomy: Callable[[Taxonomy], None],
    ) -> None:
        self.settings = settings
        self.store = store
        self.status_of = status_of
        self.on_taxonomy = on_taxonomy
        self.runs: dict[str, IngestRun] = {}
        # (backbone, weights, device, pooling)
        self.networks: dict[tuple[object, ...], Any] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def start(self, job: IngestJob) -> IngestRun:
        """Start a job in its own thread; ConfigError (409) while another one runs."""
        job = replace(job, options=replace(job.options, start_method="spawn")).validate()
        with self.lock:
            if self.thread is not None and self.thread.is_alive():
                running = next(r for r in self.runs.values() if r.state in ("checking", "running"))
                raise Busy(f"ingest {running.id} is running; wait for it to finish")
            run = IngestRun(uuid.uuid4().hex[:12], job)
            self.runs[run.id] = run
            self.thread = threading.Thread(target=self._work, args=(run,), daemon=True)
            self.thread.start()
        return run

    def get(self, run_id: str) -> IngestRun | None:
        """A job by id."""
        return self.runs.get(run_id)

    def _embedders(self, job: IngestJob) -> dict[str, Any]:
        from ingest.embedder import Embedder

        found = {}
        for name in job.backbones:
            pooling = pooling_for(self.store, name, job.pooling)
            asked = numerics_for(self.store, name, job.runtime, job.precision)
            key = (name, job.weights, job.device, pooling, asked)
            if key not in self.networks:
                self.networks[key] = Embedder(
                    name,
                    job.weights,
                    job.device,
                    precision=asked.precision,
                    pooling=pooling,
                    runtime=asked.runtime,
                    calibration=asked.calibration,
                    on_note=lambda text: logger.info("ingest: %s", text),
                )
            found[name] = self.networks[key]
        return found

    def _work(self, run: IngestRun) -> None:
        from ingest.job import check, describe
        from ingest.job import run as run_job

        log = None
        try:
            log = EventLog(self.settings.event_log_path)
            chosen = load(self.settings.taxonomy) if self.settings.taxonomy else log.taxonomy()
            checked = check(run.job, chosen, {s.id for s in log.shops()})
            if run.job.weights == "random":
                logger.warning("ingest %s: random-init weights; similarities mean nothing", run.id)
            embedders = self._embedders(run.job)
            run.header = describe(checked, self.store.location, embedders)
            run.state = "running"
            logger.info("ingest %s: %s", run.id, run.header)

            def on_stage(stage: str, total: int | None) -> None:
                run.stage, run.total, run.done = stage, total, 0

            def on_progress(n: int) -> None:
                run.done += n

            stamp = time.strftime("%Y%m%d-%H%M%S")
            report = self.settings.home / "reports" / f"ingest-{stamp}-{run.id}.csv"
            run.outcome = run_job(
                checked, self.store, log, embedders, report, on_stage, on_progress
            )
            self.on_taxonomy(checked.taxonomy)
            run.state = "done"
            logger.info("ingest %s done: %s", run.id, run.outcome.summary)
        except FashionrecError as exc:
            run.error, run.status, run.state = one_line(exc, 500), self.status_of(exc), "failed"
            logger.info("ingest %s failed: %s", run.id, run.error)
        except Exception:
            logger.exception("ingest %s failed", run.id)
            run.error, run.status = "internal error; the server log has the details", 500
            run.state = "failed"
        finally:
            if log is not None:
                log.close()


class Busy(FashionrecError):
    """Another ingest is running (409)."""
