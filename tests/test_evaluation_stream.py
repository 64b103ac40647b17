"""The evaluation streams its users: the same numbers as computing over every user at once,
whatever the chunk size; a bounded search cache; Ctrl-C stops it in one line."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.catalog.taxonomy import Taxonomy, deepfashion
from engine.evaluate import evaluation as evaluation_module
from engine.evaluate.baselines import baseline_list
from engine.evaluate.evaluation import BASELINES, CachedSearch, Evaluation
from engine.evaluate.metrics import Pair, Sum, list_diversity, surprisal, trend_group
from engine.evaluate.protocol import (
    SWEEP,
    Protocol,
    StoredItems,
    ablation_weights,
    logged_cohort,
    simulated_cohort,
    sweep_weights,
)
from engine.evaluate.report import run
from engine.events.eventlog import EventLog
from engine.recommend.recommender import Params, Recommender
from engine.recommend.rerank import Popularity, Recommendation
from engine.recommend.scoring import Weights
from engine.shoppers.simulation import (
    SimulationConfig,
    initial_popularity,
    simulate,
)
from engine.vectorstore.base import PointBatch, Query
from engine.vectorstore.edge import EdgeStore
from engine.vocabulary.geo import DEFAULT_REGION
from engine.vocabulary.records import Purchase, User
from engine.vocabulary.schema import CATEGORY, GENDER, ITEM_ID, PRODUCT_ID, point_id
from tests.builders import CATALOG_DIM, build_catalog, fashionrec, home_with_items

# --- the simulation, held as arrays ---------------------------------------------------------


# --- the previous computation: every user at once, every list kept -------------------------


def _previous(
    store: EdgeStore,
    catalog: StoredItems,
    protocol: Protocol,
    users: list[User],
    bought: dict[str, list[Purchase]],
    popularity: Popularity,
) -> dict[str, Any]:
    """Tables 1–3, the sweep and the beyond-accuracy metrics as the evaluation computed them
    before it streamed: each system over every user, then np.mean over all its pairs."""
    taxonomy: Taxonomy = deepfashion()
    items = catalog.items
    engine = Recommender(store, taxonomy, CachedSearch(store.search, 10**9), popularity)
    rng = np.random.default_rng([protocol.seed, 3])
    Lists = list[tuple[User, Purchase, list[Recommendation]]]

    def product(p: Purchase) -> str:
        return str(items[p.item_id][PRODUCT_ID])

    def model(backbone: str, weights: Weights) -> Lists:
        params = Params(backbone, protocol.k, protocol.candidates, weights)
        lists: Lists = []
        for user in users:
            full = engine.for_user(user, bought[user.id], params)
            lists += [(user, p, recs) for p, recs in full.per_purchase]
        return lists

    def baseline(kind: Any) -> Lists:
        by_gender: dict[str, list[str]] = defaultdict(list)
        for item_id in sorted(items):
            by_gender[str(items[item_id][GENDER])].append(item_id)
        lists: Lists = []
        for user in users:
            pool = sorted(i for g in taxonomy.shown_to(user.gender) for i in by_gender.get(g, []))

            def recommend(ps: Sequence[Purchase]) -> list[Recommendation]:
                k = protocol.k
                return baseline_list(kind, ps, pool, items, popularity, taxonomy, k, rng)  # noqa: B023

            mine = bought[user.id]
            lists += [(user, p, recommend(mine)) for p in mine]
        return lists

    def pairs(lists: Lists) -> list[Pair]:
        out = []
        for user, purchase, recs in lists:
            cat = str(items[purchase.item_id][CATEGORY])
            out += [
                Pair(
                    user.gender,
                    user.trendiness,
                    cat,
                    r.item_id,
                    r.category,
                    str(items[r.item_id][GENDER]),
                    r.norm_popularity,
                    taxonomy(cat, r.category),
                    taxonomy.shown_to(user.gender),
                )
                for r in recs
            ]
        return out

    def acc(ps: list[Pair]) -> dict[str, float]:
        if not ps:
            return {"category_similarity": math.nan, "popularity_mae": math.nan, "pairs": 0}
        return {
            "category_similarity": 100 * float(np.mean([p.category_sim for p in ps])),
            "gender_alignment": 100 * float(np.mean([p.gender_aligned for p in ps])),
            "popularity_mae": float(np.mean([abs(p.norm_popularity - p.trendiness) for p in ps])),
            "pairs": len(ps),
        }

    def beyond(lists: Lists, backbone: str) -> dict:
        recommended = [r.item_id for _, _, recs in lists for r in recs]
        records = store.retrieve([point_id(i) for i in sorted(set(recommended))], vector=backbone)
        vectors = {str(r.payload[ITEM_ID]): r.vector for r in records}
        diversities = [
            list_diversity(np.array([vectors[r.item_id] for r in recs])) for _, _, recs in lists
        ]
        bits = surprisal(popularity.values)
        norm = [r.norm_popularity for _, _, recs in lists for r in recs]
        return {
            "coverage": len(set(recommended)) / len(items),
            "diversity": float(np.mean([d for d in diversities if d is not None])),
            "novelty": float(np.mean([bits(i) for i in recommended])),
            "avg_norm_popularity": float(np.mean(norm)),
        }

    first = protocol.backbones[0]
    systems = {b: model(b, protocol.weights) for b in protocol.backbones}
    for kind, name in BASELINES:
        systems[name] = baseline(kind)
    table3: dict[str, list[Pair]] = {"low": [], "medium": [], "high": []}
    for p in pairs(systems[first]):
        table3[trend_group(p.trendiness)].append(p)
    return {
        "table1": {n: acc(pairs(s)) for n, s in systems.items()},
        "beyond": {
            n: beyond(s, n if n in protocol.backbones else first) for n, s in systems.items()
        },
        "table2": {
            n: acc(pairs(systems[first] if n == "full" else model(first, w)))
            for n, w in ablation_weights(protocol.weights).items()
        },
        "table3": {g: acc(ps) for g, ps in table3.items()},
        "sweep": {
            b: [
                {
                    k: v
                    for k, v in acc(pairs(model(b, sweep_weights(w_p)))).items()
                    if k in ("category_similarity", "popularity_mae")
                }
                for w_p in SWEEP
            ]
            for b in protocol.backbones
        },
    }


def _assert_close(previous: Any, streamed: Any, path: str = "") -> None:
    """Every number of `previous` in `streamed`; diversity to float32's precision (it was
    averaged in float32 before), everything else to the last bits of a float64."""
    if isinstance(previous, dict):
        for key, value in previous.items():
            _assert_close(value, streamed[key], f"{path}/{key}")
    elif isinstance(previous, list):
        assert len(previous) == len(streamed), path
        for n, (a, b) in enumerate(zip(previous, streamed, strict=True)):
            _assert_close(a, b, f"{path}[{n}]")
    elif isinstance(previous, float) and math.isnan(previous):
        assert streamed is None, path  # metrics.json writes NaN as null
    else:
        rel = 1e-6 if path.endswith("diversity") else 1e-12
        assert streamed == pytest.approx(previous, rel=rel), path


@pytest.fixture(scope="module")
def two_backbones(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A store with the test catalog as "resnet50" and, differently, as "vgg16"."""
    folder = tmp_path_factory.mktemp("stream")
    store = EdgeStore(folder / "store")
    payloads = build_catalog(store, products_per_category=3)
    rng = np.random.default_rng(1)
    other = rng.normal(size=(len(payloads), CATALOG_DIM)).astype(np.float32)
    store.ensure_vector("vgg16", CATALOG_DIM)
    store.write(PointBatch([point_id(p["item_id"]) for p in payloads], payloads, "vgg16", other))
    store.optimize()
    yield folder, store
    store.close()


