"""Ingestion end to end: both back-ends, idempotence, resume after interruption, failures.

The bookkeeping tests embed with FakeEmbedder (cheap, deterministic); the tests about what
the CNN stores run the random-init ResNet-50 and are marked slow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.catalog.inputs import load_input
from engine.catalog.items import Item
from engine.catalog.sources import open_catalog
from engine.errors import MaskMissingError
from engine.vectorstore.base import Filter, Record, VectorStore
from engine.vectorstore.edge import EdgeStore
from engine.vectorstore.server import ServerStore
from engine.vocabulary.schema import COLOUR, point_id
from ingest.colour import BINS
from ingest.democatalog import DemoCatalog
from ingest.embedder import Embedder
from ingest.options import IngestOptions
from ingest.pipeline import Embedder as EmbedderProtocol
from ingest.pipeline import ingest
from ingest.report import Failure
from tests.builders import FAKE, FakeEmbedder, copy_catalog

OPTIONS = IngestOptions(batch_size=8, workers=0)
EMBEDDERS: dict[str, EmbedderProtocol] = {FAKE: FakeEmbedder()}  # type-checks the fake


def _all(store: VectorStore, catalog: DemoCatalog, vector: str | None = None) -> dict[str, Record]:
    ids = [point_id(p.stem) for p in catalog.images.iterdir()]
    return {r.id: r for r in store.retrieve(ids, vector=vector)}


@pytest.mark.slow
def test_same_points_on_edge_and_memory(
    small_catalog: DemoCatalog, mobilenet: Embedder, edge_and_memory: tuple[EdgeStore, ServerStore]
) -> None:
    edge, memory = edge_and_memory
    for store in (edge, memory):
        summary = ingest(
            open_catalog(small_catalog.images), store, {"mobilenet_v2": mobilenet}, OPTIONS
        )
        assert (summary.ingested, summary.failed, summary.unmasked) == (23, 0, 0)
    a, b = _all(edge, small_catalog, "mobilenet_v2"), _all(memory, small_catalog, "mobilenet_v2")
    assert a.keys() == b.keys() and len(a) == 23
    for pid, record in a.items():
        other = b[pid]
        assert record.payload == other.payload
        np.testing.assert_allclose(record.vector, other.vector, atol=1e-5)
    payload = a[point_id("WOMEN-Dresses-id_00000013-01_1_front")].payload
    colours = payload.pop("colour")  # the garment's colours (ingest/colour.py)
    assert len(colours) == BINS and sum(c * c for c in colours) == pytest.approx(1, abs=1e-3)
    assert payload == {
        "item_id": "WOMEN-Dresses-id_00000013-01_1_front",
        "product_id": "id_00000013-01",
        "gender": "WOMEN",
        "category": "Dresses",
        "category_group": "D",
        "view": "front",
        "image": str(small_catalog.images / "WOMEN-Dresses-id_00000013-01_1_front.jpg"),
        "masked": True,
        "framing": "letterbox",  # how the network input was made: framing, mask, labels
        "mask": str(small_catalog.masks / "WOMEN-Dresses-id_00000013-01_1_front_segm.png"),
        "removed": ["background", "hair", "face", "skin"],
        "popularity": 0.0,
        "trending": 0.0,
        "weights_mobilenet_v2": "random",
        "pooling_mobilenet_v2": "avg",
        "runtime_mobilenet_v2": mobilenet.runtime,  # the fastest fp32 measured here
        "precision_mobilenet_v2": "fp32",
    }


@pytest.mark.slow
def test_stored_vector_is_the_embedding_of_the_masked_image(
    small_catalog: DemoCatalog, mobilenet: Embedder, store: VectorStore
) -> None:
    ingest(open_catalog(small_catalog.images), store, {"mobilenet_v2": mobilenet}, OPTIONS)
    item = next(e for e in open_catalog(small_catalog.images) if isinstance(e, Item))
    pixels, masked = load_input(item)
    expected = mobilenet(torch.from_numpy(pixels)[None])[0]
    stored = store.retrieve([point_id(item.item_id)], vector="mobilenet_v2")[0].vector
    assert masked and stored is not None
    assert float(stored @ expected) > 0.9999


def test_fake_embedder_is_deterministic_and_of_unit_length(small_catalog: DemoCatalog) -> None:
    items = [e for e in open_catalog(small_catalog.images) if isinstance(e, Item)][:4]
    pixels = torch.stack([torch.from_numpy(load_input(item)[0]) for item in items])
    fake = FakeEmbedder(dim=16)
    rows = fake(pixels)
    assert rows.shape == (4, 16) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(rows, fake(pixels.clone()))
    assert len({r.tobytes() for r in rows}) == 4  # different garments, different vectors
    assert FakeEmbedder(dim=8)(pixels).shape == (4, 8)
    assert (fake.dim, fake.weights_label, fake.device) == (16, "fake", torch.device("cpu"))


def test_reingest_is_a_no_op(small_catalog: DemoCatalog, store: VectorStore) -> None:
    catalog = open_catalog(small_catalog.images)
    ingest(catalog, store, EMBEDDERS, OPTIONS)
    again = ingest(catalog, store, EMBEDDERS, OPTIONS)
    assert (again.ingested, again.already, again.vectors) == (0, 23, {})
    assert store.count() == 23


def test_interrupted_run_resumes_and_stores_each_item_once(
    small_catalog: DemoCatalog, store: VectorStore
) -> None:
    catalog = open_catalog(small_catalog.images)
    batches = 0

    def stop_after_two(n: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest(catalog, store, EMBEDDERS, OPTIONS, on_progress=stop_after_two)
    first = store.count()
    assert first == 16  # two batches of 8 were written before the interruption
    resumed = ingest(catalog, store, EMBEDDERS, OPTIONS)
    assert (resumed.already, resumed.ingested) == (16, 7)
    assert store.count() == 23
    assert store.count(Filter(has_vector=FAKE)) == 23
    stored = {r.payload["item_id"] for r in _all(store, small_catalog).values()}
    assert stored == {p.stem for p in small_catalog.images.iterdir()}


def test_two_backbones_in_one_pass_and_resume_per_backbone(
    small_catalog: DemoCatalog, store: VectorStore, tmp_path: Path
) -> None:
    part = copy_catalog(small_catalog, tmp_path / "part", limit=5)
    small = FakeEmbedder(dim=8, weights_label="fake-8")
    ingest(open_catalog(part.images), store, EMBEDDERS, OPTIONS)
    both = ingest(open_catalog(part.images), store, {**EMBEDDERS, "small": small}, OPTIONS)
    assert both.vectors == {"small": 5}  # only the missing backbone is embedded
    assert store.count(Filter(has_vector=FAKE)) == 5
    assert store.count(Filter(has_vector="small")) == 5
    assert store.vector_dims() == {FAKE: 16, "small": 8}
    record = store.retrieve([point_id(sorted(part.images.iterdir())[0].stem)])[0]
    assert (record.payload["weights_fake"], record.payload["weights_small"]) == ("fake", "fake-8")


def test_failures_are_reported_and_the_run_goes_on(
    small_catalog: DemoCatalog, store: VectorStore, tmp_path: Path
) -> None:
    part = copy_catalog(small_catalog, tmp_path / "part", limit=6)
    images = sorted(part.images.iterdir())
    images[0].write_bytes(images[0].read_bytes()[:200])  # truncated JPEG
    (part.masks / f"{images[1].stem}_segm.png").write_text("not a png")  # unreadable mask
    (part.images / "MEN-Hats-id_00000999-01_1_front.jpg").write_bytes(images[2].read_bytes())
    failures: list[Failure] = []
    catalog = open_catalog(part.images, unknown="skip")
    summary = ingest(catalog, store, EMBEDDERS, OPTIONS, on_failure=failures.append)
    assert (summary.ingested, summary.failed, summary.unparsed) == (4, 2, 1)
    by_stage = {f.stage: f for f in failures if f.stage != "image"}
    assert "unknown category 'Hats'" in by_stage["catalog"].reason
    image_failures = {f.item_id: f.reason for f in failures if f.stage == "image"}
    assert set(image_failures) == {images[0].stem, images[1].stem}
    assert "mask" in image_failures[images[1].stem]
    assert store.count() == 4


def test_missing_mask_policies(
    small_catalog: DemoCatalog, store: VectorStore, tmp_path: Path
) -> None:
    part = copy_catalog(small_catalog, tmp_path / "part", limit=3)
    lost = sorted(part.images.iterdir())[0]
    (part.masks / f"{lost.stem}_segm.png").unlink()
    catalog = open_catalog(part.images)
    with pytest.raises(MaskMissingError, match=f"{lost.name}: no mask"):
        ingest(catalog, store, EMBEDDERS, IngestOptions(workers=0, missing_mask="fail"))
    assert store.count() == 0  # nothing written before the check failed
    skip = ingest(catalog, store, EMBEDDERS, IngestOptions(workers=0, missing_mask="skip"))
    assert (skip.ingested, skip.no_mask_skipped) == (2, 1)
    rest = ingest(catalog, store, EMBEDDERS, IngestOptions(workers=0))
    assert (rest.ingested, rest.unmasked) == (1, 1)
    record = store.retrieve([point_id(lost.stem)])[0]
    assert record.payload["masked"] is False


def test_limit_and_worker_processes(small_catalog: DemoCatalog, store: VectorStore) -> None:
    options = IngestOptions(batch_size=4, workers=2, limit=10)
    summary = ingest(open_catalog(small_catalog.images), store, EMBEDDERS, options)
    assert summary.ingested == 10 and store.count() == 10


class _FailingShard:
    """A shard whose writes fail after `allowed` of them, like a disk filling up."""

    def __init__(self, shard: object, allowed: int) -> None:
        self.shard, self.allowed = shard, allowed

    def update(self, operation: object) -> None:
        if self.allowed <= 0:
            raise OSError("No space left on device (os error 28)")
        self.allowed -= 1
        self.shard.update(operation)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.shard, name)


def test_a_store_that_cannot_write_stops_clearly_and_resumes(
    small_catalog: DemoCatalog, tmp_path: Path
) -> None:
    from engine.errors import StoreError

    store = EdgeStore(tmp_path / "store")
    store.ensure_vector(FAKE, EMBEDDERS[FAKE].dim)
    real = store._shard
    store._shard = _FailingShard(real, allowed=2)  # type: ignore[assignment]
    with pytest.raises(StoreError, match=r"could not write \(No space left on device"):
        ingest(open_catalog(small_catalog.images), store, EMBEDDERS, OPTIONS)
    store._shard = real
    written = store.count()
    assert 0 < written < 23  # what was written before the failure stays
    resumed = ingest(open_catalog(small_catalog.images), store, EMBEDDERS, OPTIONS)
    assert (resumed.already, resumed.ingested) == (written, 23 - written)
    assert store.count(Filter(has_vector=FAKE)) == 23
    store.close()


def test_every_item_gets_its_colours_and_an_older_store_gets_them_on_the_next_run(
    small_catalog: DemoCatalog, store: VectorStore
) -> None:
    catalog = open_catalog(small_catalog.images)
    ingest(catalog, store, EMBEDDERS, OPTIONS)
    records = _all(store, small_catalog)
    colours = {pid: r.payload[COLOUR] for pid, r in records.items()}
    assert all(len(c) == BINS and abs(sum(v * v for v in c) - 1) < 1e-3 for c in colours.values())
    older = sorted(colours)[:5]  # stored before colours were
    for pid in older:
        store.set_payload([pid], {COLOUR: []})
    assert len(store.ids_matching(Filter(empty=COLOUR), limit=50)) == 5
    again = ingest(catalog, store, EMBEDDERS, OPTIONS)
    assert (again.ingested, again.recoloured, again.vectors) == (0, 5, {})
    restored = _all(store, small_catalog)
    assert {pid: restored[pid].payload[COLOUR] for pid in older} == {
        pid: colours[pid] for pid in older
    }
    assert not store.ids_matching(Filter(empty=COLOUR), limit=50)
