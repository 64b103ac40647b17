"""Diversity by maximal marginal relevance as λ goes 0 → 1: what the lists gain and cost.

The synthetic catalog of bench/recommend.py (2048-d CNN-like vectors clustered by
category and product, three views per product, DeepFashion-like payloads) in a fresh
Qdrant Edge store. Each query is one user with 5 purchases, k 5, 100 candidates
(--candidates), the default weights and the client rerank; every λ runs on every user in
turn, so the latencies are measured side by side. Per λ: intra-list diversity (mean pairwise 1 − cos
within a per-purchase list), category similarity (mean CatSim between the purchase and
its recommendations, %), mean relevance, and the p50 / p99 latency of a user against
λ = 0. Then, with visual weights only (w_v = 1), Qdrant's MMR inside Qdrant against the
client's: p50 of each and the share of lists that are identical.

    python bench/diversity.py [--size 20000] [--users 200] [--candidates 100]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402

from bench.recommend import catalog, load, percentiles, users  # noqa: E402
from engine.recommend.diversity import intra_list_diversity  # noqa: E402
from engine.recommend.recommender import Params, Recommender  # noqa: E402
from engine.recommend.rerank import Recommendation  # noqa: E402
from engine.recommend.scoring import Weights  # noqa: E402
from engine.vectorstore.edge import EdgeStore  # noqa: E402

LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)
VISUAL = Weights(visual=1.0, popularity=0.0, category=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=100)
    args = parser.parse_args()
    print(
        f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores; {args.size} items, {args.users} users of "
        f"5 purchases, k 5, {args.candidates} candidates"
    )
    vectors, payloads = catalog(args.size)
    row = {str(p["item_id"]): i for i, p in enumerate(payloads)}
    queries = users(payloads, args.users)
    base = Params(k=5, candidates=args.candidates)

    def spread(recs: list[Recommendation]) -> float:
        return intra_list_diversity(vectors[[row[r.item_id] for r in recs]])

    with tempfile.TemporaryDirectory() as tmp:
        store = EdgeStore(Path(tmp) / "store")
        load(store, vectors, payloads)
        engine = Recommender(store)
        for user, bought in queries[:5]:  # warm-up
            for diversity in LAMBDAS:
                engine.for_user(user, bought, replace(base, diversity=diversity))
        timings: dict[float, list[float]] = {d: [] for d in LAMBDAS}
        ild: dict[float, list[float]] = {d: [] for d in LAMBDAS}
        catsim: dict[float, list[float]] = {d: [] for d in LAMBDAS}
        relevance: dict[float, list[float]] = {d: [] for d in LAMBDAS}
        for user, bought in queries:
            for diversity in LAMBDAS:
                params = replace(base, diversity=diversity)
                start = time.perf_counter()
                result = engine.for_user(user, bought, params)
                timings[diversity].append(time.perf_counter() - start)
                for _, recs in result.per_purchase:
                    ild[diversity].append(spread(recs))
                    catsim[diversity] += [r.category_sim for r in recs]
                    relevance[diversity] += [r.relevance for r in recs]
        zero, _ = percentiles(timings[0.0])
        print("| λ | intra-list diversity | category similarity | relevance | p50 | p99 |")
        print("|---|---|---|---|---|---|")
        for diversity in LAMBDAS:
            p50, p99 = percentiles(timings[diversity])
            print(
                f"| {diversity:.2f} | {np.mean(ild[diversity]):.4f} | "
                f"{100 * np.mean(catsim[diversity]):.1f} % | {np.mean(relevance[diversity]):.4f} "
                f"| {p50:.1f} ms ({p50 / zero:.2f}x) | {p99:.1f} ms |"
            )

        print("\nvisual weights only (w_v = 1): the client's MMR and Qdrant's")
        print("| λ | client p50 | in Qdrant p50 | identical lists |")
        print("|---|---|---|---|")
        for diversity in LAMBDAS[1:]:
            client = replace(base, weights=VISUAL, diversity=diversity)
            server = replace(client, rerank="server")
            mine, theirs, same = [], [], []
            for user, bought in queries:
                start = time.perf_counter()
                a = engine.for_user(user, bought, client)
                mine.append(time.perf_counter() - start)
                start = time.perf_counter()
                b = engine.for_user(user, bought, server)
                theirs.append(time.perf_counter() - start)
                for (_, x), (_, y) in zip(a.per_purchase, b.per_purchase, strict=True):
                    same.append([r.item_id for r in x] == [r.item_id for r in y])
            print(
                f"| {diversity:.2f} | {percentiles(mine)[0]:.1f} ms | "
                f"{percentiles(theirs)[0]:.1f} ms | {100 * np.mean(same):.1f} % |"
            )
        store.close()


if __name__ == "__main__":
    main()