PROTOCOL = Protocol(users=12, max_purchases=4, k=4, seed=11, backbones=("resnet50", "vgg16"))


@pytest.mark.slow
def test_streamed_evaluation_matches_the_previous_computation(two_backbones: Any) -> None:
    folder, store = two_backbones
    catalog = StoredItems.load(store)
    cohort = simulated_cohort(catalog, PROTOCOL, DEFAULT_REGION)
    metrics = run(Evaluation(store, cohort, catalog, PROTOCOL), folder / "run", {"description": ""})
    written = json.loads((folder / "run" / "metrics.json").read_text())
    assert written["setting"]["users"] == PROTOCOL.users

    view = catalog.view()
    ids = view.item_ids.tolist()
    start = np.array([initial_popularity(i, 100, PROTOCOL.seed) for i in ids], np.int64)
    config = SimulationConfig(users=PROTOCOL.users, max_purchases=4, seed=PROTOCOL.seed)
    sim = simulate(view, start, DEFAULT_REGION, config, shown=deepfashion().genders)
    values = {i: float(v) for i, v in zip(ids, sim.popularity.tolist(), strict=True)}
    popularity = Popularity.of_values(values, PROTOCOL.normalise)
    bought: dict[str, list[Purchase]] = defaultdict(list)
    for p in sim.purchases:
        bought[p.user_id].append(p)
    previous = _previous(store, catalog, PROTOCOL, sim.users, bought, popularity)
    _assert_close(previous, written)
    assert metrics["table1"]["resnet50"]["pairs"] == previous["table1"]["resnet50"]["pairs"]

    # the event log's users: the same people, read from the log a chunk at a time
    log = EventLog(folder / "events.sqlite")
    with log.transaction():
        log.add_users(sim.users, "simulated")
        log.add_purchases(sim.purchases, "simulated")
    logged = logged_cohort(catalog, log)
    run(Evaluation(store, logged, catalog, PROTOCOL), folder / "logged", {"description": ""})
    payload = {i: float(p.get("popularity", 0.0)) for i, p in catalog.items.items()}
    stored = Popularity.of_values(payload, PROTOCOL.normalise)
    users = [u for u in (log.user(i) for i in log.user_ids()) if u is not None]
    expected = _previous(store, catalog, PROTOCOL, users, bought, stored)
    log.close()
    _assert_close(expected, json.loads((folder / "logged" / "metrics.json").read_text()))


