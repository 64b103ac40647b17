"""Writer of the failure report: one CSV row per item that was not ingested."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO, Any

from ingest.pipeline import Failure

COLUMNS = ("where", "item_id", "stage", "reason")


class FailureReport:
    """A CSV file created on the first failure and flushed row by row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._handle: IO[str] | None = None
        self._writer: Any = None

    def __call__(self, failure: Failure) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._handle)
            self._writer.writerow(COLUMNS)
        self._writer.writerow([failure.where, failure.item_id, failure.stage, failure.reason])
        self._handle.flush()
        self.count += 1

    def close(self) -> None:
        """Close the file if one was written."""
        if self._handle is not None:
            self._handle.close()
