"""Making a compact space from the store: check the request, sample the source vectors, fit,
and write every item's projected vector (resumable, idempotent); and, after an ingest,
project the new items into each space derived from the backbones it wrote.

An item's compact vector is written together with its `weights_<space>` payload field,
the projection's tag: an item holding the vector with the tag of the projection in force
is done, so an interrupted run, run again, writes each remaining item once, and a refit
(a new tag) rewrites them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from engine.errors import ConfigError, NotFoundError
from engine.helpers import batched
from engine.spaces.projection import fit
from engine.spaces.registry import FitRequest, Space, derived_from, load_space, save_space
from engine.vectorstore.base import Filter, PointBatch, VectorStore
from engine.vocabulary.backbones import BACKBONES, unknown_backbone
from engine.vocabulary.backbones import space_name as name_of
from engine.vocabulary.schema import ITEM_ID, weights_field

DEFAULT_SAMPLE: Final = 20_000  # source vectors a projection is learned on, at most
PAGE: Final = 500  # items read, projected and written at a time
READ_PAGE: Final = 1000  # ids per retrieve of the sample


@dataclass(frozen=True)
class Plan:
    """A checked `compact fit`: the space, its request, how many vectors the fit reads,
    and the space already stored under that name (None: none)."""

    name: str
    source: str
    dim: int
    request: FitRequest
    sample: int  # min(request.sample, the items holding the source vector)
    existing: Space | None
    refit: bool  # fit a projection (False: resume with the existing one)


def plan_fit(
    store: VectorStore,
    home: Path,
    backbone: str,
    dim: int,
    request: FitRequest,
    replace: bool = False,
) -> Plan:
    """Check a fit before anything is read or written; ConfigError or NotFoundError in one
    line for an unknown backbone, one the store lacks, a --dim out of range, a sample too
    small, an empty store, or other settings for a space that exists (without replace)."""
    if backbone not in BACKBONES:
        raise ConfigError(unknown_backbone(backbone))
    if request.shrinkage < 0:
        raise ConfigError(f"--shrinkage must be ≥ 0, got {request.shrinkage:g}")
    if request.shrinkage and not request.whiten:
        raise ConfigError("--shrinkage applies to whitening: add --whiten, or drop --shrinkage")
    if request.sample < 2:
        raise ConfigError(f"--sample must be at least 2, got {request.sample}")
    dims = store.vector_dims()
    if not dims:
        raise NotFoundError(
            f"the store at {store.location} is empty; ingest a catalog first "
            "(`fashionrec ingest PATH`)"
        )
    if backbone not in dims:
        have = ", ".join(sorted(dims))
        raise NotFoundError(
            f"the store has no {backbone} vectors (it has {have}); ingest them first "
            f"(`fashionrec ingest PATH --backbone {backbone}`)"
        )
    size = dims[backbone]
    if not 0 < dim < size:
        raise ConfigError(
            f"--dim must be between 1 and {size - 1} (below the {backbone} size, {size}), got {dim}"
        )
    count = store.count(Filter(has_vector=backbone))
    sample = min(request.sample, count)
    if sample <= dim:
        raise ConfigError(
            f"learning {dim} dims needs more than {dim} vectors; the sample would have "
            f"{sample} ({count} items hold {backbone} vectors): use a smaller --dim"
            + ("" if request.sample >= count else " or a larger --sample")
        )
    name = name_of(backbone, dim)
    existing = load_space(home, name)
    refit = existing is None or replace
    if existing is not None and not replace and not _same(existing, request):
        was = existing.request.text() if existing.request else existing.projection.describe()
        raise ConfigError(
            f"{name} exists, fitted with {was}; fitting it with {request.text()} would "
            "replace it: add --replace (every item's vector is rewritten), or choose "
            "another --dim"
        )
    return Plan(name, backbone, dim, request, sample, existing, refit)


def _same(space: Space, request: FitRequest) -> bool:
    """Whether a stored space answers this request (a missing request file: its method)."""
    if space.request is not None:
        return space.request == request
    projection = space.projection
    return projection.whiten == request.whiten and projection.shrinkage == request.shrinkage


def source_ids(store: VectorStore, backbone: str) -> list[str]:
    """The ids of every item holding the backbone's vector, sorted."""
    return sorted(r.id for r in store.scroll([ITEM_ID], Filter(has_vector=backbone)))


