"""Query-time search settings of a large store: HNSW ef and rescoring against latency and recall.

Opens a store that bench/scale.py built (bench/.data/store-<size>-<layout>). The process warms
up, then each setting in turn gets a warm-up and a stream of gender-filtered top-100 queries,
as a service would see them. Each setting gets its own query vectors: a vector asked twice
finds its originals already read, which flatters whichever setting comes second. A setting
is `ef:oversampling`; an oversampling of 0 searches the int8 vectors alone, without
rescoring on the originals. Qdrant searches with at least limit × oversampling as ef.

    python bench/tune.py --size 800000 --settings 200:2 128:1.5 100:1 100:0
    python bench/tune.py --size 800000 --near-store 1 --settings 200:2 128:1.5
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402
import qdrant_edge as qe  # noqa: E402

from bench.scale import DATA, exact_top  # noqa: E402
from engine.vectorstore.edge import EdgeStore  # noqa: E402
from engine.vocabulary.geo import Location, distance_km  # noqa: E402
from engine.vocabulary.schema import point_id  # noqa: E402


def request(
    vector: np.ndarray, must: Sequence[qe.FieldCondition], ef: int, oversampling: float
) -> qe.QueryRequest:
    """A filtered top-100 under one setting, as the store's own search builds it."""
    rescore = (
        qe.QuantizationSearchParams(rescore=True, oversampling=oversampling)
        if oversampling
        else qe.QuantizationSearchParams(rescore=False)
    )
    return qe.QueryRequest(
        limit=100,
        query=qe.Query.Nearest(vector.tolist(), using="resnet50"),
        filter=qe.Filter(must=list[Any](must)),
        with_payload=["item_id"],
        params=qe.SearchParams(hnsw_ef=ef, quantization=rescore),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=800_000)
    parser.add_argument("--layout", default="int8-disk")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--settings", nargs="+", default=["200:2", "128:1.5", "100:1", "100:0"])
    parser.add_argument(
        "--near-store",
        type=float,
        metavar="KM",
        help="also keep only items within KM of the query item's store (as --max-km does)",
    )
    args = parser.parse_args()
    folder = DATA / str(args.size)
    vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    payloads = [json.loads(line) for line in (folder / "payloads.jsonl").open()]
    gc.freeze()  # the bench's own payload dicts would otherwise make full collections slow
    groups = np.array([p["gender"] for p in payloads])  # the exact search's pools

    def must(i: int) -> list[qe.FieldCondition]:
        conditions = [qe.FieldCondition("gender", match=qe.MatchValue(groups[i].split()[0]))]
        if args.near_store:
            shop = payloads[i]["store_location"]
            centre = qe.GeoPoint(lon=shop["lon"], lat=shop["lat"])
            radius = qe.GeoRadius(center=centre, radius=args.near_store * 1000)
            conditions.append(qe.FieldCondition("store_location", geo_radius=radius))
        return conditions

    if args.near_store:  # one store per pool: the radius must not reach a second store
        shops = {p["store_id"]: Location(**p["store_location"]) for p in payloads[:1000]}
        apart = min(distance_km(a, b) for a in shops.values() for b in shops.values() if a != b)
        if args.near_store >= apart:
            sys.exit(f"--near-store must be under {apart:.1f} km, the closest two stores")
        groups = np.char.add(np.char.add(groups, " "), [p["store_id"] for p in payloads])
    per = args.warmup + args.queries
    settings = [(int(s.split(":")[0]), float(s.split(":")[1])) for s in args.settings]
    rows = np.random.default_rng(11).choice(len(vectors), per * (len(settings) + 1), False)
    rows, first = rows[: per * len(settings)].reshape(len(settings), per), rows[-per:]
    picks = rows[:, args.warmup :].ravel()
    exact = exact_top(vectors, groups, picks, 100).reshape(len(settings), args.queries, 100)
    shard = EdgeStore(DATA / f"store-{args.size}-{args.layout}").shard
    print(f"segments: {shard.info().segments_count}", file=sys.stderr)
    for i in first:  # the process's own warm-up, so that the first setting pays no more
        shard.query(request(np.asarray(vectors[i]), must(i), *settings[0]))
    spent = np.zeros((len(settings), args.queries))
    recall = np.zeros((len(settings), args.queries, 2))  # @10 and @100
    for s, setting in enumerate(settings):
        for n, i in enumerate(rows[s]):
            start = time.perf_counter()
            hits = shard.query(request(np.asarray(vectors[i]), must(i), *setting))
            took = time.perf_counter() - start
            if n >= args.warmup:
                m = n - args.warmup
                spent[s, m] = took
                for c, k in enumerate((10, 100)):
                    want = {point_id(payloads[j]["item_id"]) for j in exact[s, m, :k]}
                    recall[s, m, c] = len({str(h.id) for h in hits[:k]} & want) / k
    print("| ef | oversampling | p50 ms | p95 ms | p99 ms | recall@10 | recall@100 |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for (ef, over), ms, r in zip(settings, spent * 1000, recall, strict=True):
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        rescore = f"{over:g}" if over else "no rescore"
        at10, at100 = r.mean(axis=0)
        timing = f"{p50:.1f} | {p95:.1f} | {p99:.1f}"
        print(f"| {ef} | {rescore} | {timing} | {at10:.3f} | {at100:.3f} |")


if __name__ == "__main__":
    main()
