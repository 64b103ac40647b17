"""Changes to the catalog recorded in the event log, numbered as they commit, so that every
copy of the store (a worker's: serve/copies.py) replays them as it follows purchases,
instead of copying the whole store again: a payload edit (price, stock, name, link) or a
removal. Replaying is idempotent: a change applied twice leaves what applying it once did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

from engine.events.eventlog import EventLog

Kind = Literal["payload", "delete"]
APPLIED: Final = "changes_applied"  # a store's mark: the number of the last change it holds


@dataclass(frozen=True)
class Change:
    """One change: its number, what it does, to which point ids, with which payload."""

    number: int
    kind: Kind
    ids: tuple[str, ...]
    payload: dict[str, Any]


def record_change(log: EventLog, kind: Kind, ids: list[str], payload: dict[str, Any]) -> None:
    """Append a change (call inside the log's write transaction, which numbers changes in
    the order they commit)."""
    log.db.execute(
        "INSERT INTO changes (kind, ids, payload) VALUES (?, ?, ?)",
        (kind, json.dumps(ids), json.dumps(payload, sort_keys=True)),
    )


def changes_after(log: EventLog, number: int) -> list[Change]:
    """Every change numbered after `number`, in order."""
    rows = log.db.execute(
        "SELECT id, kind, ids, payload FROM changes WHERE id > ? ORDER BY id", (number,)
    )
    return [Change(int(n), kind, tuple(json.loads(ids)), json.loads(p)) for n, kind, ids, p in rows]