def sample_vectors(store: VectorStore, backbone: str, size: int, seed: int) -> NDArray[np.float32]:
    """A seeded random sample of `size` of the backbone's vectors (all, when fewer), as
    rows in the order of their ids: the same store and seed give the same sample."""
    ids = source_ids(store, backbone)
    chosen = ids
    if size < len(ids):
        picks = np.sort(np.random.default_rng(seed).choice(len(ids), size=size, replace=False))
        chosen = [ids[i] for i in picks]
    rows: list[NDArray[np.float32]] = []
    for chunk in batched(chosen, READ_PAGE):
        found = {r.id: r.vector for r in store.retrieve(chunk, vector=backbone)}
        rows.extend(v for pid in chunk if (v := found.get(pid)) is not None)
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)


def make_space(store: VectorStore, home: Path, plan: Plan) -> Space:
    """The plan's space: fitted on a sample and saved (or the existing one, to resume),
    with its named vector in the store."""
    if plan.refit or plan.existing is None:
        vectors = sample_vectors(store, plan.source, plan.sample, plan.request.seed)
        projection = fit(
            plan.source,
            vectors,
            plan.dim,
            whiten=plan.request.whiten,
            shrinkage=plan.request.shrinkage,
        )
        space = save_space(home, plan.name, projection, plan.request)
    else:
        space = plan.existing
    store.ensure_vector(space.name, space.dim)
    return space


def pending(store: VectorStore, space: Space) -> list[str]:
    """The ids of the items holding the source vector but not this projection's vector
    (no vector of the space, or one another projection wrote), sorted."""
    done = (
        {
            r.id
            for r in store.scroll(
                [ITEM_ID],
                Filter(has_vector=space.name, equals={weights_field(space.name): space.tag}),
            )
        }
        if space.name in store.vector_dims()
        else set()
    )
    return [pid for pid in source_ids(store, space.source) if pid not in done]


def fill(
    store: VectorStore,
    space: Space,
    ids: Sequence[str] | None = None,
    on_progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Project the source vectors of the items lacking the space's vector (`ids`: those
    of pending()) page by page and write them; returns how many were written.

    Each page is written whole before the next is read: an interruption loses at most
    the page in flight, and a rerun starts from the first item still pending.
    """
    todo = pending(store, space) if ids is None else ids
    if todo:
        store.ensure_vector(space.name, space.dim)
    size = int(space.projection.mean.shape[0])
    written = 0
    for number, chunk in enumerate(batched(todo, PAGE)):
        records = [r for r in store.retrieve(chunk, vector=space.source) if r.vector is not None]
        if records:
            source = np.asarray([r.vector for r in records], dtype=np.float32)
            if source.shape[1] != size:
                raise ConfigError(
                    f"{space.name} was learned on {size}-d {space.source} vectors; the "
                    f"store's are {source.shape[1]}-d: fit it again with --replace"
                )
            batch = PointBatch(
                [r.id for r in records],
                [{weights_field(space.name): space.tag}] * len(records),
                space.name,
                space.projection(source),
            )
            store.add_vectors(batch)
            written += len(records)
        on_progress(len(chunk))
        if number % 50 == 49:
            store.flush()
    store.flush()
    return written


def update_spaces(
    store: VectorStore,
    home: Path,
    backbones: Sequence[str],
    on_stage: Callable[[str, int | None], None] = lambda stage, total: None,
) -> dict[str, int]:
    """Project the items lacking them into every space of the home derived from these
    backbones (after an ingest or a load); returns vectors written per space.

    home: the folder holding the store's spaces (an ingest's: its event log's folder).
    """
    written: dict[str, int] = {}
    for space in derived_from(home, list(backbones)):
        if space.source not in store.vector_dims():
            continue
        todo = pending(store, space)
        if todo:
            on_stage(f"projecting into {space.name}", None)
            written[space.name] = fill(store, space, todo)
    return written


def counts(store: VectorStore, names: Sequence[str]) -> Iterator[tuple[str, int]]:
    """How many items hold each named vector (0 for a name the store lacks)."""
    dims = store.vector_dims()
    for name in names:
        yield name, store.count(Filter(has_vector=name)) if name in dims else 0
