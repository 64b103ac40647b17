"""Metrics on hand-computed examples, and an evaluation run end to end (reproducible files)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import ConfigError
from engine.evaluate.evaluation import CachedSearch, Evaluation, SystemResult
from engine.evaluate.metrics import (
    Pair,
    accuracy,
    coverage,
    intra_list_diversity,
    markdown,
    novelty,
    trend_group,
)
from engine.evaluate.protocol import DIVERSITY_SWEEP, Protocol, StoredItems, simulated_cohort
from engine.evaluate.report import run
from engine.events.trending import PopularitySettings
from engine.recommend.rerank import Recommendation
from engine.vectorstore.base import Filter, Hit, Mmr, Query
from engine.vectorstore.edge import EdgeStore
from engine.vocabulary.geo import DEFAULT_REGION, Location
from engine.vocabulary.records import Purchase, User
from tests.builders import build_catalog, fashionrec, home_with_items


def _pair(gender: str, t: float, pop: float, sim: float, user_gender: str = "WOMEN") -> Pair:
    return Pair(user_gender, t, "Dresses", "x", "Skirts", gender, pop, sim)


def test_accuracy_by_hand_with_a_gender_failure() -> None:
    pairs = [
        _pair("WOMEN", 0.2, 0.5, 1.0),
        _pair("WOMEN", 0.2, 0.1, 0.8),
        _pair("MEN", 0.9, 0.9, 0.1),  # a recommendation of the wrong gender
        _pair("WOMEN", 0.9, 0.5, 0.3),
    ]
    got = accuracy(pairs)
    assert got.category_similarity == pytest.approx(100 * (1.0 + 0.8 + 0.1 + 0.3) / 4)
    assert got.gender_alignment == pytest.approx(75.0)
    assert got.popularity_mae == pytest.approx((0.3 + 0.1 + 0.0 + 0.4) / 4)
    assert got.popularity_mae_x100 == pytest.approx(20.0)
    assert math.isnan(accuracy([]).category_similarity)


def test_gender_alignment_reads_the_recommended_items_own_gender(tmp_path: Path) -> None:
    """A list whose rows claim the user's gender is still judged on the catalog's gender."""
    store = EdgeStore(tmp_path / "store")
    payloads = build_catalog(store, products_per_category=1)
    catalog = StoredItems.load(store)
    man = next(p for p in payloads if p["gender"] == "MEN")
    woman = next(p for p in payloads if p["gender"] == "WOMEN")
    user = User("u", "WOMEN", 0.5, Location(48.85, 2.35))
    purchase = Purchase("u", woman["item_id"], datetime(2025, 1, 1, tzinfo=UTC), None)
    wrong = Recommendation(
        rank=1,
        item_id=man["item_id"],
        product_id=man["product_id"],
        category=man["category"],
        gender="WOMEN",
        store_id=None,
        distance_km=None,
        visual=0.9,
        popularity=10.0,
        norm_popularity=0.5,
        popularity_term=1.0,
        category_sim=0.2,
        relevance=0.8,
        query_item=woman["item_id"],
    )
    evaluation = Evaluation(
        store,
        simulated_cohort(catalog, Protocol(users=2), DEFAULT_REGION),
        catalog,
        Protocol(backbones=("resnet50",)),
    )
    result = SystemResult(lists=[(user, purchase, [wrong])])
    assert accuracy(evaluation.pairs(result)).gender_alignment == 0.0
    store.close()


def test_beyond_accuracy_by_hand() -> None:
    assert coverage(["a", "b", "a"], 10) == pytest.approx(0.2)
    same = np.ones((3, 4), dtype=np.float32)
    orthogonal = np.eye(3, dtype=np.float32)
    assert intra_list_diversity([same]) == pytest.approx(0.0)
    assert intra_list_diversity([orthogonal]) == pytest.approx(1.0)
    assert intra_list_diversity([same, orthogonal]) == pytest.approx(0.5)
    popularity = {"a": 3.0, "b": 0.0, "c": 1.0}  # total with add-one smoothing: 4 + 3 = 7
    assert novelty(["a", "b"], popularity) == pytest.approx(
        (-math.log2(4 / 7) - math.log2(1 / 7)) / 2
    )
    assert [trend_group(t) for t in (0.0, 0.3299, 0.33, 0.6599, 0.66, 1.0)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]


def test_markdown_table() -> None:
    text = markdown(("a", "b"), [["x", 1.23456], ["y", float("nan")]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x | 1.235 |", "| y | — |"]


def _evaluate(store: EdgeStore, out: Path) -> dict:
    catalog = StoredItems.load(store)
    protocol = Protocol(users=12, max_purchases=4, k=5, seed=7, backbones=("resnet50",))
    shoppers = simulated_cohort(catalog, protocol, DEFAULT_REGION)
    return run(Evaluation(store, shoppers, catalog, protocol), out, {"description": "test"})


def test_evaluation_run_writes_reproducible_results(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "store")
    build_catalog(store)
    first = _evaluate(store, tmp_path / "run1")
    second = _evaluate(store, tmp_path / "run2")
    store.close()
    one, two = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("run1", "run2"))
    assert one == two  # same seed, identical numbers
    assert (tmp_path / "run1" / "tables.md").read_text() == (
        tmp_path / "run2" / "tables.md"
    ).read_text()
    assert set(one["table1"]) == {"resnet50", "random (same gender)", "most popular (same gender)"}
    assert list(one["table2"]) == ["full", "no popularity", "no visual", "no category"]
    assert list(one["table3"]) == ["low", "medium", "high"]
    assert [p["w_p"] for p in one["sweep"]["resnet50"]] == [i / 10 for i in range(11)]
    for row in one["table1"].values():
        assert row["gender_alignment"] == 100.0  # the filter holds, judged on the items
        assert 0 <= row["popularity_mae"] <= 1
        assert row["popularity_mae_x100"] == pytest.approx(100 * row["popularity_mae"])
    assert set(one["beyond"]["resnet50"]) == {
        "coverage",
        "diversity",
        "novelty",
        "avg_norm_popularity",
    }
    # the popularity term does its job: without it, recommendations stray from t
    assert (
        one["table2"]["no popularity"]["popularity_mae"] > one["table2"]["full"]["popularity_mae"]
    )
    tables = (tmp_path / "run1" / "tables.md").read_text()
    for title in ("Table 1", "Table 2", "Table 3", "Beyond accuracy"):
        assert f"## {title}" in tables
    for picture in ("grid.png", "sweep.png"):
        with Image.open(tmp_path / "run1" / picture) as image:
            assert image.format == "PNG" and image.width > 400 and image.height > 200
    assert first["table1"] == second["table1"]


def test_the_diversity_sweep_starts_at_the_full_model_and_diversifies(tmp_path: Path) -> None:
    """λ = 0 is the full model (Table 1's row, its beyond-accuracy diversity); raising λ
    never makes the lists less diverse on the test catalog; metrics, table and figure."""
    store = EdgeStore(tmp_path / "store")
    build_catalog(store)
    metrics = _evaluate(store, tmp_path / "run")
    store.close()
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert list(written["diversity_sweep"]) == ["resnet50"]  # the first backbone only
    points = written["diversity_sweep"]["resnet50"]
    assert [p["lambda"] for p in points] == list(DIVERSITY_SWEEP) == [0, 0.25, 0.5, 0.75, 1]
    keys = {"intra_list_diversity", "category_similarity", "popularity_mae", "coverage"}
    assert all(keys <= set(p) for p in points)
    zero, full, beyond = points[0], written["table1"]["resnet50"], written["beyond"]["resnet50"]
    assert zero["intra_list_diversity"] == beyond["diversity"]  # identical, not just close
    assert zero["coverage"] == beyond["coverage"]
    for key in ("category_similarity", "popularity_mae", "popularity_mae_x100", "pairs"):
        assert zero[key] == full[key], key
    diversity = [p["intra_list_diversity"] for p in points]
    assert diversity == sorted(diversity) and diversity[-1] > diversity[0]
    assert points[-1]["category_similarity"] < zero["category_similarity"]  # the price
    assert all(p["pairs"] == full["pairs"] for p in points)  # k per purchase at every λ
    tables = (tmp_path / "run" / "tables.md").read_text()
    assert "## Diversity sweep — MMR λ (resnet50" in tables
    assert "| λ | intra-list diversity | category sim. (%) |" in tables
    assert metrics["tables_md"] == tables
    with Image.open(tmp_path / "run" / "sweep.png") as image:
        assert image.width > 1200  # a third panel: diversity against λ


def test_no_diversity_sweep_skips_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--no-diversity-sweep: no search asks for vectors (the sweep's cost), an empty
    "diversity_sweep", no table, two panels; everything else as with it."""
    home = tmp_path / "home"
    home_with_items(home)
    with_vectors: list[bool] = []
    real = EdgeStore.search

    def search(self: EdgeStore, queries: Sequence[Query], fields: Sequence[str]) -> list[list[Hit]]:
        with_vectors.extend(q.with_vector for q in queries)
        return real(self, queries, fields)

    monkeypatch.setattr(EdgeStore, "search", search)
    args = ("evaluate", "--backbones", "resnet50", "--users", "6", "--out", tmp_path)
    on = fashionrec(*args, "--name", "on", home=home)
    assert any(with_vectors)
    with_vectors.clear()
    off = fashionrec(*args, "--name", "off", "--no-diversity-sweep", home=home)
    assert with_vectors and not any(with_vectors)
    assert on.returncode == off.returncode == 0, on.stderr + off.stderr
    with_it, without = (
        json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("on", "off")
    )
    assert with_it["setting"]["diversity_sweep"] == list(DIVERSITY_SWEEP)
    assert without["setting"]["diversity_sweep"] == [] and without["diversity_sweep"] == {}
    assert "Diversity sweep" not in (tmp_path / "off" / "tables.md").read_text()
    for key in ("table1", "table2", "table3", "beyond", "sweep"):
        assert with_it[key] == without[key], key
    with Image.open(tmp_path / "off" / "sweep.png") as image:
        assert 400 < image.width < 1200
    with pytest.raises(ConfigError, match="diversity"):
        Protocol(diversity_sweep=(0.0, 1.5)).validate()


def test_a_full_disk_leaves_no_half_written_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from engine.errors import FashionrecError

    store = EdgeStore(tmp_path / "store")
    build_catalog(store, products_per_category=1)
    _evaluate(store, tmp_path / "run")  # an earlier run of the same name
    before = (tmp_path / "run" / "metrics.json").read_text()
    real = Path.write_text

    def full(self: Path, *args: object, **kwargs: object) -> int:
        if self.name == "tables.md":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(FashionrecError, match=r"No space left on device.*nothing written"):
        _evaluate(store, tmp_path / "run")
    store.close()
    assert (tmp_path / "run" / "metrics.json").read_text() == before  # the earlier run is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "store"]


def test_a_trending_evaluation_ranks_on_trending_scores(tmp_path: Path) -> None:
    """In trending mode the simulated popular set and the popularity every system ranks on
    are the trending scores: purchases decayed by age, nothing else."""
    store = EdgeStore(tmp_path / "store")
    build_catalog(store)
    catalog = StoredItems.load(store)
    protocol = Protocol(users=40, max_purchases=4, k=5, seed=7, backbones=("resnet50",))
    trending = simulated_cohort(
        catalog, protocol, DEFAULT_REGION, popularity=PopularitySettings("trending", 14.0)
    )
    all_time = simulated_cohort(catalog, protocol, DEFAULT_REGION)
    bought = {p.item_id for _, users in trending.chunks(1000) for _, ps in users for p in ps}
    scores = trending.popularity.values
    assert {i for i, v in scores.items() if v > 0} == bought
    assert min(scores.values()) == 0.0
    sold = sum(len(ps) for _, users in trending.chunks(1000) for _, ps in users)
    assert max(scores.values()) > 0 and sum(scores.values()) <= sold  # decayed sales
    assert all(v == int(v) for v in all_time.popularity.values.values())  # counts
    assert trending.popularity.values != all_time.popularity.values
    metrics = run(
        Evaluation(store, trending, catalog, protocol), tmp_path / "run", {"description": "t"}
    )
    store.close()
    assert set(metrics["table1"]) >= {"resnet50"} and bought
    most = math.log2(sold + len(scores))  # the bits of an item nobody bought
    assert all(0 < b["novelty"] <= most for b in metrics["beyond"].values())
    # Table 3 in both modes, one run: the same shoppers ranked on all-time popularity too
    other = metrics["table3_other"]
    assert other["popularity"] == "all-time" and set(other["groups"]) == set(metrics["table3"])
    assert other["groups"] != metrics["table3"]  # another ranking, other lists
    tables = (tmp_path / "run" / "tables.md").read_text()
    assert "popularity trending)" in tables
    assert (
        "## Table 3 on the other popularity (resnet50; the same shoppers, ranked on all-time"
        in tables
    )


def test_the_search_cache_separates_vector_and_mmr_queries() -> None:
    """A search with vectors, or by MMR, never reuses the hits of a plain one."""
    asked: list[Query] = []

    def search(queries: Sequence[Query], fields: Sequence[str]) -> list[list[Hit]]:
        asked.extend(queries)
        vector = np.ones(2, dtype=np.float32)
        return [[Hit("p", 1.0, {}, vector if q.with_vector else None)] for q in queries]

    cached = CachedSearch(search)
    plain = Query(np.ones(4, dtype=np.float32), "resnet50", 10, Filter(within={"g": frozenset()}))
    variants = [
        plain,
        replace(plain, with_vector=True),
        replace(plain, mmr=Mmr(0.5, 10)),
        replace(plain, mmr=Mmr(0.25, 10)),
        replace(plain, filter=Filter(within={"g": frozenset()}, has_vector="resnet50")),
        replace(plain, filter=Filter(within={"g": frozenset()}, ids=frozenset({"a"}))),
    ]
    keys = {CachedSearch._key(q, ["f"]) for q in variants}
    assert len(keys) == len(variants)
    assert cached([plain], ["f"])[0][0].vector is None
    assert cached([replace(plain, with_vector=True)], ["f"])[0][0].vector is not None
    assert len(asked) == 2
    cached([plain, replace(plain, with_vector=True)], ["f"])  # both remembered
    assert len(asked) == 2
