"""The server back-end against a live Qdrant server (set FASHIONREC_QDRANT_URL to run)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.catalog.sources import open_catalog
from engine.vectorstore.base import Filter
from engine.vectorstore.server import ServerStore
from ingest.democatalog import DemoCatalog
from ingest.embedder import Embedder
from ingest.options import IngestOptions
from ingest.pipeline import ingest

URL = os.environ.get("FASHIONREC_QDRANT_URL")
pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(not URL, reason="FASHIONREC_QDRANT_URL is not set: no live Qdrant server"),
]


@pytest.fixture
def live() -> Iterator[ServerStore]:
    """A throw-away collection on the live server."""
    assert URL is not None
    store = ServerStore.connect(URL, collection=f"fashionrec-test-{uuid.uuid4().hex[:8]}")
    yield store
    store.client.delete_collection(store.collection)
    store.close()


def test_ingest_into_a_live_server(
    live: ServerStore, small_catalog: DemoCatalog, resnet: Embedder
) -> None:
    options = IngestOptions(batch_size=8, workers=0)
    summary = ingest(open_catalog(small_catalog.images), live, {"resnet50": resnet}, options)
    assert summary.ingested == 23 and live.count() == 23
    again = ingest(open_catalog(small_catalog.images), live, {"resnet50": resnet}, options)
    assert again.already == 23
    densenet = Embedder("densenet121", "random", device="cpu", precision="fp32", runtime="torch")
    ingest(open_catalog(small_catalog.images), live, {"densenet121": densenet}, options)
    assert live.count(Filter(has_vector="densenet121")) == 23
    assert live.vector_dims() == {"resnet50": 2048, "densenet121": 1024}


def test_migrate_and_rerank_inside_a_live_server(live: ServerStore, tmp_path: Path) -> None:
    from engine.recommend.recommender import Params, Recommender
    from engine.vectorstore.edge import EdgeStore
    from engine.vectorstore.transfer import copy_points
    from tests.builders import build_catalog, buy, shopper

    edge = EdgeStore(tmp_path / "store")
    payloads = build_catalog(edge)
    assert copy_points(edge, live) == {"resnet50": len(payloads)}
    edge.close()
    engine = Recommender(live)
    bought = [p["item_id"] for p in payloads if p["gender"] == "WOMEN"][:3]
    client = engine.for_user(shopper("WOMEN", 0.7), buy(bought), Params())
    server = engine.for_user(shopper("WOMEN", 0.7), buy(bought), Params(rerank="server"))
    assert [r.item_id for r in client.merged] == [r.item_id for r in server.merged]
