"""Latency of a user recommendation on the embedded store vs exact numpy and the public code.

Synthetic CNN-like 2048-d vectors (non-negative, clustered by category and product, three
views per product) with DeepFashion-like payloads (gender ~60/40, 17 categories, 5 stores,
popularity 0..100) are loaded into a fresh Qdrant Edge store. A query is one user with 5
purchases, k 5, 100 candidates: `Recommender.for_user` (one batch ANN search + rerank),
timed with payloads on every hit and with ids only plus the in-process table of the
rerank's fields (engine.recommend.columns), against, in the same run, (a) the public
code's method — a Python loop of per-pair cosine calls over every item of the catalog,
per purchase (measured at the smallest size only) — and (b) exact numpy search over all
vectors with the same rerank. Recall@5 is
the overlap of the engine's lists with the exact reference's.

    python bench/recommend.py [--sizes 10000,100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

# Run as a script, this folder would come first on sys.path (and bench/ingest.py would
# shadow the `ingest` package): put the project root there instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402

from engine.catalog.categories import CATEGORIES_BY_GENDER  # noqa: E402
from engine.catalog.taxonomy import deepfashion  # noqa: E402
from engine.events.eventlog import EventLog  # noqa: E402
from engine.recommend.blended import Blender  # noqa: E402
from engine.recommend.columns import Columns  # noqa: E402
from engine.recommend.profile import Profile  # noqa: E402
from engine.recommend.recommender import Params, Recommender  # noqa: E402
from engine.shops.shops import generate_shops  # noqa: E402
from engine.vectorstore.base import PointBatch  # noqa: E402
from engine.vectorstore.edge import EdgeStore  # noqa: E402
from engine.vectorstore.exact import ExactIndex  # noqa: E402
from engine.vocabulary.geo import DEFAULT_REGION, Location  # noqa: E402
from engine.vocabulary.records import Purchase, User  # noqa: E402
from engine.vocabulary.schema import HIT_FIELDS, point_id  # noqa: E402

DIM = 2048
VIEWS = ("1_front", "2_side", "3_back")


def catalog(n: int, seed: int = 0, offset: int = 0) -> tuple[np.ndarray, list[dict[str, object]]]:
    """n items: vectors (float32, unit norm) and payloads; item numbers start at offset."""
    rng = np.random.default_rng(seed)
    pairs = [(g, c) for g, cs in CATEGORIES_BY_GENDER.items() for c in cs]
    weights = np.array([0.6 / 14 if g == "WOMEN" else 0.4 / 9 for g, _ in pairs])
    centres = np.abs(rng.normal(size=(len(pairs), DIM))).astype(np.float32)
    stores = generate_shops(5, DEFAULT_REGION, seed=42)
    vectors = np.empty((n, DIM), dtype=np.float32)
    payloads: list[dict[str, object]] = []
    products = math.ceil(n / len(VIEWS))
    choice = rng.choice(len(pairs), size=products, p=weights / weights.sum())
    first = offset // len(VIEWS)
    for p in range(products):
        gender, category = pairs[choice[p]]
        base = centres[choice[p]] + 0.8 * np.abs(rng.normal(size=DIM)).astype(np.float32)
        shop = stores[p % len(stores)]
        for v, view in enumerate(VIEWS):
            i = p * len(VIEWS) + v
            if i >= n:
                break
            vectors[i] = base + 0.3 * np.abs(rng.normal(size=DIM))
            payloads.append(
                {
                    "item_id": f"{gender}-{category}-id_{first + p:08d}-01_{view}",
                    "product_id": f"id_{first + p:08d}-01",
                    "gender": gender,
                    "category": category,
                    "category_group": "",
                    "store_id": shop.id,
                    "store_location": shop.location.payload(),
                    "popularity": float(rng.integers(0, 101)),
                }
            )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, payloads


def load(store: EdgeStore, vectors: np.ndarray, payloads: list[dict[str, object]]) -> float:
    """Upsert everything in batches, then build the index; returns seconds."""
    start = time.perf_counter()
    store.ensure_vector("resnet50", DIM)
    for i in range(0, len(payloads), 1000):
        chunk = payloads[i : i + 1000]
        ids = [point_id(str(p["item_id"])) for p in chunk]
        store.upsert(PointBatch(ids, chunk, "resnet50", vectors[i : i + 1000]))
    store.flush()
    store.optimize()
    return time.perf_counter() - start


Shopper = tuple[User, list[Purchase]]


def users(payloads: list[dict[str, object]], count: int, seed: int = 1) -> list[Shopper]:
    """Random users with 5 purchases of their gender."""
    rng = np.random.default_rng(seed)
    by_gender: dict[str, list[str]] = {}
    for p in payloads:
        by_gender.setdefault(str(p["gender"]), []).append(str(p["item_id"]))
    out = []
    for u in range(count):
        gender = "WOMEN" if rng.uniform() < 0.6 else "MEN"
        items = rng.choice(by_gender[gender], size=5, replace=False)
        user = User(f"u{u}", gender, float(rng.uniform()), Location(48.86, 2.35))
        when = datetime(2025, 1, 1, tzinfo=UTC)
        out.append((user, [Purchase(user.id, str(i), when, None) for i in items]))
    return out


def public_method(
    vectors: np.ndarray, payloads: list[dict[str, object]], user: User, purchases: list[Purchase]
) -> None:
    """The public code's loop: cosine per pair in Python over every item, per purchase."""
    index = {str(p["item_id"]): i for i, p in enumerate(payloads)}
    paper = deepfashion()
    pops = [float(p["popularity"]) for p in payloads]  # type: ignore[arg-type]
    low, high = min(pops), max(pops)

    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    for purchase in purchases:
        q = index[purchase.item_id]
        scored = []
        for i, payload in enumerate(payloads):
            if i == q or payload["gender"] != user.gender:
                continue
            norm = (pops[i] - low) / (high - low)
            score = 0.6 * cosine(vectors[q], vectors[i]) + 0.2 * (1 - (norm - user.trendiness) ** 2)
            score += 0.2 * paper(str(payloads[q]["category"]), str(payload["category"]))
            scored.append((score, i))
        scored.sort(reverse=True)
        _ = scored[:5]


