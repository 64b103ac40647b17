"""An ingest job: what to ingest and how, the checks that need no CNN, then embedding,
placement in shops and indexing (ingest/runs.py runs it for both faces). No torch is loaded
until a job runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.catalog.items import Naming, UnknownCategory
from engine.catalog.sources import Catalog, open_catalog, survey
from engine.catalog.taxonomy import Taxonomy
from engine.errors import CatalogError, ConfigError
from engine.events.eventlog import EventLog
from engine.helpers import choice
from engine.popularity.upkeep import restore_history, sync_ranks
from engine.shops.placement import place_items
from engine.spaces.build import update_spaces
from engine.vectorstore.base import VectorStore
from engine.vocabulary.backbones import BACKBONES, did_you_mean
from engine.vocabulary.schema import AVG
from ingest.options import (
    AUTO,
    IngestOptions,
    check_pair,
    check_pooling,
    pooling_of,
)
from ingest.outcome import Outcome
from ingest.report import FailureReport

if TYPE_CHECKING:
    from ingest.pipeline import Embedder


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
    pooling: str = AUTO  # of the last convolutional map: see pooling_for
    runtime: str = AUTO  # torch, onnxruntime, openvino: see ingest.runtimes
    precision: str = AUTO  # fp32, bf16, int8: see ingest.runtimes

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
        for backbone in self.backbones:
            check_pooling(backbone, self.pooling)
        check_pair(self.runtime, self.precision)
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
            "pooling": self.pooling,
            "runtime": self.runtime,
            "precision": self.precision,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IngestJob:
        """Inverse of to_json (values validated by `validate`); a job without a pooling
        (written before there was a choice) pools as the store does (auto)."""

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
            pooling=str(data.get("pooling") or AUTO),
            runtime=str(data.get("runtime") or AUTO),
            precision=str(data.get("precision") or AUTO),
        ).validate()


@dataclass(frozen=True)
class Checked:
    """A job whose catalog was read through once and found usable."""

    job: IngestJob
    catalog: Catalog
    taxonomy: Taxonomy  # the one in force, with the catalog's new categories added
    new_categories: Counter[str]
    attributes: tuple[str, ...] = ()  # a manifest's other columns, kept on its items


def check(job: IngestJob, taxonomy: Taxonomy | None, shops: set[str]) -> Checked:
    """Everything that can be checked without a CNN: options, columns, names, categories
    under --unknown-category fail, paths, shop ids (each must name one of `shops`).

    taxonomy: the one to name the catalog by (else its kind's default). A bad catalog
    stops here, in a moment, before any store is written.
    """
    job.validate()
    catalog = open_catalog(
        job.path, job.masks, job.manifest, unknown=job.unknown_category, root=job.root
    )
    if taxonomy is not None:
        catalog = replace(catalog, naming=Naming(taxonomy, catalog.naming.unknown))
    found = survey(catalog)
    unknown_shops = sorted(found.store_ids - shops)
    if unknown_shops:
        raise CatalogError(
            f"{job.path}: shop id(s) {', '.join(unknown_shops[:10])} name no known shop; "
            "import the shops first (`fashionrec shops import STORES.csv`), then ingest"
        )
    used = catalog.naming.taxonomy.with_categories(found.new_categories)
    return Checked(job, catalog, used, found.new_categories, tuple(sorted(found.attributes)))


def describe(checked: Checked, location: str, embedders: Mapping[str, Embedder]) -> str:
    """The header line of a run: what is ingested where, with which networks and weights."""
    catalog = checked.catalog
    first = next(iter(embedders.values()))
    weights = ", ".join(
        f"{n} {e.weights_label}{'' if pooling_of(e) == AVG else f' ({pooling_of(e)} pooling)'}"
        for n, e in embedders.items()
    )
    masks = f" (masks: {catalog.masks})" if catalog.masks else ""
    kept = f"\nattributes kept on the items: {', '.join(checked.attributes)}"
    return (
        f"Ingesting {catalog.kind} catalog {catalog.path}{masks} into {location}: "
        f"{', '.join(embedders)} on {first.device}, weights {weights}, "
        f"taxonomy {checked.taxonomy.name}" + (kept if checked.attributes else "")
    )


def run(
    checked: Checked,
    store: VectorStore,
    log: EventLog,
    embedders: Mapping[str, Embedder],
    report: Path,
    on_stage: Callable[[str, int | None], None] = lambda stage, total: None,
    on_progress: Callable[[int], None] = lambda n: None,
    *,
    home: Path,
) -> Outcome:
    """Embed what the store lacks, record the taxonomy, place new items in shops,
    project them into the compact spaces derived from the backbones (kept in `home`), index.

    Placement comes before indexing: it rewrites the new items' payloads, and every
    write moves points out of the indexed segments (see EdgeStore.optimize).
    """
    from ingest.pipeline import ingest

    failures = FailureReport(report)
    try:
        summary = ingest(
            checked.catalog,
            store,
            embedders,
            checked.job.options,
            on_failure=failures,
            on_stage=on_stage,
            on_progress=on_progress,
            taxonomy=checked.taxonomy,
            index=False,
        )
    finally:
        failures.close()
    log.set_taxonomy(checked.taxonomy)
    restore_history(store, log)  # items that come back carry their sales again
    placed = place_items(store, log)
    sync_ranks(store)  # new items rank among the others
    summary.vectors.update(update_spaces(store, home, checked.job.backbones, on_stage))
    on_stage("indexing", None)
    store.optimize()
    return Outcome(
        summary,
        placed,
        dict(checked.new_categories.most_common()),
        checked.catalog.naming.taxonomy.name,
        failures.reasons(),
        str(failures.path),
        failures.example(),
        failures.examples(),
    )