def test_chunks_and_a_small_cache_change_nothing(
    two_backbones: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, store = two_backbones
    catalog = StoredItems.load(store)
    protocol = Protocol(users=9, max_purchases=4, k=4, seed=3, backbones=("resnet50", "vgg16"))

    def tables(chunk: int, capacity: int) -> dict[str, Any]:
        cohort = simulated_cohort(catalog, protocol, DEFAULT_REGION)
        evaluation = Evaluation(store, cohort, catalog, protocol)
        evaluation.search.capacity = capacity
        sizes: list[int] = []
        real = evaluation.search.inner

        def search(queries: Sequence[Query], fields: Sequence[str]) -> Any:
            sizes.append(len(evaluation.search.memo))
            return real(queries, fields)

        evaluation.search.inner = search
        walked: list[int] = []
        totals = evaluation.run(walked.append, chunk=chunk)
        assert sum(walked) == totals.users == protocol.users
        assert max(sizes) <= capacity
        return {
            "table1": {n: t.result() for n, t in totals.table1.items()},
            "beyond": {n: b.result(len(catalog.items)) for n, b in totals.beyond.items()},
            "sweep": {b: [t.result() for t in s.values()] for b, s in totals.sweep.items()},
            "mmr": {d: m.result(len(catalog.items)) for d, m in totals.mmr.items()},
        }

    whole = tables(chunk=100, capacity=256)
    assert list(whole["mmr"]) == list(protocol.diversity_sweep)  # the diversity sweep streams too
    assert tables(chunk=1, capacity=256) == whole  # the sums are exact: no rounding drift
    assert tables(chunk=4, capacity=2) == whole  # evicted searches are asked again


def test_exact_running_sum() -> None:
    values = [1e16, 1.0, -1e16, 0.1] * 1000
    total = Sum()
    total.extend(values)
    assert total.total == math.fsum(values) and total.count == 4000
    assert math.isnan(Sum().mean())


def test_ctrl_c_stops_evaluate_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home_with_items(home)
    seen: list[str] = []
    real = evaluation_module.Evaluation.add_user

    def interrupted(self: Evaluation, totals: Any, user: User, bought: Any) -> None:
        if len(seen) == 3:
            raise KeyboardInterrupt
        seen.append(user.id)
        real(self, totals, user, bought)

    monkeypatch.setattr(evaluation_module.Evaluation, "add_user", interrupted)
    out = tmp_path / "results"
    args = ("--backbones", "resnet50", "--users", "8", "--out", out, "--name", "r")
    result = fashionrec("evaluate", *args, home=home)
    assert result.returncode == 130
    lines = result.stderr.strip().splitlines()
    assert lines == ["interrupted after 3 of 8 users; nothing written"], result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not out.exists() or not any(out.iterdir())
