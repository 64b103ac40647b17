"""Candidates from several sources and weights learned from the log: the pool (what each
source brings, the features every candidate has), ranking profiles, and tuning on a time
split (its refusal, its repeatability, what it learns)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from engine.catalog.taxonomy import deepfashion
from engine.errors import ConfigError
from engine.evaluate.blended import LeaveLastOut
from engine.evaluate.holdout import (
    ABLATIONS,
    BASELINES,
    FULL,
    HOME,
    PRESET_ROWS,
    RERANK,
    SOURCE_ABLATIONS,
    VISUAL,
    HoldoutSum,
)
from engine.events.eventlog import EventLog
from engine.recommend.blended import EPOCH, Blender
from engine.recommend.params import Params
from engine.recommend.pool import FEATURES, Moment, pool
from engine.recommend.profile import PRESET_PROFILES, Profile, ranked
from engine.recommend.scoring import Weights
from engine.recommend.shelf import Shelf, best_rows
from engine.recommend.tuning import MIN_SHOPPERS, Log, fit, hit_rates, tune
from engine.vectorstore.base import VectorStore
from engine.vectorstore.edge import EdgeStore
from engine.vocabulary.geo import Location
from engine.vocabulary.records import Purchase, User
from engine.vocabulary.schema import COLOUR, point_id
from ingest.colour import BINS
from tests.builders import build_catalog, fashionrec, home_with_items

START = datetime(2025, 1, 1, tzinfo=UTC)


def shelf_of(vectors: list[list[float]], genders: list[str], categories: list[str]) -> Shelf:
    """A shelf of one item per product, items i0, i1, …"""
    taxonomy = deepfashion()
    names = sorted(set(categories) | set(taxonomy.categories))
    matrix = np.asarray(vectors, dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    n = len(vectors)
    return Shelf(
        [f"i{i}" for i in range(n)],
        np.arange(n, dtype=np.int64),
        [f"p{i}" for i in range(n)],
        np.array(genders),
        np.array([names.index(c) for c in categories], dtype=np.int64),
        names,
        np.array([[taxonomy(a, b) for b in names] for a in names]),
        matrix,
    )


def test_each_source_brings_its_candidates_and_every_candidate_has_every_feature() -> None:
    shelf = shelf_of(
        [[1, 0], [0.9, 0.1], [0, 1], [0.1, 1], [0.5, 0.5], [1, 0.05]],
        ["WOMEN", "WOMEN", "WOMEN", "WOMEN", "MEN", "WOMEN"],
        ["Dresses", "Dresses", "Skirts", "Dresses", "Denim", "Skirts"],
    )
    sales = np.array([0.0, 0.0, 5.0, 1.0, 9.0, 0.0])
    # shopper 1 bought i0 then i3; shopper 0 (the one asking) bought i0
    moment = Moment.of(sales, np.array([1, 1, 0]), np.array([0, 3, 0]))
    allowed = shelf.allowed([0], frozenset({"WOMEN"}))
    found = pool(shelf, shelf, moment, [0], 1.0, allowed, 0, per_source=1)
    brought = {row: found.named(n) for n, row in enumerate(found.rows.tolist())}
    assert brought[5] == ("visual",)  # the nearest other product
    assert brought[2] == ("trending",)  # the best seller she is shown (i4 is MEN's)
    assert brought[3] == ("category", "copurchase")  # Dresses' best seller; bought with i0
    assert 0 not in brought and 4 not in brought  # bought; another gender
    assert found.features.shape == (3, len(FEATURES))
    features = dict(zip(FEATURES, found.features[list(brought).index(2)], strict=True))
    assert features["visual_best"] == pytest.approx(0.0, abs=1e-6)  # its cosine, computed
    assert features["popularity"] == pytest.approx(0.8)  # 2nd of 6 by sales (rank 4 / 5)
    assert features["sales"] == pytest.approx(np.log1p(5.0))
    assert features["match"] == pytest.approx(1 - 0.2**2)
    assert features["untrendy_visual"] == 0.0  # t = 1


def test_copurchases_count_other_shoppers_weighted_by_shared_items() -> None:
    moment = Moment.of(np.zeros(4), np.array([0, 0, 1, 1, 1, 2]), np.array([0, 1, 0, 1, 2, 3]))
    counts = moment.copurchases([0, 1], shopper=0)
    assert counts.tolist() == [2.0, 2.0, 2.0, 0.0]  # shopper 1 shares two items; 2 none


def test_a_profile_is_kept_in_the_home_and_a_damaged_one_is_named(tmp_path: Path) -> None:
    profile = Profile("tuned", {"sales": 1.5, "visual_mean": 2.0}, {"tuned": 0.2}, {"k": 10})
    profile.save(tmp_path)
    assert Profile.load(tmp_path) == profile
    (tmp_path / "profile.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"profile\.json: not a ranking profile"):
        Profile.load(tmp_path)
    with pytest.raises(ConfigError, match="unknown features colour"):
        Profile("x", {"colour": 1.0})
    assert Profile.load(tmp_path / "none") is None


def test_ranked_lists_distinct_products_by_relevance() -> None:
    shelf = shelf_of([[1, 0], [0, 1], [1, 1]], ["WOMEN"] * 3, ["Dresses"] * 3)
    shelf.products[:] = [0, 0, 1]  # i0 and i1: one product
    nothing = Moment.of(np.zeros(3), np.zeros(0, np.int64), np.zeros(0, np.int64))
    found = pool(shelf, shelf, nothing, [2], 0.5, shelf.allowed([2], None))
    assert ranked(found, np.array([0.1, 0.9]), shelf.products, 5) == [1]


def trend_log(shelf: Shelf, shoppers: int, seed: int) -> tuple[list[User], list[Purchase]]:
    """Shoppers who each buy, over days, an item among the five best sellers so far."""
    rng = np.random.default_rng(seed)
    users = [User(f"u{n}", "WOMEN", 0.8, Location(48.8, 2.3)) for n in range(shoppers)]
    sold = np.zeros(len(shelf))
    women = np.flatnonzero(shelf.shown(frozenset({"WOMEN", "UNISEX"})))
    purchases = []
    for day in range(60):
        for user in rng.choice(users, size=shoppers // 10, replace=False):
            top = women[np.argsort(-sold[women] - rng.random(len(women)) * 0.5)[:5]]
            item = int(rng.choice(top))
            sold[item] += 1
            when = START + timedelta(days=day, minutes=int(rng.integers(0, 1000)))
            purchases.append(Purchase(user.id, shelf.item_ids[item], when, None))
    return users, sorted(purchases, key=lambda p: p.timestamp)


def trend_shelf(root: Path, per_category: int, shoppers: int, seed: int) -> tuple[Shelf, Log]:
    """The test catalog's shelf and a log of trend-following shoppers over it."""
    store = EdgeStore(root / "store")
    build_catalog(store, products_per_category=per_category)
    shelf = Shelf.of_store(store, "resnet50", deepfashion())
    store.close()
    users, purchases = trend_log(shelf, shoppers, seed)
    return shelf, Log.of(users, purchases, shelf, deepfashion(), 7 * 86400.0, START)


