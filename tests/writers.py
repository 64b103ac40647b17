"""What a test's child process runs, importing no more than it needs (a spawned process
imports the module its target lives in): purchases posted to an event log."""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.events.eventlog import EventLog
from engine.vocabulary.records import Purchase


def post(where: str, writer: int, now: datetime, own: int, shared: int) -> None:
    """One of several writers: `own` purchases of its own, then `shared` every writer posts
    too (same event ids), each purchase its own transaction."""
    log = EventLog(where)
    try:
        for n in range(own + shared):
            key = f"shared-{n}" if n >= own else f"w{writer}-{n}"
            with log.transaction():
                purchase = Purchase("u", f"item-{n % 5}", now - timedelta(hours=n), None, key)
                log.add_purchases([purchase], "api")
    finally:
        log.close()
