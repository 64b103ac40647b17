"""The options of an ingest run, validated before anything is read (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.catalog.framing import Framing
from engine.catalog.masks import DEFAULT_REMOVED, MissingMask, removed_labels
from engine.errors import ConfigError
from engine.helpers import choice


@dataclass(frozen=True)
class IngestOptions:
    """How to ingest: batching, workers, masking and framing."""

    batch_size: int = 32
    workers: int = 2
    framing: Framing = "letterbox"
    missing_mask: MissingMask = "unmasked"
    removed: tuple[str, ...] = DEFAULT_REMOVED
    limit: int | None = None

    def validate(self) -> IngestOptions:
        """Raise ConfigError (or MaskError for unknown labels) naming the first bad value."""
        if self.batch_size <= 0:
            raise ConfigError(f"--batch-size must be positive, got {self.batch_size}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be 0 or more, got {self.workers}")
        if self.limit is not None and self.limit <= 0:
            raise ConfigError(f"--limit must be positive, got {self.limit}")
        choice(Framing, self.framing, "--framing")
        choice(MissingMask, self.missing_mask, "--missing-mask")
        removed_labels(self.removed)
        return self
