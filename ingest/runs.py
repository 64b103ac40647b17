"""Ingest runs over an application (engine/application.py): the one path from a job to its
outcome for both faces. The checks that need no CNN come first (before a home is created);
then the networks, loaded once and kept between runs; then the run, whose progress goes to
callbacks; last, the taxonomy it recorded. `fashionrec ingest` runs one in the foreground;
the service runs one at a time in a thread of its own (`fashionrec ingest --api URL`) while
it goes on serving.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from engine.application import Application
from engine.catalog.taxonomy import load
from engine.errors import FashionrecError, one_line
from engine.events.eventlog import EventLog
from engine.events.jobs import Jobs
from engine.settings import Settings
from engine.vectorstore.holder import alive
from ingest.job import Checked, IngestJob, check, describe, run
from ingest.options import numerics_for, pooling_for
from ingest.outcome import Outcome

if TYPE_CHECKING:
    from ingest.embedder import Embedder

logger = logging.getLogger("fashionrec.ingest")
JOB_KIND: Final = "ingest"  # how the event log's jobs table names these runs
PROGRESS_S: Final = 2.0  # a running job's progress is recorded at most this often
State = Literal["checking", "running", "done", "failed"]
Stage = Callable[[str, int | None], None]


def check_job(settings: Settings, job: IngestJob) -> Checked:
    """Everything about a job that can be checked without a CNN (ingest.job.check), against
    the taxonomy asked for, else the one the home recorded, and the home's shops. It
    creates nothing: the home's event log is read only if it exists (a connection of its
    own, so any thread may check)."""
    log = EventLog(settings.event_log) if settings.has_event_log else None
    try:
        chosen = load(settings.taxonomy) if settings.taxonomy else log and log.taxonomy()
        shops = set() if log is None else {s.id for s in log.shops()}
    finally:
        if log is not None:
            log.close()
    return check(job, chosen or None, shops)


def report_path(settings: Settings, tag: str = "") -> Path:
    """Where a run's failure report goes by default: under the home's reports/."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return settings.home / "reports" / f"ingest-{stamp}{tag}.csv"


@dataclass
class IngestRun:
    """One job run in the background, as GET /ingest/{id} reports it."""

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


class Busy(FashionrecError):
    """Another ingest is running (409)."""