def test_tuning_learns_from_the_log_what_sells_and_is_repeatable(tmp_path: Path) -> None:
    shelf, log = trend_shelf(tmp_path, 2, shoppers=80, seed=1)
    profile = tune(shelf, log, START, "resnet50")
    assert profile.weights["sales"] + profile.weights["popularity"] > 0
    assert profile.validation["tuned"] > profile.validation["default"]
    assert profile.fitted["validated_purchases"] > 0 and profile.fitted["space"] == "resnet50"
    assert tune(shelf, log, START, "resnet50") == profile  # the same log, the same profile
    # a time split: nothing at or after a purchase is in the sales it is predicted from
    example = log.examples(np.ones(len(log.items), dtype=bool))[-1]
    moment = log.moment(example.second)
    assert moment.sales.sum() < len(log.items) and len(moment.bought) == int(
        (log.seconds < example.second).sum()
    )
    scored = hit_rates(shelf, log, [example], [profile, PRESET_PROFILES["paper"]])
    assert scored["tuned"].shape == scored["paper"].shape == (1,)
    assert set(fit(shelf, log, log.examples(log.seconds < example.second))) == set(FEATURES)


def test_tuning_refuses_a_log_too_small_and_says_how_many_it_needs(tmp_path: Path) -> None:
    shelf, log = trend_shelf(tmp_path, 1, shoppers=20, seed=2)
    with pytest.raises(ConfigError, match=f"needs at least {MIN_SHOPPERS}"):
        tune(shelf, log, START, "resnet50")
    assert set(PRESET_PROFILES) == {"default", "paper"}


