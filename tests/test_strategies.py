"""The search strategies (engine/recommend/strategies.py): chosen once per query by name, each
found and picked its own way, and every one named in what a face prints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.recommend.params import Params
from engine.recommend.rerank import Candidates, Context, Listing
from engine.recommend.scoring import Weights, terms
from engine.recommend.strategies import strategy_for
from tests.builders import fashionrec, home_with_items

VISUAL_ONLY = Weights(visual=1.0, popularity=0.0, category=0.0)


@pytest.mark.parametrize(
    ("params", "name", "travel", "travel_merging"),
    [
        (Params(), "client", False, False),
        (Params(diversity=0.5), "client", True, True),
        (Params(rerank="server"), "qdrant-formula", False, False),
        (Params(rerank="server", diversity=0.5), "qdrant-formula", True, True),
        (Params(rerank="server", diversity=0.5, weights=VISUAL_ONLY), "qdrant-mmr", False, True),
        (Params(rerank="server", weights=VISUAL_ONLY), "qdrant-formula", False, False),
    ],
)
def test_one_strategy_per_query(
    params: Params, name: str, travel: bool, travel_merging: bool
) -> None:
    """The parameters choose the strategy once; it says whether vectors travel (to
    diversify here: its lists, or a user's merged list)."""
    strategy = strategy_for(params)
    assert strategy.name == name
    assert strategy.vectors(merging=False) is travel
    assert strategy.vectors(merging=True) is travel_merging


def _listing(scores: list[float], products: list[str]) -> Listing:
    n = len(scores)
    ids = np.array([f"i{n}" for n in range(n)], dtype=object)
    candidates = Candidates(
        scores=np.array(scores),
        item_id=ids,
        product_id=np.array(products, dtype=object),
        category=np.array(["Dresses"] * n, dtype=object),
        gender=np.array(["WOMEN"] * n, dtype=object),
        store_id=np.array([None] * n, dtype=object),
        lat=np.full(n, np.nan),
        lon=np.full(n, np.nan),
        popularity=np.zeros(n),
        ranks=np.full(n, 0.5),
        vectors=[np.eye(4, dtype=np.float32)[i % 4] for i in range(n)],
    )
    formula = terms(Weights(), 0.5, (0.0, 0.0), {1.0: ("Dresses",)}, None, "all-time", "rank")
    return Listing(candidates, Context("q", None), formula, None)


def test_each_strategy_picks_its_own_way() -> None:
    """Known scores: the client ranks by its relevance (the cosine's share), the formula
    strategy by the relevance Qdrant gave, the MMR strategy keeps the order it came in;
    each lists one view per product."""
    scores, products = [0.2, 0.9, 0.5, 0.8], ["a", "b", "b", "c"]
    by_client = strategy_for(Params(k=3)).listed(_listing(scores, products), Params(k=3))
    assert [r.item_id for r in by_client] == ["i1", "i3", "i0"]  # i2: product b again
    server = Params(k=3, rerank="server")
    by_formula = strategy_for(server).listed(_listing(scores, products), server)
    assert [r.relevance for r in by_formula] == [0.9, 0.8, 0.2]  # Qdrant's relevance kept
    mmr = Params(k=2, rerank="server", diversity=0.5, weights=VISUAL_ONLY)
    in_order = strategy_for(mmr).listed(_listing(scores, products), mmr)
    assert [r.item_id for r in in_order] == ["i0", "i1"]  # as Qdrant's MMR ordered them


def test_the_strategy_that_ran_is_named(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home_with_items(home)
    item = "WOMEN-Dresses-id_00000001-01_1_front"
    for args, name in (((), "client"), (("--rerank", "server"), "qdrant-formula")):
        shown = fashionrec("recommend", "--item", item, "--json", *args, home=home)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["strategy"] == name
    table = fashionrec("recommend", "--item", item, home=home).stdout
    assert "strategy client" in table
