"""What keeping the stored NormPop ranks in step costs, on a synthetic embedded store.

    python bench/ranks.py [--size 100000] [--repeats 5]

Times, each the median of `--repeats` runs: the first exact write of every rank (what
ingest does), a refresh that finds them in step (the read of the catalog's popularity
fields), and one purchase's update of the bought item's ranks — counted in the store (a
CLI import, a Qdrant server) and from the table a service holds — against the purchase's
own popularity write as the baseline (the ratio printed).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path[0] = str(Path(__file__).resolve().parents[1])  # the project, not bench/

from engine.events.eventlog import EventLog  # noqa: E402
from engine.popularity.upkeep import RANK_DRIFT_KEY, sync_ranks, update_ranks  # noqa: E402
from engine.recommend.columns import Columns  # noqa: E402
from engine.vectorstore.base import PointBatch  # noqa: E402
from engine.vectorstore.edge import EdgeStore  # noqa: E402
from engine.vocabulary.schema import POPULARITY, TRENDING, point_id  # noqa: E402

BATCH = 10_000


def _median_ms(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ranks-"))
    rng = np.random.default_rng(0)
    store = EdgeStore(folder / "store")
    log = EventLog(folder / "events.sqlite")
    try:
        store.ensure_vector("resnet50", 8)
        for start in range(0, args.size, BATCH):
            ids = [f"i{j}" for j in range(start, min(start + BATCH, args.size))]
            payloads = [
                {
                    "item_id": i,
                    "product_id": i,
                    "gender": "WOMEN",
                    "category": "Dresses",
                    POPULARITY: float(rng.integers(0, 100)),
                    TRENDING: float(rng.exponential()) if rng.random() < 0.1 else 0.0,
                }
                for i in ids
            ]
            vectors = rng.random((len(ids), 8), dtype=np.float32)
            store.write(PointBatch([point_id(i) for i in ids], payloads, "resnet50", vectors))
        store.optimize()
        started = time.perf_counter()
        written = sync_ranks(store)
        first = time.perf_counter() - started
        store.optimize()
        in_step = _median_ms(lambda: sync_ranks(store, tolerance=0.002), args.repeats)
        log.put(RANK_DRIFT_KEY, "0")
        counter = iter(range(10**9))

        def purchase() -> str:
            """One sale: the bought item's popularity payload, as the sync writes it."""
            item = f"i{next(counter) * 7919 % args.size}"
            store.set_payload([point_id(item)], {POPULARITY: 150.0, TRENDING: 5.0})
            return item

        def counted() -> None:
            update_ranks(store, log, [purchase()], 1)

        table = Columns(store)

        def held() -> None:
            update_ranks(store, log, [purchase()], 1, table)

        baseline = _median_ms(purchase, args.repeats)
        by_counts = _median_ms(counted, args.repeats)
        by_table = _median_ms(held, args.repeats)
        print(f"{args.size:,} items, embedded store (Qdrant Edge); medians of {args.repeats}")
        print(f"first exact write of every rank: {first:.1f} s ({written:,} ranks)")
        print(f"a refresh that finds them in step: {in_step:.0f} ms")
        print(f"one purchase's popularity write (the baseline): {baseline:.2f} ms")
        print(
            f"the write and its ranks counted in the store: {by_counts:.2f} ms "
            f"({by_counts / baseline:.1f}x the write alone)"
        )
        print(
            f"the write and its ranks from the table in memory: {by_table:.2f} ms "
            f"({by_table / baseline:.1f}x the write alone)"
        )
    finally:
        log.close()
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
