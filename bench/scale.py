"""Scale of the embedded store: load, index, memory, disk, filtered latency and recall.

Synthetic CNN-like 2048-d vectors with DeepFashion-like payloads (gender ~60/40, 17
categories, 5 stores) are written once to bench/.data/<size>/ (a .npy memmap and a JSONL),
then loaded into a fresh Qdrant Edge store with one layout:

    float      float32 originals in RAM, no quantization (the baseline)
    int8-ram   int8 quantized search, float32 originals in RAM, rescoring
    int8-disk  int8 quantized search, float32 originals memory-mapped on disk, rescoring

Queries run in a fresh process after the store is reopened and 50 warm-up queries:
gender-filtered top-100 (p50/p99, recall@10 against exact search computed from the memmap),
and a user recommendation (5 purchases, k 5), with the client rerank and with the rerank
inside Qdrant, each with payloads on every hit and with ids only plus the in-process table
of the rerank's fields (bench/profile.py breaks one down by phase).

    python bench/scale.py --size 100000 --layout int8-disk
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

# Run as a script, this folder would come first on sys.path (and bench/ingest.py would
# shadow the `ingest` package): put the project root there instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402

from engine.recommend.columns import Columns  # noqa: E402
from engine.recommend.recommender import Params, Recommender  # noqa: E402
from engine.vectorstore.base import Filter, Layout, PointBatch, Query  # noqa: E402
from engine.vectorstore.edge import EdgeStore  # noqa: E402
from engine.vocabulary.geo import Location  # noqa: E402
from engine.vocabulary.records import Purchase, User  # noqa: E402
from engine.vocabulary.schema import point_id  # noqa: E402

DATA = Path(__file__).parent / ".data"
LAYOUTS = {
    "float": Layout(quantized=False, originals_on_disk=False),
    "int8-ram": Layout(quantized=True, originals_on_disk=False),
    "int8-disk": Layout(quantized=True, originals_on_disk=True),
}
DIM = 2048
WARMUP = 50  # queries before the timed ones, on other vectors


def generate(size: int) -> Path:
    """Vectors (memmap .npy) and payloads (JSONL) for `size` items, written once."""
    folder = DATA / str(size)
    if (folder / "done").exists():
        return folder
    from bench.recommend import catalog  # the same generator, in chunks

    folder.mkdir(parents=True, exist_ok=True)
    vectors = np.lib.format.open_memmap(folder / "vectors.npy", "w+", np.float32, (size, DIM))
    with (folder / "payloads.jsonl").open("w") as out:
        for start in range(0, size, 30_000):
            part, payloads = catalog(min(30_000, size - start), seed=start, offset=start)
            vectors[start : start + len(part)] = part
            out.writelines(json.dumps(p) + "\n" for p in payloads)
    vectors.flush()
    (folder / "done").touch()
    return folder


def rss_mb() -> tuple[float, float]:
    """Current and peak resident memory of this process, in MB."""
    status = Path("/proc/self/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def load(folder: Path, store_dir: Path, layout: Layout) -> dict[str, float]:
    vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    store = EdgeStore(store_dir, layout)
    store.ensure_vector("resnet50", DIM)
    start = time.perf_counter()
    with (folder / "payloads.jsonl").open() as lines:
        batch: list[dict[str, object]] = []
        for i, line in enumerate(lines):
            batch.append(json.loads(line))
            if len(batch) == 1000:
                ids = [point_id(str(p["item_id"])) for p in batch]
                store.upsert(
                    PointBatch(ids, batch, "resnet50", np.asarray(vectors[i - 999 : i + 1]))
                )
                batch = []
                if (i + 1) % 50_000 == 0:
                    store.flush()
        if batch:
            ids = [point_id(str(p["item_id"])) for p in batch]
            store.upsert(PointBatch(ids, batch, "resnet50", np.asarray(vectors[-len(batch) :])))
    store.flush()
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    store.optimize()
    indexed = time.perf_counter() - start
    store.close()
    disk = sum(f.stat().st_size for f in store_dir.rglob("*") if f.is_file())
    return {
        "points": len(vectors),
        "load_s": loaded,
        "points_per_s": len(vectors) / loaded,
        "optimize_s": indexed,
        "peak_rss_mb_load": rss_mb()[1],
        "disk_gb": disk / 1e9,
    }


def stream_top(
    vectors: np.ndarray, pool: np.ndarray, queries: np.ndarray, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """The `depth` best rows of `pool` for each query by dot product, and their scores,
    unordered: one pass over the pool's vectors in chunks (a memmap is read once)."""
    best = np.full((len(queries), depth), -np.inf, dtype=np.float32)
    ids = np.zeros((len(queries), depth), dtype=np.int64)
    for s in range(0, len(pool), 50_000):
        rows = pool[s : s + 50_000]
        scores = queries @ np.asarray(vectors[rows]).T
        merged = np.concatenate([best, scores], axis=1)
        every = np.concatenate([ids, np.broadcast_to(rows, scores.shape)], axis=1)
        top = np.argpartition(-merged, depth - 1, axis=1)[:, :depth]
        best = np.take_along_axis(merged, top, axis=1)
        ids = np.take_along_axis(every, top, axis=1)
    return best, ids


