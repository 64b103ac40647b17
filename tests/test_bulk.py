"""Bulk export/load of precomputed vectors, and migration between back-ends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from engine.errors import FashionrecError
from engine.vectorstore.base import Filter, PointBatch, VectorStore
from engine.vectorstore.edge import EdgeStore
from engine.vectorstore.server import ServerStore
from engine.vectorstore.transfer import PAYLOADS, VECTORS, copy_points, export_points, load_points
from engine.vocabulary.schema import point_id
from tests.builders import build_catalog


def _two_backbones(store: VectorStore) -> list[dict]:
    payloads = build_catalog(store, products_per_category=2)
    store.ensure_vector("densenet121", 1024)
    rng = np.random.default_rng(0)
    vectors = rng.random((len(payloads), 1024), dtype=np.float32)
    ids = [point_id(p["item_id"]) for p in payloads]
    store.write(PointBatch(ids, payloads, "densenet121", vectors))
    return payloads


def _snapshot(store: VectorStore, backbone: str) -> dict[str, tuple[dict, np.ndarray]]:
    return {
        r.id: (r.payload, r.vector)  # type: ignore[misc]
        for r in store.scroll(None, Filter(has_vector=backbone), vector=backbone)
    }


def test_migrate_copies_every_vector_and_payload(tmp_path: Path) -> None:
    edge = EdgeStore(tmp_path / "store")
    _two_backbones(edge)
    server = ServerStore(QdrantClient(":memory:"))
    copied = copy_points(edge, server)
    assert copied == {"densenet121": 138, "resnet50": 138}
    assert copy_points(edge, server) == copied  # restartable: the same points again
    assert server.count() == edge.count() == 138
    for backbone in ("resnet50", "densenet121"):
        a, b = _snapshot(edge, backbone), _snapshot(server, backbone)
        assert a.keys() == b.keys()
        for pid, (payload, vector) in a.items():
            assert b[pid][0] == payload
            np.testing.assert_allclose(b[pid][1], vector, atol=1e-6)
    edge.close()


def test_export_then_load_elsewhere(tmp_path: Path) -> None:
    edge = EdgeStore(tmp_path / "store")
    build_catalog(edge)
    folder = tmp_path / "export"
    assert export_points(edge, "resnet50", folder) == edge.count()
    # the file's dimension is the backbone's: pad the synthetic 48-d vectors to 2048
    vectors = np.load(folder / VECTORS)
    padded = np.zeros((len(vectors), 2048), dtype=np.float32)
    padded[:, : vectors.shape[1]] = vectors
    np.save(folder / VECTORS, padded)
    target = ServerStore(QdrantClient(":memory:"))
    assert load_points(target, "resnet50", folder / VECTORS, folder / PAYLOADS) == (len(vectors), 0)
    assert load_points(target, "resnet50", folder / VECTORS, folder / PAYLOADS) == (0, len(vectors))
    assert target.count(Filter(has_vector="resnet50")) == len(vectors)
    edge.close()


def test_bad_bulk_files_write_nothing(tmp_path: Path) -> None:
    store = ServerStore(QdrantClient(":memory:"))
    vectors, payloads = tmp_path / VECTORS, tmp_path / PAYLOADS
    np.save(vectors, np.ones((2, 2048), dtype=np.float32))
    good = {"item_id": "a", "product_id": "p", "gender": "MEN", "category": "Denim"}
    payloads.write_text(json.dumps(good) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(FashionrecError, match=r"payloads.jsonl:2: not JSON"):
        load_points(store, "resnet50", vectors, payloads)
    payloads.write_text(json.dumps(good) + "\n", encoding="utf-8")
    with pytest.raises(FashionrecError, match="1 lines for 2 vectors"):
        load_points(store, "resnet50", vectors, payloads)
    with pytest.raises(FashionrecError, match=r"expected \(N, 1024\) for densenet121"):
        load_points(store, "densenet121", vectors, payloads)
    payloads.write_text(
        json.dumps(good) + "\n" + json.dumps({"item_id": "b"}) + "\n", encoding="utf-8"
    )
    with pytest.raises(
        FashionrecError, match=r"payloads\.jsonl:2: missing product_id, gender, category"
    ):
        load_points(store, "resnet50", vectors, payloads)
    assert store.count() == 0
