"""`fashionrec info`: what the store holds."""

from __future__ import annotations

from rich.table import Table

from cli.common import HomeOption, UrlOption, console, settings, store_for
from cli.compact import print_spaces
from engine.events.eventlog import SIMULATED, EventLog
from engine.vectorstore.base import Filter, VectorStore
from engine.vocabulary.backbones import source_of
from engine.vocabulary.schema import CATEGORY, GENDER, MASKED, provenance_text, runtime_field
from ingest.options import stored_poolings, stored_precisions


def computed(store: VectorStore, name: str) -> str:
    """Where and in what arithmetic a space's vectors were computed (a compact space's: its
    source's), e.g. `openvino · int8`."""
    source = source_of(name)
    if source not in store.vector_dims():
        return "unknown"
    runtimes = provenance_text(store.facet(runtime_field(source)))
    return f"{runtimes} · {provenance_text(stored_precisions(store, source))}"


def purchases_text(log: EventLog) -> str:
    """How many purchases are real (imported or posted) and how many simulated."""
    counts = log.purchases_by_source()
    simulated = counts.pop(SIMULATED, 0)
    real = sum(counts.values())
    if not real and not simulated:
        return "none yet"
    parts = []
    if real:
        sources = ", ".join(f"{source} {n}" for source, n in sorted(counts.items()))
        parts.append(f"{real} real ({sources})")
    if simulated:
        seeds = ", ".join(map(str, log.simulated_seeds()))
        parts.append(
            f"{simulated} simulated (seed {seeds or '?'}; "
            "`fashionrec simulate --clear` removes them)"
        )
    return " · ".join(parts)


def info_command(home: HomeOption = None, qdrant_url: UrlOption = None) -> None:
    """Counts per backbone, gender and category, and the masked share."""
    config = settings(home, qdrant_url)
    store = store_for(config)
    try:
        total = store.count()
        console.print(f"store: {store.location}")
        if total == 0:
            console.print("empty: run `fashionrec ingest PATH` or `fashionrec demo`")
            return
        masked = store.facet(MASKED).get("True", 0)
        console.print(f"items: {total} · masked {masked / total:.1%}")
        if config.has_event_log:
            log = EventLog(config.event_log)
            try:
                console.print(f"event log: {log.name}", soft_wrap=True)
                console.print(f"popularity: {log.popularity_settings().text()}")
                console.print(f"purchases: {purchases_text(log)}")
            finally:
                log.close()
        spaces = Table(
            "space", "size", "vectors", "weights", "pooling", "runtime", title="vector spaces"
        )
        for name, dim in sorted(store.vector_dims().items()):
            count = str(store.count(Filter(has_vector=name)))
            weights = provenance_text(store.provenance(name))
            # a compact space's vectors are pooled as those of the backbone it projects
            pooling = provenance_text(stored_poolings(store, source_of(name)))
            spaces.add_row(name, str(dim), count, weights, pooling, computed(store, name))
        console.print(spaces)
        print_spaces(store, config.home)
        genders = store.facet(GENDER)
        table = Table("category", *sorted(genders), "total", title="items per category")
        for category in sorted(store.facet(CATEGORY)):
            row = [
                store.count(Filter(equals={CATEGORY: category, GENDER: g})) for g in sorted(genders)
            ]
            table.add_row(category, *map(str, row), str(sum(row)))
        table.add_row(
            "total", *(str(genders[g]) for g in sorted(genders)), str(total), style="bold"
        )
        console.print(table)
    finally:
        store.close()
