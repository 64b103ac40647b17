"""Jobs recorded in the event log (an ingest the service runs), so that a restarted
service, or another worker, still knows them: state and document (JSON) by id."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.events.eventlog import EventLog


class Jobs:
    """The jobs table of one event log."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    def save(self, job_id: str, kind: str, state: str, document: str) -> None:
        """Record a job (an ingest the service runs) as it starts, moves and ends: its
        state and its document (JSON), so a restarted service still knows it."""
        now = datetime.now(UTC).isoformat()
        finished = None if state in ("queued", "running") else now
        self.log.db.execute(
            "INSERT INTO jobs (id, kind, state, started, finished, document) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state, "
            "finished = excluded.finished, document = excluded.document",
            (job_id, kind, state, now, finished, document),
        )

    def of_kind(self, kind: str) -> list[tuple[str, str, str]]:
        """(id, state, document) of every job of a kind, oldest first."""
        rows = self.log.db.execute(
            "SELECT id, state, document FROM jobs WHERE kind = ? ORDER BY started, id", (kind,)
        )
        return [(str(i), str(state), str(doc)) for i, state, doc in rows]