class Ingester:
    """Runs ingest jobs into one application's store: networks kept between runs, at most
    one background run at a time, the finished ones kept for reading."""

    def __init__(
        self,
        app: Application,
        on_note: Callable[[str], None] = lambda text: logger.info("ingest: %s", text),
        status_of: Callable[[FashionrecError], int] = lambda error: 400,
    ) -> None:
        self.app = app
        self.on_note = on_note
        self.status_of = status_of
        self.networks: dict[tuple[object, ...], Embedder] = {}
        self.runs: dict[str, IngestRun] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.saved: dict[str, float] = {}  # when each run's state was last recorded

    def embedders(self, job: IngestJob) -> dict[str, Embedder]:
        """The job's networks: pooling, runtime and precision as the store holds them (or as
        measured), loaded once per setting."""
        from ingest.embedder import Embedder

        found: dict[str, Embedder] = {}
        store = self.app.store
        for name in job.backbones:
            pooling = pooling_for(store, name, job.pooling)
            asked = numerics_for(store, name, job.runtime, job.precision)
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
                    on_note=self.on_note,
                )
            found[name] = self.networks[key]
        return found

    def header(self, checked: Checked, embedders: dict[str, Embedder]) -> str:
        """What the run will do: catalog, store, networks, weights, runtimes."""
        return describe(checked, self.app.store_location, embedders)

    def run(
        self,
        checked: Checked,
        embedders: dict[str, Embedder],
        report: Path,
        on_stage: Stage = lambda stage, total: None,
        on_progress: Callable[[int], None] = lambda n: None,
    ) -> Outcome:
        """Run a checked job (ingest.job.run) on the store that takes the catalog's changes
        (Application.writing), with a connection to the event log of its own (so any thread
        may run it); the application then names the catalog by the taxonomy the run
        recorded."""
        log = EventLog(self.app.settings.event_log)
        try:
            with self.app.writing() as app:  # a worker's copy: the home's store
                outcome = run(
                    checked,
                    app.store,
                    log,
                    embedders,
                    report,
                    on_stage,
                    on_progress,
                    home=app.settings.home,
                )
        finally:
            log.close()
        self.app.ingested(checked.taxonomy)
        return outcome

    # in the background -----------------------------------------------------------------
    def start(self, job: IngestJob) -> IngestRun:
        """Start a job in a thread of its own; Busy while another one runs."""
        job = replace(job, options=replace(job.options, start_method="spawn")).validate()
        with self.lock:
            if self.thread is not None and self.thread.is_alive():
                running = next(r for r in self.runs.values() if r.state in ("checking", "running"))
                raise Busy(f"ingest {running.id} is running; wait for it to finish")
            started = IngestRun(uuid.uuid4().hex[:12], job)
            self.runs[started.id] = started
            self.thread = threading.Thread(target=self._work, args=(started,), daemon=True)
            self.thread.start()
        return started

    def get(self, run_id: str) -> IngestRun | None:
        """A background run of this process, by id."""
        return self.runs.get(run_id)

    def report(self, run_id: str) -> dict[str, Any] | None:
        """A run's state by id: this process's, else as the event log recorded it (a run
        another worker runs, or one from before a restart: one whose process is gone is
        reported failed, interrupted); None when no run has that id."""
        found = self.runs.get(run_id)
        if found is not None:
            return found.to_json()
        for job_id, state, document in Jobs(self.app.log).of_kind(JOB_KIND):
            if job_id == run_id:
                return _recorded(state, document)
        return None

    def _save(self, state: IngestRun, log: EventLog, every_s: float = 0.0) -> None:
        """Record the run's state in the event log (progress at most every `every_s`)."""
        now = time.monotonic()
        if every_s and now - self.saved.get(state.id, 0.0) < every_s:
            return
        self.saved[state.id] = now
        owner = {"pid": os.getpid(), "host": socket.gethostname()}
        try:
            Jobs(log).save(
                state.id, JOB_KIND, state.state, json.dumps({**state.to_json(), **owner})
            )
        except FashionrecError as exc:  # the run goes on; its record lags
            logger.warning("ingest %s: not recorded (%s)", state.id, one_line(exc))

    def _work(self, state: IngestRun) -> None:
        log = EventLog(self.app.settings.event_log)  # this thread's connection
        try:
            self._run_recorded(state, log)
        finally:
            self._save(state, log)
            log.close()

    def _run_recorded(self, state: IngestRun, log: EventLog) -> None:
        self._save(state, log)
        try:
            checked = check_job(self.app.settings, state.job)
            if state.job.weights == "random":
                logger.warning(
                    "ingest %s: random-init weights; similarities mean nothing", state.id
                )
            embedders = self.embedders(state.job)
            state.header = self.header(checked, embedders)
            state.state = "running"
            logger.info("ingest %s: %s", state.id, state.header)
            self._save(state, log)

            def on_stage(stage: str, total: int | None) -> None:
                state.stage = stage
                if total is not None:  # a stage without a count (indexing) keeps the last one
                    state.total, state.done = total, 0
                self._save(state, log)

            def on_progress(n: int) -> None:
                state.done += n
                self._save(state, log, every_s=PROGRESS_S)

            report = report_path(self.app.settings, f"-{state.id}")
            state.outcome = self.run(checked, embedders, report, on_stage, on_progress)
            state.state = "done"
            logger.info("ingest %s done: %s", state.id, state.outcome.summary)
        except FashionrecError as exc:
            state.error, state.status = one_line(exc, 500), self.status_of(exc)
            state.state = "failed"
            logger.info("ingest %s failed: %s", state.id, state.error)
        except Exception:
            logger.exception("ingest %s failed", state.id)
            state.error, state.status = "internal error; the server log has the details", 500
            state.state = "failed"


def _recorded(state: str, document: str) -> dict[str, Any]:
    """A recorded run's state as GET /ingest/{id} answers it: a run still marked running
    whose process on this machine is gone was interrupted."""
    found: dict[str, Any] = json.loads(document)
    owner_pid, owner_host = found.pop("pid", 0), found.pop("host", "")
    here = owner_host == socket.gethostname()
    gone = not alive(int(owner_pid)) or int(owner_pid) == os.getpid()  # not in memory here
    if state in ("checking", "running") and here and gone:
        found.update(
            state="failed",
            status=500,
            error="the service stopped while this ingest ran; run it again (the items "
            "already stored are skipped)",
        )
    return found
