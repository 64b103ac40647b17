"""The store's error contract on both back-ends: every failure of a back-end call, reads
and scrolls included, reaches the caller as a StoreError with one line naming the store."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final, NoReturn

import numpy as np
import pytest

from engine.errors import StoreError
from engine.vectorstore.base import Filter, FormulaQuery, PointBatch, Query, VectorStore
from engine.vectorstore.edge import CONFIG_FILE, EdgeStore
from engine.vectorstore.formula import Var
from engine.vectorstore.server import ServerStore
from engine.vocabulary.schema import point_id
from tests.builders import FailingCollection, FailingQdrant, catalog_items, serving, store_items

ITEM: Final = "WOMEN-Dresses-id_00000001-01_1_front"  # one of catalog_items(1)
VECTOR: Final = np.full(4, 0.5, dtype=np.float32)  # a unit "resnet50" vector of the 4-d items
QUERY: Final = Query(VECTOR, "resnet50", 3, Filter(equals={"gender": "WOMEN"}))
BATCH: Final = PointBatch([point_id(ITEM)], [{"item_id": ITEM}], "resnet50", VECTOR[None])

# One call per store method that reaches the back-end; scroll is iterated to its end.
CALLS: Final[dict[str, Callable[[VectorStore], object]]] = {
    "vector_dims": lambda s: s.vector_dims(),
    "ids_matching": lambda s: s.ids_matching(Filter(ids=frozenset({point_id(ITEM)})), 10),
    "scroll": lambda s: list(s.scroll(None)),
    "search": lambda s: s.search([QUERY], ["item_id"]),
    "formula_search": lambda s: s.formula_search(
        [FormulaQuery(QUERY, Var("$score"), {}, 3)], ["item_id"]
    ),
    "value_range": lambda s: s.value_range("popularity"),
    "count": lambda s: s.count(Filter(equals={"gender": "MEN"})),
    "facet": lambda s: s.facet("gender"),
    "retrieve": lambda s: s.retrieve([point_id(ITEM)], vector="resnet50"),
    "set_payload": lambda s: s.set_payload([point_id(ITEM)], {"popularity": 3.0}),
    "upsert": lambda s: s.upsert(BATCH),
    "add_vectors": lambda s: s.add_vectors(BATCH),
    "write": lambda s: s.write(BATCH),
    "ensure_vector": lambda s: s.ensure_vector("densenet121", 8),  # a new named vector
    "optimize": lambda s: s.optimize(),
    "flush": lambda s: s.flush(),
}
READS: Final = {
    "vector_dims",
    "ids_matching",
    "scroll",
    "search",
    "formula_search",
    "value_range",
    "count",
    "facet",
    "retrieve",
    "write",  # asks which points exist before it writes
}
NOT_ON_A_SERVER: Final = {"optimize", "flush"}  # no-ops there: the server indexes, writes wait


def _assert_one_line(error: StoreError, store: str) -> str:
    message = str(error)
    assert message and len(message.splitlines()) == 1 and "\r" not in message, message
    assert store in message, message
    return message


# --- Qdrant Edge ---------------------------------------------------------------------------


class _BrokenShard:
    """A shard whose every method fails with a multi-line error, as a damaged one might."""

    def __getattr__(self, name: str) -> Callable[..., NoReturn]:
        def fail(*args: object, **kwargs: object) -> NoReturn:
            raise RuntimeError(f"Service internal error: {name} failed\nsegment is corrupted")

        return fail


class _FailsAfter:
    """A shard whose scroll answers `pages` times, then fails; the rest passes through."""

    def __init__(self, shard: object, pages: int) -> None:
        self.shard, self.pages = shard, pages

    def scroll(self, request: object) -> object:
        if self.pages <= 0:
            raise OSError("Input/output error (os error 5)")
        self.pages -= 1
        return self.shard.scroll(request)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.shard, name)


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[EdgeStore]:
    """An embedded store holding catalog_items(1) (15 points of 4-d "resnet50" vectors)."""
    store = EdgeStore(tmp_path / "store")
    store_items(store, catalog_items(1))
    yield store
    store.close()


@pytest.mark.parametrize("call", sorted(set(CALLS) - {"vector_dims"}))
def test_every_failing_edge_call_is_a_one_line_store_error(edge: EdgeStore, call: str) -> None:
    real = edge._shard
    edge._shard = _BrokenShard()  # type: ignore[assignment]
    try:
        with pytest.raises(StoreError) as info:
            CALLS[call](edge)
    finally:
        edge._shard = real
    message = _assert_one_line(info.value, str(edge.path))
    assert "Service internal error" in message and "segment is corrupted" not in message
    doing = "could not be read" if call in READS else "could not write"
    assert doing in message, message


def test_closing_an_edge_store_that_fails_is_a_one_line_store_error(edge: EdgeStore) -> None:
    real = edge._shard
    edge._shard = _BrokenShard()  # type: ignore[assignment]
    try:
        with pytest.raises(StoreError) as info:
            edge.close()
    finally:
        edge._shard = real  # the fixture closes the real shard
    assert "could not write" in _assert_one_line(info.value, str(edge.path))


def test_a_scroll_failing_on_a_later_page_is_a_store_error(edge: EdgeStore) -> None:
    real = edge._shard
    edge._shard = _FailsAfter(real, pages=1)  # type: ignore[assignment]
    seen = []
    try:
        with pytest.raises(StoreError) as info:
            for record in edge.scroll(["item_id"], page=4):
                seen.append(record.id)
    finally:
        edge._shard = real
    assert len(seen) == 4  # the first page arrived, the second failed
    message = _assert_one_line(info.value, str(edge.path))
    assert "could not be read (Input/output error (os error 5))" in message


@pytest.mark.parametrize("damage", ["not JSON", "no vectors", "a folder"])
def test_an_unreadable_config_file_is_a_one_line_store_error(edge: EdgeStore, damage: str) -> None:
    config = edge.path / CONFIG_FILE
    saved = config.read_bytes()
    if damage == "not JSON":
        config.write_text("{not json", encoding="utf-8")
    elif damage == "no vectors":
        config.write_text(json.dumps({"hnsw_config": {}}), encoding="utf-8")
    else:
        config.unlink()
        config.mkdir()
    try:
        with pytest.raises(StoreError) as info:
            edge.vector_dims()
        with pytest.raises(StoreError):
            edge.ensure_vector("densenet121", 8)  # reads the sizes first
    finally:
        if config.is_dir():
            shutil.rmtree(config)
        config.write_bytes(saved)
    assert "could not be read" in _assert_one_line(info.value, str(edge.path))


def test_opening_a_damaged_edge_store_is_a_one_line_store_error(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "store")
    store_items(store, catalog_items(1))
    store.close()
    (tmp_path / "store" / CONFIG_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(StoreError) as info:
        EdgeStore(tmp_path / "store")
    assert "cannot open the store" in _assert_one_line(info.value, str(tmp_path / "store"))


# --- a Qdrant server -----------------------------------------------------------------------


@pytest.fixture
def server(failing_collection_server: str) -> Iterator[ServerStore]:
    """A store on a server that has the collection, then fails every call with 500."""
    store = ServerStore.connect(failing_collection_server, timeout=5)
    yield store
    store.close()


@pytest.mark.filterwarnings("ignore:Batch upload failed")
@pytest.mark.parametrize("call", sorted(set(CALLS) - NOT_ON_A_SERVER))
def test_every_failing_server_call_is_a_one_line_store_error(
    server: ServerStore, call: str
) -> None:
    with pytest.raises(StoreError) as info:
        CALLS[call](server)
    message = _assert_one_line(info.value, server.location)
    assert "answered 500" in message and "disk quota exceeded" in message


@pytest.mark.parametrize("call", sorted(NOT_ON_A_SERVER))
def test_server_no_ops_make_no_call(server: ServerStore, call: str) -> None:
    assert CALLS[call](server) is None


NGINX_502: Final = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


class _BehindAProxy(FailingCollection):
    """A collection behind a proxy that answers 502 with its multi-line HTML page."""

    status = 502
    body = NGINX_502


class _NotQdrant(FailingQdrant):
    """Some other web service at the URL: 200 and an HTML page to every request."""

    status = 200
    body = b"<html><body>It works!</body></html>"


class _NotQdrantButExists(_NotQdrant):
    """The same, except that it says the collection exists (so a store opens)."""

    has_collection = True


def test_connecting_to_a_server_that_is_not_qdrant_is_a_one_line_store_error() -> None:
    with serving(_NotQdrant) as url, pytest.raises(StoreError) as info:
        ServerStore.connect(url, timeout=5)
    _assert_one_line(info.value, url)


@pytest.mark.filterwarnings("ignore:Batch upload failed")
@pytest.mark.parametrize("call", ["count", "scroll", "search", "upsert"])
@pytest.mark.parametrize(
    ("server", "expected"),
    [(_BehindAProxy, "answered 502"), (_NotQdrantButExists, "did not answer as Qdrant does")],
)
def test_odd_answers_are_one_line_store_errors(
    server: type[FailingQdrant], expected: str, call: str
) -> None:
    """A proxy's multi-line error page, or some other web service answering 200."""
    with serving(server) as url:
        store = ServerStore.connect(url, timeout=5)
        try:
            with pytest.raises(StoreError) as info:
                CALLS[call](store)
        finally:
            store.close()
    assert expected in _assert_one_line(info.value, store.location)
