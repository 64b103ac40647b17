"""What to ingest and how, validated before anything is read (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.backbones import BACKBONES, did_you_mean
from engine.catalog.framing import Framing
from engine.catalog.items import UnknownCategory
from engine.catalog.masks import DEFAULT_REMOVED, MissingMask, removed_labels
from engine.errors import ConfigError
from engine.helpers import choice

# spawn: workers started from a process with threads of its own (the service)
StartMethod = Literal["fork", "spawn", "forkserver"]


@dataclass(frozen=True)
class IngestOptions:
    """How to ingest: batching, workers, masking and framing."""

    batch_size: int = 32
    workers: int = 2
    framing: Framing = "letterbox"
    missing_mask: MissingMask = "unmasked"
    removed: tuple[str, ...] = DEFAULT_REMOVED
    limit: int | None = None
    start_method: StartMethod | None = None  # of the decoding workers (None: the platform's)

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
        if self.start_method is not None:
            choice(StartMethod, self.start_method, "start method")
        removed_labels(self.removed)
        return self


@dataclass(frozen=True)
class IngestJob:
    """What to ingest and how: the arguments of `fashionrec ingest PATH`."""

    path: Path
    backbones: tuple[str, ...] = ("resnet50",)
    masks: Path | None = None
    manifest: bool = False
    weights: str = "imagenet"
    device: str = "auto"
    options: IngestOptions = field(default_factory=IngestOptions)
    unknown_category: UnknownCategory = "accept"
    root: Path | None = None

    def validate(self) -> IngestJob:
        """Raise ConfigError naming the first bad value."""
        unknown = [b for b in self.backbones if b not in BACKBONES]
        if unknown or not self.backbones:
            hint = did_you_mean(unknown[0], tuple(BACKBONES)) if unknown else ""
            raise ConfigError(
                f"unknown backbone {', '.join(unknown) or '(none)'}{hint}; "
                f"choose from {', '.join(BACKBONES)}"
            )
        choice(UnknownCategory, self.unknown_category, "--unknown-category")
        self.options.validate()
        return self

    def to_json(self) -> dict[str, Any]:
        """The job as the service's POST /ingest takes it (paths as text)."""
        o = self.options
        return {
            "path": str(self.path),
            "backbones": list(self.backbones),
            "masks": None if self.masks is None else str(self.masks),
            "manifest": self.manifest,
            "weights": self.weights,
            "device": self.device,
            "batch_size": o.batch_size,
            "workers": o.workers,
            "framing": o.framing,
            "missing_mask": o.missing_mask,
            "removed": list(o.removed),
            "limit": o.limit,
            "unknown_category": self.unknown_category,
            "root": None if self.root is None else str(self.root),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IngestJob:
        """Inverse of to_json (values validated by `validate`)."""

        def path(key: str) -> Path | None:
            return None if data.get(key) is None else Path(str(data[key]))

        options = IngestOptions(
            batch_size=int(data["batch_size"]),
            workers=int(data["workers"]),
            framing=data["framing"],
            missing_mask=data["missing_mask"],
            removed=tuple(data["removed"]),
            limit=data.get("limit"),
        )
        return cls(
            path=Path(str(data["path"])),
            backbones=tuple(data["backbones"]),
            masks=path("masks"),
            manifest=bool(data["manifest"]),
            weights=str(data["weights"]),
            device=str(data["device"]),
            options=options,
            unknown_category=data["unknown_category"],
            root=path("root"),
        ).validate()
