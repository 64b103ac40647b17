"""Writer of the failure report: one CSV row per item that was not ingested, and a tally of
the reasons for the summary on screen."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

COLUMNS = ("where", "item_id", "stage", "reason")


@dataclass(frozen=True)
class Failure:
    """An item that was not ingested, and why (`kind` and `detail` group the reasons)."""

    where: str
    item_id: str
    stage: str
    reason: str
    kind: str = ""
    detail: str = ""


class FailureReport:
    """A CSV file created on the first failure and flushed row by row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.tally: dict[str, Counter[str]] = defaultdict(Counter)  # kind -> detail -> count
        self.first: dict[str, str] = {}  # kind -> its first failure, where and why
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
        self.tally[failure.kind or failure.stage][failure.detail] += 1
        self.first.setdefault(failure.kind or failure.stage, f"{failure.where}: {failure.reason}")

    def reasons(self, examples: int = 5) -> list[str]:
        """One line per kind of reason, most frequent first, with its commonest details:
        `unknown category 1315 (Tshirts 240, Jeans 129, …)`."""
        lines = []
        for kind, details in sorted(self.tally.items(), key=lambda kv: -kv[1].total()):
            named = [(d, n) for d, n in details.most_common() if d]
            shown = ", ".join(f"{d} {n}" for d, n in named[:examples])
            more = ", …" if len(named) > examples else ""
            lines.append(f"{kind} {details.total()}" + (f" ({shown}{more})" if shown else ""))
        return lines

    def examples(self) -> list[str]:
        """The first failure of each kind (where, and why), in the order of `reasons`."""
        kinds = sorted(self.tally, key=lambda k: -self.tally[k].total())
        return [self.first[kind] for kind in kinds]

    def example(self) -> str:
        """The first failure of the commonest kind (where, and what to do), or ""."""
        if not self.tally:
            return ""
        kind = max(self.tally, key=lambda k: self.tally[k].total())
        return self.first[kind]

    def close(self) -> None:
        """Close the file if one was written."""
        if self._handle is not None:
            self._handle.close()
