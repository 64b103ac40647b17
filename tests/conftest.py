"""Shared fixtures: small known-answer catalogs, a random-init embedder, both store back-ends,
failing Qdrant servers. Builders the tests share live in tests/builders.py."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

# pytest-xdist's workers run with COLUMNS=80; a console made with it set would keep that width
# whatever a test asks (the command line's tests set their own width per command)
os.environ.pop("COLUMNS", None)

from qdrant_client import QdrantClient

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


COMPILED: Final = ("openvino", "onnxruntime")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `runtimes` load OpenVINO and ONNX Runtime, which once made a long test
    process segfault while it waited on a subprocess: they run in a pytest process of their
    own. With other tests selected and no -m given, they are left for `pytest -m runtimes`
    (`make test` runs both)."""
    if config.option.markexpr:
        return
    marked = [item for item in items if item.get_closest_marker("runtimes")]
    if marked and len(marked) < len(items):
        items[:] = [item for item in items if not item.get_closest_marker("runtimes")]
        config.hook.pytest_deselected(items=marked)


def pytest_report_header(config: pytest.Config) -> str:
    return "tests marked runtimes run in a process of their own: pytest -m runtimes"


@pytest.fixture(autouse=True)
def compiled_runtimes_stay_out(request: pytest.FixtureRequest) -> Iterator[None]:
    """Outside the tests marked `runtimes`, nothing loads a compiled runtime into the test
    process: a test that ingests here names its runtime (torch), and `--runtime auto` runs
    end to end in subprocesses (tests/test_faults.py, the demo)."""
    before = {name for name in COMPILED if name in sys.modules}
    yield
    if request.node.get_closest_marker("runtimes") is None:
        loaded = sorted({name for name in COMPILED if name in sys.modules} - before)
        assert not loaded, (
            f"{', '.join(loaded)} loaded into the test process: pass runtime torch, run the "
            "command in a subprocess, or mark the test runtimes"
        )


@pytest.fixture(scope="session")
def small_catalog(tmp_path_factory: pytest.TempPathFactory) -> DemoCatalog:
    """23 front views (every gender/category pair once), 150×220, with masks."""
    root = tmp_path_factory.mktemp("catalog")
    return write_demo_catalog(root, products_per_category=1, views=("1_front",), size=(150, 220))


@pytest.fixture(scope="session")
def resnet() -> Embedder:
    """A seeded random-init ResNet-50 in torch on the CPU in fp32 (deterministic across
    back-ends)."""
    return Embedder("resnet50", "random", device="cpu", precision="fp32", runtime="torch")


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
