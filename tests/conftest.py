"""Shared fixtures: small known-answer catalogs, a random-init embedder, both store back-ends,
both event log back-ends, failing Qdrant servers. Builders the tests share live in
tests/builders.py."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import pytest

# pytest-xdist's workers run with COLUMNS=80; a console made with it set would keep that width
# whatever a test asks (the command line's tests set their own width per command)
os.environ.pop("COLUMNS", None)

from qdrant_client import QdrantClient

from engine.events.eventlog import EventLog
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


STRICT: Final = "FASHIONREC_STRICT"  # set (CI): a test may not skip for a missing part
# but for these: no Qdrant server runs here, and the shared real data lies beside a checkout
# of the project only where it is developed (a user's clone has none)
MAY_SKIP: Final = ("FASHIONREC_QDRANT_URL", "the shared real catalog is not on this machine")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under FASHIONREC_STRICT a skipped test fails, naming the part that was missing
    (PostgreSQL, the browser, the ImageNet weights, ...), unless its reason is in MAY_SKIP."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get(STRICT) and report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
        if not any(allowed in reason for allowed in MAY_SKIP):
            report.outcome = "failed"
            report.longrepr = f"{STRICT} is set and the test skipped: {reason}"


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


@pytest.fixture(scope="session")
def mobilenet() -> Embedder:
    """A seeded random-init MobileNetV2 in torch on the CPU in fp32: a real network, small
    enough that ingesting through it costs little."""
    return Embedder("mobilenet_v2", "random", device="cpu", precision="fp32", runtime="torch")


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


POSTGRES_ENV: Final = "FASHIONREC_TEST_POSTGRES_URL"  # set by scripts/with-postgres.sh
OpenLog = Callable[[Path], EventLog]


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of the PostgreSQL that `make test` started (scripts/with-postgres.sh); the
    test skips, saying why, where there is none."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        reason = os.environ.get("FASHIONREC_TEST_POSTGRES_SKIP") or (
            f"{POSTGRES_ENV} is not set: run the tests through `make test` "
            "(scripts/with-postgres.sh starts one)"
        )
        pytest.skip(f"no PostgreSQL server: {reason}")
    return url


def fresh_schema(server: str) -> str:
    """A URL of the server whose tables go to a schema of their own, new and empty."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}".encode())
    joiner = "&" if "?" in server else "?"
    return f"{server}{joiner}options=-csearch_path%3D{schema}"


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """An empty PostgreSQL database (a schema of its own) for one test."""
    return fresh_schema(postgres_server)


@pytest.fixture(params=["sqlite", "postgres"])
def open_log(request: pytest.FixtureRequest) -> Iterator[OpenLog]:
    """Opens an event log on each back-end: a SQLite file at the path given, or a PostgreSQL
    schema standing for that path (the same path opens the same schema again)."""
    opened: list[EventLog] = []
    schemas: dict[Path, str] = {}

    def at(path: Path) -> EventLog:
        if request.param == "sqlite":
            log = EventLog(path)
        else:
            server = request.getfixturevalue("postgres_server")
            log = EventLog(schemas.setdefault(path, fresh_schema(server)))
        opened.append(log)
        return log

    yield at
    for log in opened:
        log.close()


@pytest.fixture
def log(open_log: OpenLog, tmp_path: Path) -> EventLog:
    """An empty event log on each back-end."""
    return open_log(tmp_path / "events.sqlite")


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
