"""What an ingest run did: counts, placement, why items were not stored (no torch here, so
a client of the service can read it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class IngestSummary:
    """What a run did."""

    ingested: int = 0
    already: int = 0
    failed: int = 0
    unparsed: int = 0
    no_mask_skipped: int = 0
    unmasked: int = 0
    recoloured: int = 0  # items stored before colours were, given their colours
    vectors: dict[str, int] = field(default_factory=dict)
    runtimes: dict[str, str] = field(default_factory=dict)  # backbone → "openvino int8", …

    @property
    def skipped(self) -> int:
        """Items not embedded on purpose: already stored, or skipped for a missing mask."""
        return self.already + self.no_mask_skipped


@dataclass(frozen=True)
class Outcome:
    """What a run did, as both faces print it."""

    summary: IngestSummary
    placed: int
    new_categories: dict[str, int]
    taxonomy: str  # the name of the taxonomy the catalog was named by
    reasons: list[str]  # one line per kind of failure, most frequent first
    report: str  # the failure report (written only when something failed)
    example: str = ""  # the first failure of the commonest kind: where, why, what to do
    examples: list[str] = field(default_factory=list)  # the first of each kind, as `reasons`

    @property
    def not_stored(self) -> int:
        """Items of the catalog that are not in the store after the run."""
        s = self.summary
        return s.failed + s.unparsed + s.no_mask_skipped

    def to_json(self) -> dict[str, Any]:
        """The outcome as JSON (what the service answers)."""
        return {**asdict(self), "not_stored": self.not_stored}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Outcome:
        """Inverse of to_json."""
        fields = {k: v for k, v in data.items() if k != "not_stored"}
        return cls(**{**fields, "summary": IngestSummary(**data["summary"])})
