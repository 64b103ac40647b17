"""Shared fixtures: small known-answer catalogs, a random-init embedder, both store back-ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from engine.vectorstore.base import VectorStore
from engine.vectorstore.edge import EdgeStore
from engine.vectorstore.server import ServerStore
from ingest.democatalog import DemoCatalog, write_demo_catalog
from ingest.embedder import Embedder


@pytest.fixture(scope="session")
def small_catalog(tmp_path_factory: pytest.TempPathFactory) -> DemoCatalog:
    """23 front views (every gender/category pair once), 150×220, with masks."""
    root = tmp_path_factory.mktemp("catalog")
    return write_demo_catalog(root, products_per_category=1, views=("1_front",), size=(150, 220))


@pytest.fixture(scope="session")
def resnet() -> Embedder:
    """A seeded random-init ResNet-50 on the CPU in fp32 (deterministic across back-ends)."""
    return Embedder("resnet50", "random", device="cpu", precision="fp32")


@pytest.fixture(params=["edge", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    """An empty store on each back-end: Qdrant Edge, and qdrant-client's local mode."""
    backend: VectorStore
    if request.param == "edge":
        backend = EdgeStore(tmp_path / "store")
    else:
        backend = ServerStore(QdrantClient(":memory:"))
    yield backend
    backend.close()


def copy_catalog(catalog: DemoCatalog, target: Path, limit: int | None = None) -> DemoCatalog:
    """A private copy of (part of) a catalog that a test may damage."""
    images, masks = target / "images", target / "segm"
    images.mkdir(parents=True)
    masks.mkdir()
    files = sorted(catalog.images.iterdir())[:limit]
    for image in files:
        (images / image.name).write_bytes(image.read_bytes())
        mask = catalog.masks / f"{image.stem}_segm.png"
        (masks / mask.name).write_bytes(mask.read_bytes())
    return DemoCatalog(images, masks, len(files))