def exact_top(
    vectors: np.ndarray, genders: np.ndarray, picks: np.ndarray, k: int = 10
) -> np.ndarray:
    """Rows of the exact same-gender top-k of each picked row: one streaming pass per gender."""
    best_ids = np.zeros((len(picks), k), dtype=np.int64)
    for gender in np.unique(genders[picks]):
        mine = np.flatnonzero(genders[picks] == gender)
        queries = np.asarray(vectors[picks[mine]])
        best, ids = stream_top(vectors, np.flatnonzero(genders == gender), queries, k)
        best_ids[mine] = np.take_along_axis(ids, np.argsort(-best, axis=1), axis=1)
    return best_ids


def query(folder: Path, store_dir: Path, count: int) -> dict[str, float]:
    """Runs in a fresh process: reopen the store, time queries, measure memory."""
    vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    rng = np.random.default_rng(7)
    rows = rng.choice(len(vectors), WARMUP + count, replace=False)
    warm, picks = rows[:WARMUP], np.sort(rows[WARMUP:])
    payloads = [json.loads(line) for line in (folder / "payloads.jsonl").open()]
    gc.freeze()  # the bench's own payload dicts would otherwise make full collections slow
    store = EdgeStore(store_dir)
    rss_open = rss_mb()[0]

    def top100(i: int) -> Query:
        flt = Filter(equals={"gender": payloads[i]["gender"]})
        return Query(np.asarray(vectors[i]), "resnet50", 100, flt)

    for i in warm:  # a service answers warm: the first queries page in the graph and codes
        store.search([top100(i)], ["item_id"])
    timings, found = [], []
    for i in picks:
        q = top100(i)
        start = time.perf_counter()
        hits = store.search([q], ["item_id"])[0]
        timings.append(time.perf_counter() - start)
        found.append([h.payload["item_id"] for h in hits[:10]])
    genders = np.array([p["gender"] for p in payloads])
    exact = exact_top(vectors, genders, picks)
    recalls = [
        len({payloads[j]["item_id"] for j in row} & set(hits)) / 10
        for row, hits in zip(exact, found, strict=True)
    ]
    start = time.perf_counter()
    columns = Columns(store)
    table_s = time.perf_counter() - start
    users = []
    for u in range(min(count, 100)):
        mine = [j for j in rng.choice(len(payloads), 40) if payloads[j]["gender"] == "WOMEN"][:5]
        when = datetime(2025, 1, 1, tzinfo=UTC)
        bought = [Purchase(f"u{u}", payloads[j]["item_id"], when, None) for j in mine]
        users.append((User(f"u{u}", "WOMEN", float(rng.uniform()), Location(48.86, 2.35)), bought))
    result: dict[str, float] = {"table_s": table_s, "table_mb": columns.nbytes() / 1e6}
    for mode in ("client", "server"):
        params = Params(k=5, candidates=100, rerank=mode)
        for name, engine in (
            (mode, Recommender(store)),  # payloads with every hit
            (f"{mode}_table", Recommender(store, columns=columns)),  # ids, fields from the table
        ):
            for user, bought in users[:5]:
                engine.for_user(user, bought, params)
            spent = []
            for user, bought in users:
                start = time.perf_counter()
                engine.for_user(user, bought, params)
                spent.append(time.perf_counter() - start)
            result[f"user_{name}_p50_ms"] = float(np.percentile(spent, 50) * 1000)
            result[f"user_{name}_p99_ms"] = float(np.percentile(spent, 99) * 1000)
    store.close()
    ms = np.array(timings) * 1000
    return {
        "top100_p50_ms": float(np.percentile(ms, 50)),
        "top100_p99_ms": float(np.percentile(ms, 99)),
        "recall_at_10": float(np.mean(recalls)),
        "rss_mb_after_open": rss_open,
        "rss_mb_after_queries": rss_mb()[0],
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--layout", choices=list(LAYOUTS), default="int8-disk")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--query-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = generate(args.size)
    if args.query_only:
        print(json.dumps(query(folder, args.query_only, args.queries)))
        return
    store_dir = DATA / f"store-{args.size}-{args.layout}"
    subprocess.run(["rm", "-rf", str(store_dir)], check=True)
    figures = {
        "size": args.size,
        "layout": args.layout,
        **load(folder, store_dir, LAYOUTS[args.layout]),
    }
    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--size",
            str(args.size),
            "--queries",
            str(args.queries),
            "--query-only",
            str(store_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    figures.update(json.loads(child.stdout.strip().splitlines()[-1]))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
