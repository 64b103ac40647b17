"""NormPop: percentile ranks (ties, tie-breaks, items with no score), min–max and saturation;
ranks stored in the payload and kept in step as purchases arrive, on both back-ends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.events.eventlog import EventLog
from engine.popularity.normpop import normalised, percentile_ranks, pivot, saturation
from engine.popularity.upkeep import RANK_DRIFT_KEY, sync_ranks, update_ranks
from engine.recommend.columns import Columns
from engine.recommend.recommender import Params, Recommender
from engine.recommend.scoring import Weights, preset_normalise
from engine.vectorstore.base import Filter, Range, VectorStore
from engine.vocabulary.schema import POPULARITY, POPULARITY_RANK, TRENDING, TRENDING_RANK, point_id
from tests.builders import build_catalog, buy, shopper

FIELDS = ["item_id", POPULARITY, TRENDING, POPULARITY_RANK, TRENDING_RANK]


def test_percentile_ranks_average_ties_and_put_items_with_no_score_lowest() -> None:
    np.testing.assert_allclose(percentile_ranks([0, 0, 1, 2, 2, 5]), [0.1, 0.1, 0.4, 0.7, 0.7, 1])
    np.testing.assert_allclose(percentile_ranks([np.nan, 3.0, 0.0]), [0.25, 1.0, 0.25])
    assert percentile_ranks([]).shape == (0,)
    np.testing.assert_allclose(percentile_ranks([4.0]), [0.5])
    np.testing.assert_allclose(percentile_ranks([2.0, 2.0, 2.0]), [0.5, 0.5, 0.5])
    # distinct values: uniform on [0, 1] like t, whatever their scale
    values = np.random.default_rng(0).exponential(size=1001) ** 5
    np.testing.assert_allclose(np.sort(percentile_ranks(values)), np.linspace(0, 1, 1001))
    np.testing.assert_allclose(percentile_ranks(values), percentile_ranks(values * 1e-9))


def test_ties_are_broken_by_the_other_popularity() -> None:
    trending = [0.0, 0.0, 0.0, 2.5]  # three items not sold lately
    all_time = [7.0, 1.0, 1.0, 0.0]
    np.testing.assert_allclose(percentile_ranks(trending, all_time), [2 / 3, 1 / 6, 1 / 6, 1.0])


def test_min_max_and_saturation() -> None:
    values = np.array([0.0, 1.0, 4.0, 16.0])
    np.testing.assert_allclose(normalised(values, "minmax"), [0, 1 / 16, 0.25, 1])
    assert pivot(values) == pytest.approx(4.0)  # the geometric mean of 1, 4, 16
    np.testing.assert_allclose(saturation(values, 4.0), [0, 0.2, 0.5, 0.8])
    np.testing.assert_allclose(normalised(values, "saturation"), [0, 0.2, 0.5, 0.8])
    assert pivot([0.0, 0.0]) == 1.0
    assert preset_normalise("paper") == "minmax" and preset_normalise("default") == "rank"
    assert preset_normalise("paper", "rank") == "rank"


def _stored(store: VectorStore) -> dict[str, dict[str, float]]:
    return {str(r.payload["item_id"]): r.payload for r in store.scroll(FIELDS)}


def _exact(payloads: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    ids = sorted(payloads)
    all_time = [payloads[i].get(POPULARITY, 0.0) for i in ids]
    trending = [payloads[i].get(TRENDING, 0.0) for i in ids]
    return {
        POPULARITY_RANK: dict(zip(ids, percentile_ranks(all_time, trending), strict=True)),
        TRENDING_RANK: dict(zip(ids, percentile_ranks(trending, all_time), strict=True)),
    }


def test_ranks_are_stored_and_read_by_the_range_filters(store: VectorStore) -> None:
    build_catalog(store, products_per_category=3)  # ranks written as ingest writes them
    payloads = _stored(store)
    exact = _exact(payloads)
    for rank, values in exact.items():
        for item, value in values.items():
            assert payloads[item][rank] == pytest.approx(value, abs=1e-6)
    assert sync_ranks(store) == 0  # in step: nothing written again
    top = max(payloads, key=lambda i: payloads[i][POPULARITY])
    high = payloads[top][POPULARITY]
    assert store.count(Filter(ranges={POPULARITY: Range(gte=high)})) == sum(
        1 for p in payloads.values() if p[POPULARITY] >= high
    )
    assert store.count(Filter(ranges={POPULARITY: Range(gt=high)})) == 0


@pytest.mark.parametrize("held", [False, True], ids=["counted", "table"])
def test_bought_items_are_ranked_exactly_and_the_others_refreshed_when_they_drift(
    store: VectorStore, tmp_path: Path, held: bool
) -> None:
    build_catalog(store, products_per_category=3)
    table = Columns(store) if held else None
    log = EventLog(tmp_path / "events.sqlite")
    log.put(RANK_DRIFT_KEY, "0")
    payloads = _stored(store)
    low = min(payloads, key=lambda i: (payloads[i][POPULARITY], i))
    store.set_payload([point_id(low)], {POPULARITY: 500.0, TRENDING: 3.0})  # a burst of sales
    assert update_ranks(store, log, [low], purchases=1, table=table) == 2
    after = _stored(store)
    exact = _exact(after)
    assert after[low][POPULARITY_RANK] == pytest.approx(1.0)
    assert after[low][TRENDING_RANK] == pytest.approx(exact[TRENDING_RANK][low], abs=1e-6)
    drift = float(log.get(RANK_DRIFT_KEY) or 0)
    assert 0 < drift < 0.1
    stale = [i for i in after if abs(after[i][POPULARITY_RANK] - exact[POPULARITY_RANK][i]) > 0]
    assert stale  # the others moved down by 1/(N − 1) and were left to drift
    # enough purchases for the drift to pass its bound: every rank is refreshed
    update_ranks(store, log, [low], purchases=len(after), table=table)
    refreshed = _stored(store)
    exact = _exact(refreshed)
    for item in refreshed:
        assert refreshed[item][POPULARITY_RANK] == pytest.approx(
            exact[POPULARITY_RANK][item], abs=0.0021
        )
    log.close()


def test_the_rerank_in_qdrant_and_in_numpy_agree_on_ranks(store: VectorStore) -> None:
    payloads = build_catalog(store)
    engine = Recommender(store)
    bought = [str(p["item_id"]) for p in payloads if p["gender"] == "WOMEN"][::7][:4]
    for weights in (Weights(), Weights(0.3, 0.7, 0.0, 1.0)):
        for normalise in ("rank", "minmax"):
            for t in (0.1, 0.9):
                params = Params(k=8, weights=weights, normalise=normalise)
                client = engine.for_user(shopper("WOMEN", t), buy(bought), params)
                server = engine.for_user(
                    shopper("WOMEN", t),
                    buy(bought),
                    Params(**{**params.__dict__, "rerank": "server"}),
                )
                assert [r.item_id for r in client.merged] == [r.item_id for r in server.merged]
                for a, b in zip(client.merged, server.merged, strict=True):
                    assert a.norm_popularity == pytest.approx(b.norm_popularity, abs=1e-6)


def test_rank_normpop_pulls_trend_followers_to_the_top_sellers(store: VectorStore) -> None:
    payloads = build_catalog(store)
    engine = Recommender(store)
    bought = [str(p["item_id"]) for p in payloads if p["gender"] == "WOMEN"][::9][:5]
    weights = Weights(visual=0.2, popularity=0.8, category=0.0)
    gaps = {}
    for normalise in ("rank", "minmax"):
        result = engine.for_user(
            shopper("WOMEN", 0.9),
            buy(bought),
            Params(k=10, weights=weights, normalise=normalise),
        )
        recs = [r for _, rs in result.per_purchase for r in rs]
        gaps[normalise] = np.mean([abs(r.norm_popularity - 0.9) for r in recs])
    assert gaps["rank"] < 0.1
