"""The store interface on both back-ends: Qdrant Edge and qdrant-client's local mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe
from qdrant_client import QdrantClient, models

from engine.errors import StoreError, StoreLockedError
from engine.vectorstore.base import (
    Filter,
    Hit,
    Near,
    PointBatch,
    Query,
    VectorStore,
    best_cosine,
)
from engine.vectorstore.edge import EdgeStore
from engine.vectorstore.server import ServerStore
from engine.vocabulary.geo import distance_km
from engine.vocabulary.schema import HIT_FIELDS, SEARCH_FILTER_FIELDS, point_id
from tests.builders import HOME, SHOPS, assert_congruent, assert_same_ranking, build_catalog


def _batch(ids: list[str], name: str, dim: int, gender: str = "WOMEN") -> PointBatch:
    rng = np.random.default_rng(len(ids) + dim)
    vectors = rng.random((len(ids), dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    payloads = [
        {"item_id": i, "gender": gender, "category": "Dresses", "masked": True} for i in ids
    ]
    return PointBatch([point_id(i) for i in ids], payloads, name, vectors)


def test_point_ids_are_deterministic() -> None:
    assert point_id("WOMEN-Dresses-id_00000021-05_1_front") == point_id(
        "WOMEN-Dresses-id_00000021-05_1_front"
    )
    assert point_id("a") != point_id("b")


def test_write_count_facet_and_retrieve(store: VectorStore) -> None:
    assert store.count() == 0 and store.vector_dims() == {}
    store.ensure_vector("resnet50", 8)
    store.write(_batch(["a", "b", "c"], "resnet50", 8))
    store.write(_batch(["d"], "resnet50", 8, gender="MEN"))
    assert store.count() == 4
    assert store.facet("gender") == {"WOMEN": 3, "MEN": 1}
    assert store.count(Filter(equals={"gender": "MEN"})) == 1
    records = store.retrieve([point_id("a")], vector="resnet50")
    assert records[0].payload["popularity"] == 0.0
    assert records[0].vector is not None and records[0].vector.shape == (8,)


def test_second_backbone_is_added_to_the_same_points(store: VectorStore) -> None:
    store.ensure_vector("resnet50", 8)
    store.write(_batch(["a", "b"], "resnet50", 8))
    store.ensure_vector("densenet121", 4)
    assert store.vector_dims() == {"resnet50": 8, "densenet121": 4}
    store.write(_batch(["b", "c"], "densenet121", 4))
    assert store.count() == 3
    assert store.count(Filter(has_vector="resnet50")) == 2
    assert store.count(Filter(has_vector="densenet121")) == 2
    both = store.retrieve([point_id("b")], vector="resnet50")[0]
    assert both.vector is not None  # the first backbone's vector survived
    with pytest.raises(StoreError, match="resnet50 vectors of size 8, not 16"):
        store.ensure_vector("resnet50", 16)


def test_ids_matching_has_vector(store: VectorStore) -> None:
    store.ensure_vector("resnet50", 8)
    store.ensure_vector("vgg16", 8)
    store.write(_batch(["a", "b"], "resnet50", 8))
    asked = frozenset(point_id(i) for i in ["a", "b", "z"])
    assert store.ids_matching(Filter(ids=asked), 10) == {point_id("a"), point_id("b")}
    assert store.ids_matching(Filter(ids=asked, has_vector="vgg16"), 10) == set()


def test_edge_store_indexes_what_was_written_before_it_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Qdrant Edge has no background optimizer: a payload update moves points into a plain
    segment that every search then scans, so a store that was written to optimizes when it
    closes (and one that was only read does not)."""
    calls: list[str] = []
    optimize = EdgeStore.optimize
    monkeypatch.setattr(EdgeStore, "optimize", lambda s: calls.append("optimize") or optimize(s))
    store = EdgeStore(tmp_path / "store")
    store.ensure_vector("resnet50", 8)
    store.write(_batch(["a", "b"], "resnet50", 8))
    store.optimize()
    calls.clear()
    store.set_payload([point_id("a")], {"popularity": 3.0})
    store.close()
    assert calls == ["optimize"]
    reader = EdgeStore(tmp_path / "store")
    assert reader.retrieve([point_id("a")])[0].payload["popularity"] == 3.0
    reader.close()
    assert calls == ["optimize"]