def test_the_tune_command(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home_with_items(home)
    refused = fashionrec("tune", home=home)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: the log has 0 shoppers with 2 or more purchases; tuning needs at least "
        f"{MIN_SHOPPERS} (the hand-set weights stay in use)"
    ]
    assert not (home / "profile.json").exists()
    unknown = fashionrec("tune", "--space", "nope", home=home)
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: unknown backbone 'nope'; choose one of")
    assert (
        fashionrec("simulate", "--users", "90", "--max-purchases", "5", home=home).returncode == 0
    )
    tuned = fashionrec("tune", home=home)
    assert tuned.returncode == 0, tuned.stderr
    assert "validation: hit rate@10" in tuned.stdout and "saved to" in tuned.stdout
    saved = json.loads((home / "profile.json").read_text())
    assert set(saved["validation"]) == {"tuned", "default", "paper"}
    assert fashionrec("tune", home=home).returncode == 0
    assert json.loads((home / "profile.json").read_text()) == saved  # twice: the same


def test_the_live_blend_lists_what_the_evaluation_ranks_on_each_back_end(
    store: VectorStore, tmp_path: Path
) -> None:
    """The service's path (the store's search for neighbours, stored vectors for cosines,
    the event log's sales) and the evaluation's (a shelf holding every vector, exact) give
    the same lists, for a user and for an item, with the filters applied to every source."""
    payloads = build_catalog(store, products_per_category=2)
    taxonomy = deepfashion()
    log = EventLog(tmp_path / "events.sqlite")
    rng = np.random.default_rng(4)
    for payload in payloads:  # colours, as ingest makes them: unit rows of square roots
        shares = rng.dirichlet(np.ones(BINS) * 0.3)
        store.set_payload([point_id(str(payload["item_id"]))], {COLOUR: np.sqrt(shares).tolist()})
    women = [str(p["item_id"]) for p in payloads if p["gender"] == "WOMEN"]
    users = [User(f"u{n}", "WOMEN", float(rng.random()), Location(48.85, 2.35)) for n in range(12)]
    purchases = [
        Purchase(u.id, str(rng.choice(women)), START + timedelta(days=int(d), hours=n), None)
        for n, u in enumerate(users)
        for d in rng.integers(0, 30, size=3)
    ]
    with log.transaction():
        log.add_users(users, "test")
        log.add_purchases(purchases, "test")
    profile = Profile("tuned", dict(zip(FEATURES, rng.normal(size=len(FEATURES)), strict=True)))
    when = START + timedelta(days=40)
    blender = Blender(store, log, taxonomy)
    shelf = Shelf.of_store(store, "resnet50", taxonomy)
    kept = sorted(log.purchases(), key=lambda p: p.timestamp)
    evaluation_log = Log.of(log.users(), kept, shelf, taxonomy, 7 * 86400.0, EPOCH)
    moment = evaluation_log.moment((when - EPOCH).total_seconds())
    codes = {u.id: n for n, u in enumerate(log.users())}
    for params in (Params(k=6), Params(k=4, category="Dresses"), Params(k=5, max_price=None)):
        for user in users[:4]:
            bought = list(log.purchases(user.id))
            live = blender.for_user(user, bought, params, profile, 7.0, when)
            history = [shelf.index[p.item_id] for p in bought]
            allowed = shelf.allowed(history, taxonomy.shown_to("WOMEN"))
            if params.category:
                allowed &= shelf.categories == shelf.category_names.index(params.category)
            found = pool(shelf, shelf, moment, history, user.trendiness, allowed, codes[user.id])
            exact = ranked(found, profile.scores(found), shelf.products, params.k)
            assert [r.item_id for r in live] == [shelf.item_ids[r] for r in exact]
            assert all(r.sources for r in live)
            assert shelf.colours is not None and found.features[:, -3:].any()
            assert all(r.category == params.category for r in live if params.category)
    item = women[0]
    live_item = blender.for_item(item, Params(k=5, trendiness=0.3), profile, 7.0, when)
    row = shelf.index[item]
    found = pool(shelf, shelf, moment, [row], 0.3, shelf.allowed([row], taxonomy.shown_to("WOMEN")))
    exact = ranked(found, profile.scores(found), shelf.products, 5)
    assert [r.item_id for r in live_item] == [shelf.item_ids[r] for r in exact]
    log.close()


