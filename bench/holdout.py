"""Leave-last-out throughput: the shelf's batched path against the engine's, one run.

Taste shoppers are simulated in memory over an ingested home (trending popularity); then
- the engine's path, as leave-last-out ran before (each shopper: the popularity as of the
  held-out purchase, and `Recommender.for_user` through the vector store for the full
  model, its three term ablations and visual kNN), on the first --sample shoppers;
- the shelf's path (engine/evaluate/blended.py: every vector in memory, one matrix product
  per chunk of shoppers, 18 systems each), on every shopper, once with the profile's fit
  counted and once without.
Prints shoppers per second of each and their ratio; nothing is written to the home.

    python bench/holdout.py --home HOME [--users 1000] [--sample 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])  # the project, not bench/

from engine.application import Application  # noqa: E402
from engine.evaluate.blended import LeaveLastOut  # noqa: E402
from engine.evaluate.evaluation import CHUNK  # noqa: E402
from engine.evaluate.holdout import HoldoutSum  # noqa: E402
from engine.evaluate.protocol import (  # noqa: E402
    Protocol,
    StoredItems,
    shopper_styles,
    simulated_cohort,
)
from engine.events.trending import PopularitySettings  # noqa: E402
from engine.recommend.params import Params  # noqa: E402
from engine.recommend.recommender import Recommender  # noqa: E402
from engine.recommend.rerank import Popularity  # noqa: E402
from engine.recommend.scoring import Weights  # noqa: E402
from engine.recommend.shelf import Shelf  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.spaces.registry import space_in_force  # noqa: E402
from engine.vocabulary.geo import DEFAULT_REGION  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with Application.open(Settings(home=args.home)) as app:
        space = space_in_force(args.home, None, app.store.vector_dims())
        items = StoredItems.load(app.store)
        styles = shopper_styles(app.store, items, space, args.seed)
        protocol = Protocol(users=args.users, seed=args.seed, backbones=(space,), shoppers="taste")
        cohort = simulated_cohort(
            items, protocol, DEFAULT_REGION, app.taxonomy, PopularitySettings("trending"), styles
        )
        shoppers = [found for _, chunk in cohort.chunks(CHUNK) for found in chunk]
        measured = [(u, b) for u, b in shoppers if len(b) > 1]
        print(
            f"home {args.home}: {len(items.items)} items, space {space}, "
            f"{len(measured)} shoppers with a purchase to hold out"
        )

        engine = Recommender(app.store, app.taxonomy)
        weights = protocol.weights
        settings = {
            "full": weights,
            "no popularity": Weights(weights.visual, 0.0, weights.category, weights.gamma),
            "no visual": Weights(0.0, weights.popularity, weights.category, weights.gamma),
            "no category": Weights(weights.visual, weights.popularity, 0.0, weights.gamma),
            "visual": Weights(1.0, 0.0, 0.0, weights.gamma),
        }
        sample = measured[: args.sample]
        started = time.perf_counter()
        for user, bought in sample:
            all_time, trending = cohort.as_of(bought[-1].timestamp)
            engine.popularity = Popularity.of_values(trending, "rank", all_time)
            for w in settings.values():
                engine.for_user(user, bought[:-1], Params(space, 10, 100, w))
        before = len(sample) / (time.perf_counter() - started)
        print(
            f"engine's path (5 lists a shopper, through the store): {before:.1f} shoppers/s "
            f"({len(sample)} shoppers)"
        )

        started = time.perf_counter()
        shelf = Shelf.of_store(app.store, space, app.taxonomy)
        loaded = time.perf_counter()
        lastout = LeaveLastOut(
            shelf,
            shoppers,
            app.taxonomy,
            cohort.half_life_s,
            cohort.initial_popularity(),
            1,
            args.seed,
        )
        fitted = time.perf_counter()
        totals = HoldoutSum(10)
        for start in range(0, len(shoppers), CHUNK):
            lastout.add(totals, shoppers[start : start + CHUNK], weights, 100)
        done = time.perf_counter()
        listed = totals.shoppers / (done - fitted)
        whole = totals.shoppers / (done - started)
        print(
            f"shelf's path: shelf read {loaded - started:.1f} s, profile fitted "
            f"{fitted - loaded:.1f} s, {totals.shoppers} shoppers listed (18 systems each) "
            f"in {done - fitted:.1f} s"
        )
        print(
            f"shelf's path: {listed:.1f} shoppers/s listing, {whole:.1f} shoppers/s with the "
            f"shelf and the fit"
        )
        print(
            f"ratio (shelf / engine): {listed / before:.1f}× listing, {whole / before:.1f}× in all"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
