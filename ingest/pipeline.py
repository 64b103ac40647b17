"""Runner: plan what is missing, embed it in batches, write it to the store; resumable."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Protocol

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import DataLoader

from engine.catalog.framing import Framing
from engine.catalog.items import Entry, Item, Problem
from engine.catalog.masks import DEFAULT_REMOVED
from engine.catalog.taxonomy import Taxonomy, deepfashion
from engine.errors import MaskMissingError
from engine.helpers import batched
from engine.vectorstore.base import Filter, Payload, PointBatch, VectorStore
from engine.vocabulary.schema import (
    ATTRIBUTES,
    CATEGORY,
    CATEGORY_GROUP,
    COLOUR,
    FRAMING,
    GENDER,
    IMAGE,
    ITEM_ID,
    MANIFEST,
    MASK,
    MASKED,
    NAME,
    PRICE,
    PRODUCT_ID,
    REMOVED,
    STORE_ID,
    STORE_ORIGIN,
    URL,
    VIEW,
    calibration_field,
    point_id,
    pooling_field,
    precision_field,
    runtime_field,
    stock_fields,
    weights_field,
)
from ingest.colour import colour_histograms
from ingest.options import (
    IngestOptions,
    pooling_of,
    refuse_mixed_pooling,
    refuse_mixed_precision,
)
from ingest.outcome import IngestSummary
from ingest.reader import UNREADABLE, Batch, Sample, Sampler, WorkList, collate, item_to_line
from ingest.report import Failure

CHECK_CHUNK: Final = 1024


class Embedder(Protocol):
    """What the pipeline needs of an embedder: its size, weights label, device and call.

    Its `pooling` (avg, gem), recorded in the payload, is read where it has one (see
    pooling_of): an embedder without one pools by average.
    """

    @property
    def dim(self) -> int:
        """Length of the embeddings."""

    @property
    def weights_label(self) -> str:
        """Which weights it runs, as recorded in the payload."""

    @property
    def device(self) -> torch.device:
        """Where it runs (pinned memory pays off for CUDA only)."""

    @property
    def precision(self) -> str:
        """The arithmetic it runs in (fp32, bf16, int8)."""

    def __call__(self, images: torch.Tensor) -> NDArray[np.float32]:
        """A uint8 batch (N, 3, H, W) in, unit-length rows out."""


def numerics(name: str, embedder: Embedder) -> Payload:
    """The payload fields saying how an embedder made a backbone's vectors: weights,
    pooling, runtime (torch where it does not say), precision, and an int8 model's
    calibration sample."""
    fields: Payload = {
        weights_field(name): embedder.weights_label,
        pooling_field(name): pooling_of(embedder),
        runtime_field(name): str(getattr(embedder, "runtime", "torch")),
        precision_field(name): embedder.precision,
    }
    calibration = getattr(embedder, "calibration", None)
    if calibration:
        fields[calibration_field(name)] = calibration
    return fields


def sampler(work: Plan, options: IngestOptions, seed: int = 0) -> Sampler:
    """Up to n photos of the work list, drawn with a seed, as network inputs (uint8), with
    their categories: what int8 is calibrated and judged on. Read once, however often asked."""
    dataset = WorkList(work.path, work.offsets, options.framing, options.removed)
    order = np.random.default_rng(seed).permutation(len(dataset))

    @functools.cache
    def sample(n: int) -> tuple[torch.Tensor, list[str]]:
        taken: list[Sample] = []
        for row in order:
            found = dataset[int(row)]
            if found.pixels is not None:
                taken.append(found)
            if len(taken) == n:
                break
        pixels = [s.pixels for s in taken if s.pixels is not None]
        stacked = (
            torch.stack(pixels) if pixels else torch.zeros((0, 3, 224, 224), dtype=torch.uint8)
        )
        return stacked, [s.item.category for s in taken]

    return sample


def item_payload(
    item: Item,
    masked: bool,
    taxonomy: Taxonomy | None = None,
    framing: Framing = "letterbox",
    removed: Sequence[str] = DEFAULT_REMOVED,
) -> Payload:
    """The catalog part of an item's payload (popularity and shop location come later);
    the category's group is the taxonomy's (DeepFashion's by default). It records how the
    network input was made (engine.catalog.inputs): the framing and, when a mask was
    applied, the mask and the labels it removed."""
    group_of = (taxonomy or deepfashion()).group_of
    payload: Payload = {
        ITEM_ID: item.item_id,
        PRODUCT_ID: item.product_id,
        GENDER: item.gender,
        CATEGORY: item.category,
        CATEGORY_GROUP: group_of(item.category),
        VIEW: item.view,
        IMAGE: str(item.image),
        MASKED: masked,
        FRAMING: framing,
    }
    if masked and item.mask is not None:
        payload[MASK] = str(item.mask)
        payload[REMOVED] = list(removed)
    if item.store_id is not None:
        payload[STORE_ID] = item.store_id
        payload[STORE_ORIGIN] = MANIFEST
    if item.attributes:
        payload[ATTRIBUTES] = dict(item.attributes)
    for field, value in ((NAME, item.name), (PRICE, item.price), (URL, item.url)):
        if value is not None:
            payload[field] = value
    if item.in_stock is not None:
        payload |= stock_fields(item.in_stock)
    return payload


@dataclass(frozen=True)
class Plan:
    """The work list on disk (one line per item still missing a vector) and its offsets."""

    path: Path
    offsets: np.ndarray
    embeds: int = 0  # lines that need a network (the others only their colours)


FailureSink = Callable[[Failure], None]


def _items(
    entries: Iterable[Entry], summary: IngestSummary, on_failure: FailureSink, limit: int | None
) -> Iterator[Item]:
    taken = 0
    for entry in entries:
        if isinstance(entry, Problem):
            summary.unparsed += 1
            on_failure(Failure(entry.where, "", "catalog", entry.reason, entry.kind, entry.detail))
            continue
        if limit is not None and taken >= limit:
            return
        taken += 1
        yield entry


def plan(
    entries: Iterable[Entry],
    store: VectorStore,
    backbones: Sequence[str],
    options: IngestOptions,
    workdir: Path,
    summary: IngestSummary,
    on_failure: FailureSink,
) -> Plan:
    """Stream the catalog, ask the store which items lack which backbone, write the work list."""
    path = workdir / "worklist.jsonl"
    offsets: list[int] = []
    position, embeds = 0, 0
    with path.open("wb") as out:
        for chunk in batched(_items(entries, summary, on_failure, options.limit), CHECK_CHUNK):
            ids = frozenset(point_id(item.item_id) for item in chunk)
            have = {
                b: store.ids_matching(Filter(ids=ids, has_vector=b), limit=len(ids))
                for b in backbones
            }
            colourless = store.ids_matching(Filter(ids=ids, empty=COLOUR), limit=len(ids))
            for item in chunk:
                pid = point_id(item.item_id)
                needs = [b for b in backbones if pid not in have[b]]
                if not needs and pid in colourless:
                    needs = [COLOUR]  # stored before colours were: its colours only
                if not needs:
                    summary.already += 1
                    continue
                if item.mask is None or not item.mask.is_file():
                    if options.missing_mask == "fail":
                        raise MaskMissingError(
                            f"{item.image}: no mask; add it, or run with --missing-mask "
                            f"unmasked|skip"
                        )
                    if options.missing_mask == "skip":
                        summary.no_mask_skipped += 1
                        failure = Failure(
                            str(item.image), item.item_id, "mask", "no mask", "no mask"
                        )
                        on_failure(failure)
                        continue
                    item = replace(item, mask=None)
                embeds += needs != [COLOUR]
                line = item_to_line(item, needs).encode("utf-8")
                out.write(line)
                offsets.append(position)
                position += len(line)
    return Plan(path, np.asarray(offsets, dtype=np.int64), embeds)


def embed(
    work: Plan,
    store: VectorStore,
    embedders: Mapping[str, Embedder],
    options: IngestOptions,
    summary: IngestSummary,
    on_failure: FailureSink,
    on_progress: Callable[[int], None] = lambda n: None,
    taxonomy: Taxonomy | None = None,
) -> None:
    """Embed the work list with every backbone it needs and write each batch to the store."""
    dataset = WorkList(work.path, work.offsets, options.framing, options.removed)
    loader = DataLoader(
        dataset,
        batch_size=options.batch_size,
        num_workers=options.workers,
        collate_fn=collate,
        pin_memory=any(e.device.type == "cuda" for e in embedders.values()),
        multiprocessing_context=options.start_method if options.workers else None,
    )
    for batch in loader:
        _write_batch(batch, store, embedders, summary, on_failure, taxonomy, options)
        on_progress(len(batch.samples) + len(batch.failures))
    store.flush()


def _write_batch(
    batch: Batch,
    store: VectorStore,
    embedders: Mapping[str, Embedder],
    summary: IngestSummary,
    on_failure: FailureSink,
    taxonomy: Taxonomy | None,
    options: IngestOptions,
) -> None:
    for failed in batch.failures:
        summary.failed += 1
        reason = failed.error or "unknown error"
        item = failed.item
        kind = failed.kind or UNREADABLE
        on_failure(Failure(str(item.image), item.item_id, "image", reason, kind))
    masked = np.array([s.masked for s in batch.samples], dtype=bool)
    colours = [
        [round(float(v), 4) for v in row] for row in colour_histograms(batch.pixels.numpy(), masked)
    ]
    recoloured = 0
    for r, sample in enumerate(batch.samples):
        if sample.needs == [COLOUR]:  # its vectors are stored: its colours only
            store.set_payload([point_id(sample.item.item_id)], {COLOUR: colours[r]})
            recoloured += 1
    for name, embedder in embedders.items():
        rows = [r for r, sample in enumerate(batch.samples) if name in sample.needs]
        if not rows:
            continue
        samples = [batch.samples[r] for r in rows]
        store.write(
            PointBatch(
                ids=[point_id(s.item.item_id) for s in samples],
                payloads=[
                    {
                        **item_payload(
                            s.item, s.masked, taxonomy, options.framing, options.removed
                        ),
                        **numerics(name, embedder),
                        COLOUR: colours[r],
                    }
                    for r, s in zip(rows, samples, strict=True)
                ],
                vector_name=name,
                vectors=embedder(batch.pixels[rows]),
            )
        )
        summary.vectors[name] = summary.vectors.get(name, 0) + len(rows)
    summary.already += recoloured
    summary.recoloured += recoloured
    summary.ingested += len(batch.samples) - recoloured
    summary.unmasked += sum(not s.masked for s in batch.samples)


def settle(
    embedders: Mapping[str, Embedder],
    store: VectorStore,
    total: int,
    sample: Sampler,
    on_stage: Callable[[str, int | None], None],
) -> None:
    """Let each embedder that chooses its runtime by the job (see Embedder.prepare) choose,
    then refuse a choice that would mix precisions in the store (ConfigError, nothing
    written)."""
    for name, embedder in embedders.items():
        prepare = getattr(embedder, "prepare", None)
        if prepare is not None:
            on_stage(f"choosing {name}'s runtime", None)
            prepare(total, sample)
        refuse_mixed_precision(store, name, embedder.precision)


def ingest(
    entries: Iterable[Entry],
    store: VectorStore,
    embedders: Mapping[str, Embedder],
    options: IngestOptions = IngestOptions(),
    on_failure: FailureSink = lambda f: None,
    on_stage: Callable[[str, int | None], None] = lambda stage, total: None,
    on_progress: Callable[[int], None] = lambda n: None,
    taxonomy: Taxonomy | None = None,
    index: bool = True,
) -> IngestSummary:
    """Ingest a catalog into the store with the given embedders; only missing vectors are made.

    Items already holding every requested backbone's vector are skipped, so an
    interrupted run continues where it stopped. Per-item failures go to on_failure;
    on_stage names each stage (embedding with its item count, indexing) as it starts.
    index=False leaves indexing to the caller (who writes more payloads first). A store
    whose vectors of a backbone were pooled otherwise, or computed in another precision,
    stops the run before anything is written (ConfigError).
    """
    for name, embedder in embedders.items():
        refuse_mixed_pooling(store, name, pooling_of(embedder))
    for name, embedder in embedders.items():
        store.ensure_vector(name, embedder.dim)
    summary = IngestSummary()
    with tempfile.TemporaryDirectory(prefix="fashionrec-ingest-") as tmp:
        work = plan(entries, store, list(embedders), options, Path(tmp), summary, on_failure)
        if work.embeds:  # a run that only adds colours runs no network
            settle(embedders, store, work.embeds, sampler(work, options), on_stage)
            summary.runtimes = {
                n: f"{getattr(e, 'runtime', 'torch')} {e.precision}" for n, e in embedders.items()
            }
        on_stage("embedding", len(work.offsets))
        if len(work.offsets):
            embed(work, store, embedders, options, summary, on_failure, on_progress, taxonomy)
    if summary.ingested and index:
        on_stage("indexing", None)
        store.optimize()
    return summary