def test_edge_store_locked_by_another_process(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "store")
    store.ensure_vector("resnet50", 4)
    code = (
        "import sys; from pathlib import Path\n"
        "from engine.vectorstore.edge import EdgeStore\n"
        "from engine.errors import StoreLockedError\n"
        "try:\n    EdgeStore(Path(sys.argv[1]))\n"
        "except StoreLockedError as e:\n    print(e); sys.exit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "store")], capture_output=True, text=True
    )
    assert result.returncode == 3, result.stderr
    assert "held by another fashionrec process" in result.stdout
    assert str(tmp_path / "store") in result.stdout
    store.close()
    EdgeStore(tmp_path / "store").close()  # free again once closed


def test_edge_store_locked_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store held open is refused before Qdrant Edge touches its files: a refused load
    once broke the holder's next flush (a service failed as it stopped after `fashionrec
    info` had been refused)."""
    store = EdgeStore(tmp_path / "store")
    store.ensure_vector("resnet50", 4)
    with monkeypatch.context() as patch:
        patch.setattr(qe.EdgeShard, "load", lambda *args: pytest.fail("the shard was loaded"))
        with pytest.raises(StoreLockedError, match="held by another fashionrec process"):
            EdgeStore(tmp_path / "store", wait_s=0.3)
    store.close()
    EdgeStore(tmp_path / "store").close()  # free again once closed


def test_readers_wait_briefly_for_another_process(tmp_path: Path) -> None:
    created = EdgeStore(tmp_path / "store")
    created.ensure_vector("resnet50", 4)
    created.close()
    code = (
        "import sys, time; from pathlib import Path\n"
        "from engine.vectorstore.edge import EdgeStore\n"
        "s = EdgeStore(Path(sys.argv[1])); print('held', flush=True); time.sleep(1.5); s.close()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "store")], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(StoreLockedError):
        EdgeStore(tmp_path / "store", wait_s=0.0)
    store = EdgeStore(tmp_path / "store", wait_s=10.0)  # opens once the holder is done
    assert store.exists
    store.close()
    holder.wait()


def test_only_search_filter_fields_get_hnsw_links_on_edge(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "store")
    store.ensure_vector("resnet50", 8)
    schema = store.shard.info().payload_schema
    linked = {key for key, info in schema.items() if getattr(info.params, "enable_hnsw", None)}
    assert linked == SEARCH_FILTER_FIELDS == {"gender", "store_location"}
    assert {"item_id", "product_id", "popularity", "weights_resnet50"} <= schema.keys()
    store.close()


def test_only_search_filter_fields_get_hnsw_links_on_a_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = ServerStore(QdrantClient(":memory:"))
    asked: dict[str, bool | None] = {}

    def record(collection: str, key: str, params: models.PayloadSchemaParams) -> None:
        asked[key] = getattr(params, "enable_hnsw", None)

    monkeypatch.setattr(store.client, "create_payload_index", record)
    store.ensure_vector("resnet50", 8)
    assert {key for key, hnsw in asked.items() if hnsw} == SEARCH_FILTER_FIELDS
    assert asked["item_id"] is False and asked["weights_resnet50"] is False


def test_searches_are_congruent_on_edge_and_memory(
    edge_and_memory: tuple[EdgeStore, ServerStore],
) -> None:
    """Qdrant Edge (HNSW, int8 copies rescored) and the exact local mode rank alike."""
    edge, memory = edge_and_memory
    payloads = build_catalog(edge)
    build_catalog(memory)
    vectors = {r.id: r.vector for r in edge.scroll([], vector="resnet50")}
    rng = np.random.default_rng(4)
    queries = [
        Query(vectors[point_id(payloads[i]["item_id"])], "resnet50", limit)  # type: ignore[arg-type]
        for i in rng.choice(len(payloads), 10, replace=False)
        for limit in (1, 10, 50)
    ]
    assert assert_congruent(lambda s: s.search(queries, HIT_FIELDS), edge, memory) == 10 * 61


def test_filtered_search_is_congruent_on_edge_and_memory(
    edge_and_memory: tuple[EdgeStore, ServerStore],
) -> None:
    """Gender equals, products excluded, shops within a radius: the same hits in the same
    order on both back-ends, and only hits that pass the filter."""
    edge, memory = edge_and_memory
    payloads = build_catalog(edge)
    build_catalog(memory)
    vectors = {r.id: r.vector for r in edge.scroll([], vector="resnet50")}
    rng = np.random.default_rng(5)
    queries = []
    for i in rng.choice(len(payloads), 20, replace=False):
        item = payloads[i]
        excluded = frozenset({item["product_id"], payloads[(i + 3) % len(payloads)]["product_id"]})
        within = Filter(
            equals={"gender": item["gender"]},
            exclude={"product_id": excluded},
            near=Near("store_location", HOME.lat, HOME.lon, 20.0),  # S01 and S02, not S03
        )
        vector = vectors[point_id(item["item_id"])]
        queries.append(Query(vector, "resnet50", 30, within))  # type: ignore[arg-type]
    compared = assert_congruent(lambda s: s.search(queries, HIT_FIELDS), edge, memory)
    assert compared == 20 * 30
    for query, hits in zip(queries, edge.search(queries, HIT_FIELDS), strict=True):
        assert query.filter is not None
        for hit in hits:
            assert hit.payload["gender"] == query.filter.equals["gender"]
            assert hit.payload["product_id"] not in query.filter.exclude["product_id"]
            assert hit.payload["store_id"] in {"S01", "S02"}
            assert distance_km(HOME, SHOPS[hit.payload["store_id"]]) <= 20.0


def test_a_search_from_several_vectors_scores_each_point_by_its_best_cosine(
    edge_and_memory: tuple[EdgeStore, ServerStore],
) -> None:
    """Several vectors in one query (Qdrant's recommend, best_score): points ranked by
    their best cosine to any of them, as the best of one search per vector (the cosine read
    back from Qdrant's scale); the same hits on both back-ends, filters applied."""
    edge, memory = edge_and_memory
    payloads = build_catalog(edge)
    build_catalog(memory)
    vectors = {r.id: r.vector for r in edge.scroll([], vector="resnet50")}
    rng = np.random.default_rng(6)
    women = Filter(equals={"gender": "WOMEN"})
    queries = []
    for _ in range(5):
        rows = rng.choice(len(payloads), 3, replace=False)
        several = np.stack([vectors[point_id(payloads[i]["item_id"])] for i in rows])
        several += rng.normal(0.0, 0.05, several.shape)  # no exact ties at the top
        queries.append(Query(several.astype(np.float32), "resnet50", 20, women))
    assert assert_congruent(lambda s: s.search(queries, HIT_FIELDS), edge, memory) == 5 * 20
    for query, hits in zip(queries, memory.search(queries, HIT_FIELDS), strict=True):
        singles = [Query(v, "resnet50", 20, women) for v in query.vector]
        best: dict[str, float] = {}
        for found in memory.search(singles, HIT_FIELDS):
            for hit in found:
                best[hit.id] = max(best.get(hit.id, -1.0), hit.score)
        want = sorted(best.items(), key=lambda pair: -pair[1])[:20]
        assert [h.id for h in hits] == [i for i, _ in want]
        scores = best_cosine(np.array([h.score for h in hits]))
        assert np.allclose(scores, [score for _, score in want], atol=1e-5)
        assert all(h.payload["gender"] == "WOMEN" for h in hits)


def test_the_congruence_check_catches_what_differs() -> None:
    def ranking(*pairs: tuple[str, float]) -> list[Hit]:
        return [Hit(pid, score, {}) for pid, score in pairs]

    same = ranking(("a", 0.9), ("b", 0.8), ("c", 0.7))
    assert_same_ranking(same, ranking(("a", 0.9), ("b", 0.8 + 1e-7), ("c", 0.7)))
    tied = ranking(("a", 0.9), ("b", 0.8), ("c", 0.8), ("d", 0.7))
    assert_same_ranking(tied, ranking(("a", 0.9), ("c", 0.8), ("b", 0.8), ("d", 0.7)))
    for other in (
        ranking(("b", 0.9), ("a", 0.8), ("c", 0.7)),  # two ranks swapped
        ranking(("a", 0.9), ("b", 0.8), ("c", 0.6)),  # a score off
        ranking(("a", 0.9), ("b", 0.8)),  # one result short
        [Hit("a", 0.9, {"gender": "MEN"}), *same[1:]],  # another payload
    ):
        with pytest.raises(AssertionError):
            assert_same_ranking(same, other)
    with pytest.raises(AssertionError):  # a tie of other points
        assert_same_ranking(tied, ranking(("a", 0.9), ("b", 0.8), ("x", 0.8), ("d", 0.7)))