# a profile as `fashionrec tune` fitted it on the real catalog's taste shoppers (rounded)
PROFILE: Final = Profile(
    "tuned",
    {
        "untrendy_colour": 4.1,
        "trendy_popularity": 2.5,
        "untrendy_visual": 1.7,
        "untrendy_copurchase": 1.7,
        "sales": 1.6,
        "colour_mean": -1.3,
        "match": 1.3,
        "popularity": 0.5,
        "all_time": -0.4,
        "visual_last": 0.3,
        "visual_mean": 0.3,
    },
)


def sales(log: EventLog, payloads: list[dict[str, object]], queries: list[Shopper]) -> int:
    """The queried users and their purchases in the log, and a month of purchases by as
    many other shoppers as there are items / 10, five each (what sells, co-purchases)."""
    rng = np.random.default_rng(2)
    items = [str(p["item_id"]) for p in payloads]
    others = [User(f"o{n}", "WOMEN", 0.5, Location(48.86, 2.35)) for n in range(len(items) // 10)]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    bought = [
        Purchase(u.id, str(i), start + timedelta(hours=int(h)), None)
        for u in others
        for i, h in zip(rng.choice(items, 5), rng.integers(0, 720, 5), strict=True)
    ]
    with log.transaction():
        log.add_users([u for u, _ in queries] + others, "bench")
        log.add_purchases([p for _, ps in queries for p in ps] + bought, "bench")
    return log.purchase_count()


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ms = np.array(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--public-queries", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores; "
        f"user = 5 purchases, k 5, 100 candidates"
    )
    params = Params(k=5, candidates=100)
    sizes = [int(s) for s in args.sizes.split(",")]
    for size in sizes:
        vectors, payloads = catalog(size)
        queries = users(payloads, args.queries)
        with tempfile.TemporaryDirectory() as tmp:
            store = EdgeStore(Path(tmp) / "store")
            seconds = load(store, vectors, payloads)
            engine = Recommender(store)
            exact = Recommender(
                store, searcher=ExactIndex.load(store, "resnet50", HIT_FIELDS).search
            )
            tabled = Recommender(store, columns=Columns(store))
            log = EventLog(Path(tmp) / "events.sqlite")
            sold = sales(log, payloads, queries)
            blender = Blender(store, log, deepfashion())
            for user, bought in queries[:5]:  # warm-up
                engine.for_user(user, bought, params)
                tabled.for_user(user, bought, params)
                blender.for_user(user, bought, params, PROFILE, 7.0)
            timings, table_timings, exact_timings, recalls = [], [], [], []
            got = []
            for user, bought in queries:  # the engine alone, then exact search alone
                start = time.perf_counter()
                got.append(engine.for_user(user, bought, params))
                timings.append(time.perf_counter() - start)
            for user, bought in queries:  # ids only, the rerank's fields from the table
                start = time.perf_counter()
                tabled.for_user(user, bought, params)
                table_timings.append(time.perf_counter() - start)
            blended_timings = []
            for user, bought in queries:  # every source, the fitted profile's scorer
                start = time.perf_counter()
                blender.for_user(user, bought, params, PROFILE, 7.0)
                blended_timings.append(time.perf_counter() - start)
            log.close()
            for (user, bought), mine in zip(queries, got, strict=True):
                start = time.perf_counter()
                want = exact.for_user(user, bought, params)
                exact_timings.append(time.perf_counter() - start)
                for (_, a), (_, b) in zip(mine.per_purchase, want.per_purchase, strict=True):
                    same = {r.item_id for r in a} & {r.item_id for r in b}
                    recalls.append(len(same) / max(1, len(b)))
            store.close()
        p50, p99 = percentiles(timings)
        t50, t99 = percentiles(table_timings)
        e50, _ = percentiles(exact_timings)
        print(
            f"{size:>7} points: load+index {seconds:6.1f} s | engine p50 {p50:6.1f} ms "
            f"p99 {p99:6.1f} ms | with the table p50 {t50:6.1f} ms p99 {t99:6.1f} ms | "
            f"exact numpy p50 {e50:7.1f} ms ({e50 / t50:5.1f}x) | recall@5 {np.mean(recalls):.4f}"
        )
        b50, b99 = percentiles(blended_timings)
        print(
            f"{size:>7} points: blended (every source, {sold:,} purchases in the log) p50 "
            f"{b50:6.1f} ms p99 {b99:6.1f} ms | against the table's rerank: p50 "
            f"{b50 / t50:4.2f}x, p99 {b99 / t99:4.2f}x"
        )
        if size == min(sizes) and args.public_queries:
            start = time.perf_counter()
            for user, bought in queries[: args.public_queries]:
                public_method(vectors, payloads, user, bought)
            public = (time.perf_counter() - start) / args.public_queries * 1000
            print(
                f"{size:>7} points: public code's method {public:8.1f} ms per user "
                f"({public / p50:6.0f}x the engine's p50)"
            )


if __name__ == "__main__":
    main()
