"""Shared fixtures: small known-answer catalogs, a random-init embedder, both store back-ends,
failing Qdrant servers. Builders the tests share live in tests/builders.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

import ingest.runtimes as runtimes
from engine.vectorstore.base import VectorStore
from engine.vectorstore.edge import EdgeStore
from engine.vectorstore.server import ServerStore
from ingest.democatalog import DemoCatalog, write_demo_catalog
from ingest.embedder import Embedder
from ingest.runtimes import CACHE_ENV
from tests.builders import FailingCollection, FailingQdrant, serving


@pytest.fixture(scope="session", autouse=True)
def runtimes_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Exported models and runtime measurements in a folder of the test session's own."""
    folder = tmp_path_factory.mktemp("runtimes")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(autouse=True)
def torch_unless_runtimes_are_tested(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside tests/test_runtimes.py the embedders run in torch, as before runtimes could be
    chosen: the compiled runtimes and their measurement are that file's subject."""
    if request.module.__name__.rsplit(".", 1)[-1] != "test_runtimes":
        monkeypatch.setattr(runtimes, "installed", lambda runtime: runtime == "torch")


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


@pytest.fixture
def edge_and_memory(tmp_path: Path) -> Iterator[tuple[EdgeStore, ServerStore]]:
    """Two empty stores, one per back-end, for tests that fill both and compare them."""
    edge, memory = EdgeStore(tmp_path / "store"), ServerStore(QdrantClient(":memory:"))
    yield edge, memory
    edge.close()
    memory.close()


@pytest.fixture
def failing_server() -> Iterator[str]:
    """The URL of a Qdrant server whose every call fails with 500 (disk quota exceeded)."""
    with serving(FailingQdrant) as url:
        yield url


@pytest.fixture
def failing_collection_server() -> Iterator[str]:
    """The URL of a Qdrant server that has the collection but fails every other call."""
    with serving(FailingCollection) as url:
        yield url
