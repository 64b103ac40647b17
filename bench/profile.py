"""Where the milliseconds of a user recommendation go, with payloads and with the table.

On a store built by bench/scale.py (synthetic 2048-d vectors, DeepFashion-like payloads,
default layout) reopened in this process: users with 5 purchases of their gender, k 5,
100 candidates, after warm-up. Each variant (search returning payloads, or ids and
scores with the rerank's fields read from the in-process table; the rerank in the client
or inside Qdrant) is timed end to end (p50/p99) and by phase (means):

    purchases   reading the purchased items and their vectors
    range       the popularity's catalog-wide range
    engine      inside Qdrant Edge's query_batch (the interpreter lock held)
    results     turning its results into Python objects (hits with payloads, or ids)
    table       looking the ids up in the table
    rerank      the rerank and the rest

and the final lists are compared with those of exact search (numpy over every vector,
same filters, same rerank): recall@5 of each purchase's list and of the merged list.

With --settings ef:oversampling ..., the table with the client rerank is timed again under
each query-time setting (HNSW ef; int8 candidates per result rescored on the originals, 0:
none) and the store's own, the same users in rotating order, and judged by the recall of
the final lists, not of the candidates: a candidate missed at rank 95 rarely changes the
top 5.

    python bench/profile.py --size 800000 [--users 200] [--settings 200:2 128:1.5 100:1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script, this folder would come first on sys.path (and bench/ingest.py would
# shadow the `ingest` package): put the project root there instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402
import qdrant_edge as qe  # noqa: E402

from bench.scale import DATA, stream_top  # noqa: E402
from engine.recommend.columns import Columns  # noqa: E402
from engine.recommend.recommender import Params, Recommender  # noqa: E402
from engine.spaces.registry import load_space  # noqa: E402
from engine.vectorstore.base import Hit, Query  # noqa: E402
from engine.vectorstore.edge import EdgeStore  # noqa: E402
from engine.vectorstore.edge import store as edge_store  # noqa: E402
from engine.vocabulary.geo import Location  # noqa: E402
from engine.vocabulary.records import Purchase, User  # noqa: E402
from engine.vocabulary.schema import GENDER, PRODUCT_ID, point_id  # noqa: E402

WARMUP = 20
Phases = dict[str, float]


class Clock:
    """Seconds spent in each phase, summed over the timed calls."""

    def __init__(self) -> None:
        self.spent: Phases = defaultdict(float)
        self.on = False

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.on:
                self.spent[name] += time.perf_counter() - start

    def wrap(self, owner: Any, method: str, name: str) -> None:
        """Time every call of owner.method under `name`."""
        inner = getattr(owner, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return inner(*args, **kwargs)

        setattr(owner, method, timed)


class ShardClock:
    """The Edge shard with its query_batch timed (a native object takes no attributes)."""

    def __init__(self, shard: Any, clock: Clock) -> None:
        self._shard, self._clock = shard, clock

    def query_batch(self, *args: Any) -> Any:
        with self._clock.phase("engine"):
            return self._shard.query_batch(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shard, name)


@dataclass(frozen=True)
class Catalog:
    """What the bench needs of the payloads: item, gender and product of every row."""

    item_id: np.ndarray
    gender: np.ndarray
    product_id: np.ndarray

    @classmethod
    def read(cls, path: Path) -> Catalog:
        rows = [json.loads(line) for line in path.open()]
        return cls(*(np.array([r[k] for r in rows]) for k in ("item_id", "gender", "product_id")))


def make_users(catalog: Catalog, count: int, seed: int = 1) -> list[tuple[User, list[Purchase]]]:
    """Users with 5 purchases of their gender (WOMEN 60 %), trendiness uniform, in Paris."""
    rng = np.random.default_rng(seed)
    by_gender = {g: catalog.item_id[catalog.gender == g] for g in ("WOMEN", "MEN")}
    users = []
    when = datetime(2025, 1, 1, tzinfo=UTC)
    for u in range(count):
        gender = "WOMEN" if rng.uniform() < 0.6 else "MEN"
        items = rng.choice(by_gender[gender], size=5, replace=False)
        user = User(f"u{seed}-{u}", gender, float(rng.uniform()), Location(48.86, 2.35))
        users.append((user, [Purchase(user.id, str(i), when, None) for i in items]))
    return users


class ExactSearch:
    """Exact answers to every query the timed users will ask, found in one streaming pass
    over the vectors per gender and replayed by query vector (the reference searcher; ids
    and scores only: the reference reads the rest from the table too)."""

    def __init__(self, vectors: np.ndarray, catalog: Catalog) -> None:
        self.vectors, self.catalog = vectors, catalog
        self.answers: dict[bytes, list[Hit]] = {}

    def prepare(self, queries: list[Query]) -> None:
        """The exact filtered top `limit` of each query (gender within, products excluded)."""
        shown = {q.vector.tobytes(): q for q in queries}
        wanted = list(shown.values())
        extra = max(len(q.filter.exclude.get(PRODUCT_ID, ())) for q in wanted if q.filter) * 8
        depth = max(q.limit for q in wanted) + extra
        groups: dict[frozenset[str], list[Query]] = defaultdict(list)
        for q in wanted:
            assert q.filter is not None
            groups[frozenset(q.filter.within[GENDER])].append(q)
        for genders, group in groups.items():
            pool = np.flatnonzero(np.isin(self.catalog.gender, sorted(genders)))
            matrix = np.stack([q.vector for q in group]).astype(np.float32)
            best, rows = stream_top(self.vectors, pool, matrix, depth)
            for q, scores, found in zip(group, best, rows, strict=True):
                order = np.argsort(-scores, kind="stable")
                excluded = q.filter.exclude.get(PRODUCT_ID, frozenset()) if q.filter else set()
                products = self.catalog.product_id[found[order]]
                kept = [i for i, p in zip(order, products, strict=True) if p not in excluded]
                self.answers[q.vector.tobytes()] = [
                    Hit(point_id(str(self.catalog.item_id[found[i]])), float(scores[i]), {})
                    for i in kept[: q.limit]
                ]

    def __call__(self, queries: Sequence[Query], fields: Sequence[str]) -> list[list[Hit]]:
        return [self.answers[q.vector.tobytes()] for q in queries]


def read_through(folder: Path) -> float:
    """Read every file of a folder once (into the page cache); seconds it took."""
    start = time.perf_counter()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as data:
                while data.read(1 << 24):
                    pass
    return time.perf_counter() - start


def setting(ef: int, oversampling: float) -> Callable[[int], qe.SearchParams]:
    """The store's search parameters under one query-time setting."""

    def params(limit: int) -> qe.SearchParams:
        if not oversampling:
            return qe.SearchParams(
                hnsw_ef=ef, quantization=qe.QuantizationSearchParams(rescore=False)
            )
        rescore = qe.QuantizationSearchParams(rescore=True, oversampling=oversampling)
        return qe.SearchParams(hnsw_ef=ef, quantization=rescore)

    return params


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.array(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


VARIANTS = (  # name, table, rerank
    ("payloads, client rerank", False, "client"),
    ("table, client rerank", True, "client"),
    ("payloads, rerank in Qdrant", False, "server"),
    ("table, rerank in Qdrant", True, "server"),
)
PHASES = ("purchases", "range", "engine", "results", "table", "rerank")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--layout", default="int8-disk")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--settings", nargs="*", default=[], help="ef:oversampling ...")
    parser.add_argument("--cache", action="store_true", help="read the store's files first")
    parser.add_argument(
        "--space",
        default="resnet50",
        help="the vector space searched: resnet50, or a compact space fitted on the store "
        "(`fashionrec compact fit --home bench/.data/home-<size>`, whose store links there)",
    )
    args = parser.parse_args()
    folder, store_dir = DATA / str(args.size), DATA / f"store-{args.size}-{args.layout}"
    if not store_dir.is_dir():
        sys.exit(f"no store at {store_dir}: run bench/scale.py --size {args.size} first")
    vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    if args.space != "resnet50":  # the exact reference searches the projected vectors
        space = load_space(DATA / f"home-{args.size}", args.space)
        if space is None:
            sys.exit(f"no space {args.space} in {DATA / f'home-{args.size}'}")
        vectors = np.concatenate(
            [space.projection(vectors[i : i + 50_000]) for i in range(0, len(vectors), 50_000)]
        )
    catalog = Catalog.read(folder / "payloads.jsonl")
    users = make_users(catalog, WARMUP + args.users)
    warm, timed = users[:WARMUP], users[WARMUP:]
    settings = [tuple(float(x) for x in s.split(":")) for s in args.settings]
    cached = f"; store files read through in {read_through(store_dir):.0f} s" if args.cache else ""
    store = EdgeStore(store_dir)
    clock = Clock()
    store._shard = ShardClock(store.shard, clock)  # type: ignore[assignment]
    for method, name in (("retrieve", "purchases"), ("value_range", "range")):
        clock.wrap(store, method, name)
    for method in ("search", "search_scored", "formula_search", "formula_scored"):
        clock.wrap(store, method, "search")
    start = time.perf_counter()
    columns = Columns(store)
    built = time.perf_counter() - start
    clock.wrap(columns, "candidates", "table")
    clock.wrap(columns, "value_range", "range")
    print(
        f"{args.size:,} points ({args.layout}), space {args.space}, {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores, load {os.getloadavg()[0]:.1f}; "
        f"table read in {built:.1f} s, ~{columns.nbytes() / 1e6:.0f} MB{cached}",
        flush=True,
    )
    engines = [Recommender(store, columns=columns if table else None) for _, table, _ in VARIANTS]
    params = [Params(args.space, k=5, candidates=100, rerank=r) for _, _, r in VARIANTS]  # type: ignore[arg-type]
    for user, bought in warm:
        for engine, p in zip(engines, params, strict=True):
            engine.for_user(user, bought, p)
    # every user through every variant, the order rotating: none is always first to read
    spent: list[list[float]] = [[] for _ in VARIANTS]
    phases: list[Phases] = [defaultdict(float) for _ in VARIANTS]
    got: dict[str, list[Any]] = {name: [] for name, _, _ in VARIANTS}
    clock.on = True
    for n, (user, bought) in enumerate(timed):
        for v in np.roll(np.arange(len(VARIANTS)), n):
            clock.spent.clear()
            start = time.perf_counter()
            got[VARIANTS[v][0]].append(engines[v].for_user(user, bought, params[v]))
            spent[v].append(time.perf_counter() - start)
            for key, value in clock.spent.items():
                phases[v][key] += value
    clock.on = False
    print(f"{'variant':<27}{'p50':>7}{'p99':>7} |" + "".join(f"{p:>10}" for p in PHASES))
    for (name, _, _), times, phase in zip(VARIANTS, spent, phases, strict=True):
        ms = {k: v / len(times) * 1000 for k, v in phase.items()}
        results = ms.get("search", 0.0) - ms.get("engine", 0.0)
        total = float(np.mean(times) * 1000)
        rest = total - sum(ms.get(k, 0.0) for k in ("purchases", "range", "search", "table"))
        cells = [ms.get("purchases", 0), ms.get("range", 0), ms.get("engine", 0), results]
        cells += [ms.get("table", 0), rest]
        p50, p99 = percentiles(times)
        print(f"{name:<27}{p50:7.1f}{p99:7.1f} |" + "".join(f"{c:10.2f}" for c in cells))
    tabled = engines[1]
    queried = vars(edge_store)  # its search_params: what each Edge query asks, swapped below
    default = queried["search_params"]
    # the same users again under each setting and the default, in rotating order
    chosen = [
        ("default", default),
        *((f"ef {e:g}, oversampling {o:g}", setting(int(e), o)) for e, o in settings),
    ]
    if settings:
        times2: list[list[float]] = [[] for _ in chosen]
        lists2: list[list[Any]] = [[] for _ in chosen]
        for n, (user, bought) in enumerate(timed):
            for c in np.roll(np.arange(len(chosen)), n):
                queried["search_params"] = chosen[c][1]
                start = time.perf_counter()
                lists2[c].append(
                    tabled.for_user(user, bought, Params(args.space, k=5, candidates=100))
                )
                times2[c].append(time.perf_counter() - start)
        queried["search_params"] = default
        for (label, _), times, lists in zip(chosen, times2, lists2, strict=True):
            got[f"table, {label}"] = lists
            p50, p99 = percentiles(times)
            print(f"table, client rerank, {label}: p50 {p50:.1f} p99 {p99:.1f}")
    exact = ExactSearch(vectors, catalog)
    reference = Recommender(store, searcher=exact, columns=columns)
    asked: list[Query] = []

    def recording(queries: Sequence[Query], fields: Sequence[str]) -> list[list[Hit]]:
        asked.extend(queries)
        return [[] for _ in queries]

    recorder = Recommender(store, searcher=recording)
    for user, bought in timed:
        recorder.for_user(user, bought, Params(args.space, k=5, candidates=100))
    start = time.perf_counter()
    exact.prepare(asked)
    print(f"exact reference: {len(asked)} searches in {time.perf_counter() - start:.0f} s")
    want = [reference.for_user(u, b, Params(args.space, k=5, candidates=100)) for u, b in timed]
    for name, lists in got.items():
        per, merged = [], []
        for mine, ref in zip(lists, want, strict=True):
            for (_, a), (_, b) in zip(mine.per_purchase, ref.per_purchase, strict=True):
                per.append(len({r.item_id for r in a} & {r.item_id for r in b}) / max(1, len(b)))
            same = {r.item_id for r in mine.merged} & {r.item_id for r in ref.merged}
            merged.append(len(same) / max(1, len(ref.merged)))
        print(f"{name:<40} final-list recall@5: per purchase {np.mean(per):.4f}", end="")
        print(f", merged {np.mean(merged):.4f}")
    store.close()


if __name__ == "__main__":
    main()
