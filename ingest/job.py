"""An ingest job: the checks that need no CNN, then embedding, placement in stores and
indexing. `fashionrec ingest` runs it in its own process, the service in a thread of its own
(`fashionrec ingest --api URL`); both report its outcome the same way."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from engine.catalog.items import Catalog, Naming, open_catalog, survey
from engine.catalog.taxonomy import Taxonomy
from engine.errors import CatalogError
from engine.schema import AVG
from engine.shoppers.eventlog import EventLog
from engine.shoppers.sync import place_items
from engine.spaces.build import update_spaces
from engine.vectorstore.base import VectorStore
from ingest.options import IngestJob
from ingest.outcome import Outcome
from ingest.pipeline import Embedder, ingest, pooling_of
from ingest.report import FailureReport


@dataclass(frozen=True)
class Checked:
    """A job whose catalog was read through once and found usable."""

    job: IngestJob
    catalog: Catalog
    taxonomy: Taxonomy  # the one in force, with the catalog's new categories added
    new_categories: Counter[str]


def check(job: IngestJob, taxonomy: Taxonomy | None, shops: set[str]) -> Checked:
    """Everything that can be checked without a CNN: options, columns, names, categories
    under --unknown-category fail, paths, store ids (each must name one of `shops`).

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
            f"{job.path}: store id(s) {', '.join(unknown_shops[:10])} name no known store; "
            "import the stores first (`fashionrec stores import STORES.csv`), then ingest"
        )
    used = catalog.naming.taxonomy.with_categories(found.new_categories)
    return Checked(job, catalog, used, found.new_categories)


def describe(checked: Checked, location: str, embedders: Mapping[str, Embedder]) -> str:
    """The header line of a run: what is ingested where, with which networks and weights."""
    catalog = checked.catalog
    first = next(iter(embedders.values()))
    weights = ", ".join(
        f"{n} {e.weights_label}{'' if pooling_of(e) == AVG else f' ({pooling_of(e)} pooling)'}"
        for n, e in embedders.items()
    )
    masks = f" (masks: {catalog.masks})" if catalog.masks else ""
    runtimes = "; ".join(f"{n} {getattr(e, 'plan', e.precision)}" for n, e in embedders.items())
    return (
        f"Ingesting {catalog.kind} catalog {catalog.path}{masks} into {location}: "
        f"{', '.join(embedders)} on {first.device}, weights {weights}, "
        f"taxonomy {checked.taxonomy.name}\nruntime: {runtimes}"
    )


def run(
    checked: Checked,
    store: VectorStore,
    log: EventLog,
    embedders: Mapping[str, Embedder],
    report: Path,
    on_stage: Callable[[str, int | None], None] = lambda stage, total: None,
    on_progress: Callable[[int], None] = lambda n: None,
) -> Outcome:
    """Embed what the store lacks, record the taxonomy, place new items in stores,
    project them into the compact spaces derived from the backbones (their home is the
    event log's folder), index.

    Placement comes before indexing: it rewrites the new items' payloads, and every
    write moves points out of the indexed segments (see EdgeStore.optimize).
    """
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
    placed = place_items(store, log)
    summary.vectors.update(update_spaces(store, log.path.parent, checked.job.backbones, on_stage))
    on_stage("indexing", None)
    store.optimize()
    return Outcome(
        summary,
        placed,
        dict(checked.new_categories.most_common()),
        checked.catalog.naming.taxonomy.name,
        failures.reasons(),
        str(failures.path),
    )
