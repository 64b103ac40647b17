"""Shoppers with taste and the leave-last-out protocol: the measures by hand, bootstrap
intervals, a simulation whose purchases follow a hidden style or the trend of the moment,
popularity as it stood before a held-out purchase, and the evaluation's tables."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from engine.catalog.taxonomy import deepfashion
from engine.errors import ConfigError
from engine.evaluate.evaluation import Evaluation
from engine.evaluate.holdout import (
    ABLATIONS,
    BASELINES,
    FULL,
    PRESET_ROWS,
    RERANK,
    SOURCE_ABLATIONS,
    Interval,
    bootstrap,
    scores,
)
from engine.evaluate.protocol import Protocol, StoredItems, shopper_styles, simulated_cohort
from engine.evaluate.report import run
from engine.events.trending import PopularitySettings
from engine.shoppers.simulation import CatalogView, SimulationConfig
from engine.shoppers.taste import Styles, colour_family, simulate_taste, style_attributes
from engine.vectorstore.base import PointBatch
from engine.vectorstore.edge import EdgeStore
from engine.vocabulary.geo import DEFAULT_REGION
from engine.vocabulary.schema import ATTRIBUTES, point_id
from tests.builders import CATALOG_DIM, build_catalog

COLOURS = ("Navy Blue", "Black", "Off White", "Maroon")


def test_the_measures_by_hand() -> None:
    assert scores(["a", "b", "c"], {"b"}, 3) == pytest.approx((1.0, 1 / np.log2(3), 1.0))
    assert scores(["a", "b", "c"], {"z"}, 3) == (0.0, 0.0, 0.0)
    hit, ndcg, recall = scores(["x", "a", "y", "b"], {"a", "b"}, 4)
    ideal = 1 + 1 / np.log2(3)
    assert (hit, recall) == (1.0, 1.0)
    assert ndcg == pytest.approx((1 / np.log2(3) + 1 / np.log2(5)) / ideal)
    assert scores(["a", "b", "c"], {"c"}, 2) == (0.0, 0.0, 0.0)  # past k


def test_bootstrap_intervals_and_paired_differences() -> None:
    rng = np.random.default_rng(0)
    full = rng.binomial(1, 0.3, 400).astype(float)
    same = full.copy()
    worse = full * rng.binomial(1, 0.5, 400)
    means, deltas = bootstrap({FULL: full, "same": same, "worse": worse}, FULL, seed=1)
    for interval in means.values():
        assert interval.low <= interval.mean <= interval.high
    assert means[FULL].mean == pytest.approx(full.mean())
    assert deltas["same"] == Interval(0.0, 0.0, 0.0) and not deltas["same"].excludes_zero()
    assert deltas["worse"].high < 0 and deltas["worse"].excludes_zero()
    again, _ = bootstrap({FULL: full}, seed=1)
    assert again[FULL] == means[FULL]  # seeded


def test_style_attributes_from_a_manifests_columns() -> None:
    assert colour_family("Navy Blue") == "blue" and colour_family("Off White") == "white"
    assert colour_family("Maroon") == "red" and colour_family("Fluorescent") == "fluorescent"
    rows = [{"baseColour": "Navy Blue", "usage": "Casual", "season": "Summer", "year": "2012"}]
    found = style_attributes(rows)
    assert found is not None and found.tolist() == [["blue", "casual", "summer"]]
    assert style_attributes([{"year": "2012"}]) is None


def _catalog(n: int = 240) -> tuple[CatalogView, Styles]:
    ids = [f"i{j:04d}" for j in range(n)]
    view = CatalogView.build(ids, ids, ["WOMEN" if j % 2 else "MEN" for j in range(n)], [""] * n)
    values = np.array([[COLOURS[j % 4], ("Casual", "Sports")[j // 4 % 2]] for j in range(n)])
    return view, Styles(values, "test")


def test_taste_shoppers_buy_their_style_or_what_sells_and_are_seeded() -> None:
    view, styles = _catalog()
    config = SimulationConfig(users=300, max_purchases=6, seed=3)
    start = np.zeros(len(view), np.int64)
    sim = simulate_taste(view, styles, start, DEFAULT_REGION, config, deepfashion().genders)
    again = simulate_taste(view, styles, start, DEFAULT_REGION, config, deepfashion().genders)
    np.testing.assert_array_equal(sim.items, again.items)
    assert sim.trend is not None and sim.trend.sum() > 0
    one_style: dict[bool, list[bool]] = {True: [], False: []}  # by whether t < 0.2
    for u in sim.active.tolist():
        user, bought = sim.user(u)
        rows = [int(np.searchsorted(view.item_ids, p.item_id)) for p in bought]
        assert {str(view.genders[r]) for r in rows} == {user.gender}  # shown their gender only
        assert len({str(view.product_ids[r]) for r in rows}) == len(rows)  # never twice
        if len(rows) >= 3:
            same = len({tuple(styles.values[r]) for r in rows}) == 1
            one_style[user.trendiness < 0.2].append(same)
    by_taste, by_trend = (float(np.mean(one_style[low])) for low in (True, False))
    assert by_taste > 0.5 and by_taste > by_trend + 0.3
    with pytest.raises(ConfigError):
        Styles(np.zeros((3, 0), dtype=str), "none")


def test_popularity_as_of_a_time_leaves_the_future_out(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "store")
    payloads = build_catalog(store, products_per_category=3)
    with_style = [
        dict(p, **{ATTRIBUTES: {"colour": COLOURS[n % 4], "usage": "Casual"}})
        for n, p in enumerate(payloads)
    ]
    for p in with_style:
        store.set_payload([point_id(str(p["item_id"]))], {ATTRIBUTES: p[ATTRIBUTES]})
    items = StoredItems.load(store)
    styles = shopper_styles(store, items, "resnet50", 0)
    assert styles.source.startswith("the manifest's")
    protocol = Protocol(users=40, max_purchases=5, k=3, backbones=("resnet50",), shoppers="taste")
    trending = PopularitySettings("trending", 14.0)
    cohort = simulated_cohort(items, protocol, DEFAULT_REGION, popularity=trending, styles=styles)
    assert cohort.mode == "trending"
    first = next(u for _, users in cohort.chunks(1000) for u, _ in users)
    assert first.id.startswith("eval-")  # never a log shopper's id (sim-…)
    assert cohort.find(first.id) is not None and cohort.find("sim-00001") is None
    purchases = [p for _, users in cohort.chunks(1000) for _, ps in users for p in ps]
    last = max(purchases, key=lambda p: p.timestamp)
    all_time, trend = cohort.as_of(last.timestamp)
    before = [p for p in purchases if p.timestamp < last.timestamp]
    counted = {i: all_time[i] - cohort.initial[n] for n, i in enumerate(sorted(all_time))}
    assert sum(counted.values()) == len(before)  # the purchase at that time is not in
    assert trend[last.item_id] <= all_time[last.item_id]
    later, _ = cohort.as_of(last.timestamp + timedelta(seconds=1))
    assert later[last.item_id] == all_time[last.item_id] + 1
    store.close()


def test_the_leave_last_out_tables(tmp_path: Path) -> None:
    """Taste shoppers whose style is a cluster of a second space's vectors; every system,
    intervals, the ablations, and the tables."""
    store = EdgeStore(tmp_path / "store")
    payloads = build_catalog(store, products_per_category=4)
    other = np.random.default_rng(1).normal(size=(len(payloads), CATALOG_DIM))
    store.ensure_vector("vgg16", CATALOG_DIM)
    ids = [point_id(str(p["item_id"])) for p in payloads]
    store.write(PointBatch(ids, payloads, "vgg16", other.astype(np.float32)))
    store.optimize()
    items = StoredItems.load(store)
    styles = shopper_styles(store, items, "resnet50", 0)
    assert styles.source == "clusters of vgg16 vectors"
    protocol = Protocol(
        users=60,
        max_purchases=4,
        k=3,
        backbones=("resnet50",),
        shoppers="taste",
        diversity_sweep=(),
        holdout_k=5,
    )
    cohort = simulated_cohort(items, protocol, DEFAULT_REGION, styles=styles)
    metrics = run(Evaluation(store, cohort, items, protocol), tmp_path / "run", {"description": ""})
    store.close()
    holdout = metrics["holdout"]
    assert holdout["k"] == 5 and holdout["shoppers"] > 20
    assert set(holdout["systems"]) == {
        FULL,
        RERANK,
        *ABLATIONS,
        *SOURCE_ABLATIONS.values(),
        *PRESET_ROWS.values(),
        *BASELINES,
    }
    for name, measured in holdout["systems"].items():
        for metric in ("hit_rate", "ndcg", "recall"):
            got = measured[metric]
            assert 0 <= got["low"] <= got["mean"] <= got["high"] <= 1, (name, metric)
        assert ("hit_rate_vs_full" in measured) == (name != FULL)
    tables = (tmp_path / "run" / "tables.md").read_text()
    assert "## Leave-last-out" in tables and "## Ablation, leave-last-out" in tables
    assert "| trending now |" in tables and "| no visual |" in tables
    assert "| no copurchase source |" in tables


def test_small_photos_fill_the_grid_cells(tmp_path: Path) -> None:
    from PIL import Image

    from engine.evaluate.figures import THUMB, _thumb

    photo = tmp_path / "small.png"
    Image.new("RGB", (60, 80), (200, 0, 0)).save(photo)
    cell = _thumb(photo)
    red = np.argwhere((cell[..., 0] > 150) & (cell[..., 1] < 50))
    assert cell.shape[:2] == (THUMB[1], THUMB[0])
    height = red[:, 0].max() - red[:, 0].min() + 1
    width = red[:, 1].max() - red[:, 1].min() + 1
    assert width == THUMB[0] or height == THUMB[1]  # grown to the cell, not left at 60×80


def test_a_time_split_scores_the_weeks_after_a_date(tmp_path: Path) -> None:
    """`--split-date auto`: every purchase before two weeks from the end is history, each
    shopper's purchases in those two weeks the targets; a bad date is one line."""
    store = EdgeStore(tmp_path / "store")
    build_catalog(store, products_per_category=4)
    items = StoredItems.load(store)
    protocol = Protocol(
        users=120, max_purchases=5, k=3, backbones=("resnet50",), diversity_sweep=(), split="auto"
    )
    cohort = simulated_cohort(
        items, protocol, DEFAULT_REGION, popularity=PopularitySettings("trending")
    )
    evaluation = Evaluation(store, cohort, items, protocol)
    metrics = run(evaluation, tmp_path / "run", {"description": ""})
    store.close()
    split = evaluation.lastout().split
    assert split is not None
    last = max(p.timestamp for _, users in cohort.chunks(1000) for _, ps in users for p in ps)
    assert last - split == timedelta(days=14)
    assert metrics["holdout"]["split"] == split.isoformat() and metrics["holdout"]["shoppers"] > 0
    tables = (tmp_path / "run" / "tables.md").read_text()
    assert "## Time split (resnet50;" in tables and "the 14 days after it the targets" in tables
    with pytest.raises(ConfigError, match="--split-date must be auto or a date"):
        Protocol(split="last tuesday").validate()