def test_leave_last_out_lists_k_new_products_for_every_system(tmp_path: Path) -> None:
    """Every system's list (the fitted full model and its ablations, the presets, the
    rerank, the cosine, the baselines) holds at most k distinct products, none bought."""
    store = EdgeStore(tmp_path / "store")
    build_catalog(store, products_per_category=2)
    taxonomy = deepfashion()
    shelf = Shelf.of_store(store, "resnet50", taxonomy)
    store.close()
    users, purchases = trend_log(shelf, 60, seed=3)
    shoppers = [(u, [p for p in purchases if p.user_id == u.id]) for u in users]
    shoppers = [(u, bought) for u, bought in shoppers if bought]
    lastout = LeaveLastOut(shelf, shoppers, taxonomy, 7 * 86400.0, {}, 1, seed=0)
    assert lastout.profile.name == "tuned"
    listed: dict[str, list[list[str]]] = {}

    class Capture(HoldoutSum):
        def add(self, system: str, products: Sequence[str], held: set[str]) -> None:
            listed.setdefault(system, []).append(list(products))

    lastout.home = lastout.profile  # as if the home's profile.json were this cohort's fit
    lastout.add(Capture(5), shoppers, Weights(), 20)
    assert set(listed) == {
        FULL, HOME, RERANK, VISUAL, *ABLATIONS, *SOURCE_ABLATIONS.values(),
        *PRESET_ROWS.values(), *BASELINES,
    }  # fmt: skip
    assert listed[HOME] == listed[FULL]
    counts = {len(lists) for lists in listed.values()}
    assert len(counts) == 1 and counts.pop() > 10  # every system, every shopper

    def product(p: Purchase) -> str:
        return shelf.product_ids[shelf.products[shelf.index[p.item_id]]]

    measured = [b for _, b in shoppers if len(b) > 1 and product(b[-1]) not in map(product, b[:-1])]
    for system, lists in listed.items():
        assert len(lists) == len(measured)
        for bought, products in zip(measured, lists, strict=True):
            assert len(products) == len(set(products)) <= 5, system
            assert not set(map(product, bought[:-1])) & set(products), system


def test_the_live_blend_follows_new_purchases_as_reading_the_log_again_would(
    tmp_path: Path,
) -> None:
    """A till's purchase (a new shopper's too) is appended to the blend's log, not read
    again with the whole log; the lists are those of a blend that reads it all."""
    store = EdgeStore(tmp_path / "store")
    payloads = build_catalog(store, products_per_category=2)
    log = EventLog(tmp_path / "events.sqlite")
    women = [str(p["item_id"]) for p in payloads if p["gender"] == "WOMEN"]
    users = [User(f"u{n}", "WOMEN", 0.2 + 0.1 * n, Location(48.85, 2.35)) for n in range(6)]
    with log.transaction():
        log.add_users(users, "test")
        log.add_purchases(
            [Purchase(u.id, women[n * 3 + d], START + timedelta(days=d, hours=n), None)
             for n, u in enumerate(users) for d in range(3)],
            "test",
        )  # fmt: skip
    blender, params = Blender(store, log, deepfashion()), Params(k=5)
    profile = Profile("tuned", {"sales": 1.0, "copurchase": 2.0, "visual_mean": 0.5})
    when = START + timedelta(days=20)
    mine = list(log.purchases("u0"))
    blender.for_user(users[0], mine, params, profile, 7.0, when)
    newcomer = User("new", "WOMEN", 0.9, Location(48.85, 2.35))
    with log.transaction():
        log.add_users([newcomer], "till")
        log.add_purchases(
            [Purchase("new", women[0], START + timedelta(days=10), None),
             Purchase("new", women[20], START + timedelta(days=10, hours=1), None),
             Purchase("u1", women[20], START + timedelta(days=11), None)],
            "till",
        )  # fmt: skip
    read_whole: list[object] = []
    whole = log.purchases
    log.purchases = lambda *a: read_whole.append(a) or whole(*a)  # type: ignore[method-assign]
    followed = blender.for_user(users[0], mine, params, profile, 7.0, when)
    assert not read_whole  # appended, not read again
    fresh = Blender(store, log, deepfashion()).for_user(users[0], mine, params, profile, 7.0, when)
    assert [(r.item_id, r.sources) for r in followed] == [(r.item_id, r.sources) for r in fresh]
    assert [r.relevance for r in followed] == pytest.approx([r.relevance for r in fresh])
    log.close()
    store.close()


def test_best_rows_sorts_only_the_top_and_gives_the_full_sorts_answer() -> None:
    """The n best allowed rows (ties by the tie values, then by row) are those of sorting
    every allowed row, though only the rows at or above the n-th best are sorted."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        size = int(rng.integers(1, 400))
        score = rng.integers(0, 6, size).astype(np.float64)  # many ties
        score[rng.random(size) < 0.1] = -np.inf
        allowed = rng.random(size) < 0.8
        ties = rng.permutation(size) if rng.random() < 0.5 else None
        n = int(rng.integers(0, 60))
        rows = np.flatnonzero(allowed)
        keys = (rows, -score[rows]) if ties is None else (rows, ties[rows], -score[rows])
        assert best_rows(score, allowed, n, ties).tolist() == rows[np.lexsort(keys)][:n].tolist()
