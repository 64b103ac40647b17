"""Serving: `fashionrec serve` on loopback under concurrent clients, against the engine in-process.

A home of synthetic items (bench/recommend.py's generator, int8 + originals on disk, as
bench/scale.py's default layout) with 5 stores and simulated users and purchases (the engine's
simulation) is built once under bench/.data/serve-<size>/. In one run:

    in-process  `Recommender.for_item` / `for_user` (the user and purchases read from the
                event log), one caller, after warm-up: p50/p99
    HTTP        `python -m cli.main serve --workers 1`, then `--workers N`, in a subprocess
                on 127.0.0.1, each driven by 1, 4 and 16 client threads with keep-alive
                connections, each load bounded by a request count and a time limit: item
                recommendations (GET /items/ID/similar), user recommendations
                (GET /users/ID/recommendations) and a mix (80% user recommendations, 10% item
                recommendations, 10% POST /purchases)

each after a warm-up of as many requests at 4 clients (not measured), and prints
throughput, p50/p99 latency, errors, the HTTP overhead over in-process at p50,
the throughput of N workers over one at each load, and whether every purchase the service
said it recorded is in the log once. Purchases posted by the mix stay in the home (a rerun
starts from them).

    python bench/serve.py [--size 100000] [--requests 300] [--seconds 20] [--workers 2]
                          [--reverse] [--cache]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

# Run as a script, this folder would come first on sys.path (and bench/ingest.py would
# shadow the `ingest` package): put the project root there instead.
ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

import numpy as np  # noqa: E402

from bench.recommend import DIM, catalog  # noqa: E402
from bench.scale import DATA, LAYOUTS  # noqa: E402
from engine.events.eventlog import EventLog  # noqa: E402
from engine.recommend.columns import Columns  # noqa: E402
from engine.recommend.recommender import Params, Recommender  # noqa: E402
from engine.settings import EVENT_LOG, STORE_DIR  # noqa: E402
from engine.shoppers.simulation import SimulationConfig  # noqa: E402
from engine.shoppers.simulations import run_simulation  # noqa: E402
from engine.shops.placement import DEFAULT_SHOPS, set_shops  # noqa: E402
from engine.shops.shops import generate_shops  # noqa: E402
from engine.vectorstore.base import PointBatch  # noqa: E402
from engine.vectorstore.edge import EdgeStore  # noqa: E402
from engine.vocabulary.geo import DEFAULT_REGION  # noqa: E402
from engine.vocabulary.schema import ITEM_ID, point_id  # noqa: E402

CLIENTS = (1, 4, 16)
USERS = 300
QUERY = "k=5&candidates=100"
WARMUP = 20


def build(size: int) -> Path:
    """The home: items, stores, users and purchases; built once, reused after."""
    home = DATA / f"serve-{size}"
    if (home / "done").exists():
        return home
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    started = time.perf_counter()
    store, log = EdgeStore(home / STORE_DIR, LAYOUTS["int8-disk"]), EventLog(home / EVENT_LOG)
    try:
        store.ensure_vector("resnet50", DIM)
        chunk = 3000  # whole products
        for start in range(0, size, chunk):
            vectors, payloads = catalog(min(chunk, size - start), seed=start, offset=start)
            for i in range(0, len(payloads), 1000):
                part = payloads[i : i + 1000]
                ids = [point_id(str(p["item_id"])) for p in part]
                store.upsert(PointBatch(ids, part, "resnet50", vectors[i : i + 1000]))
        store.flush()
        loaded = time.perf_counter() - started
        store.optimize()
        indexed = time.perf_counter() - started - loaded
        set_shops(store, log, generate_shops(DEFAULT_SHOPS, DEFAULT_REGION, 7), DEFAULT_REGION, 7)
        run_simulation(store, log, SimulationConfig(users=USERS, max_purchases=5, seed=7))
    finally:
        log.close()
        store.close()
    (home / "done").touch()
    print(
        f"built {home} in {time.perf_counter() - started:.0f} s "
        f"(load {loaded:.0f} s, index {indexed:.0f} s)",
        flush=True,
    )
    return home


def sample(home: Path, count: int, seed: int = 3) -> tuple[list[str], list[str]]:
    """Some item ids (the purchased ones and `count` others) and the simulated users."""
    log, store = EventLog(home / EVENT_LOG), EdgeStore(home / STORE_DIR)
    try:
        users = [u for u in log.user_ids() if u.startswith("sim-")]  # not the mix's buyers
        items = sorted({p.item_id for u in users for p in log.purchases(u)})
        every = [str(r.payload[ITEM_ID]) for r in store.scroll([ITEM_ID])]
    finally:
        log.close()
        store.close()
    return items + random.Random(seed).sample(every, min(count, len(every))), users


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds (NaN when there are none)."""
    if not seconds:
        return float("nan"), float("nan")
    ms = np.array(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def in_process(
    home: Path, items: list[str], users: list[str], count: int
) -> dict[str, list[float]]:
    """The engine called directly, one caller: item and user recommendations."""
    store, log = EdgeStore(home / STORE_DIR), EventLog(home / EVENT_LOG)
    taken: dict[str, list[float]] = {"item": [], "user": []}
    try:
        engine = Recommender(store, log.taxonomy(), columns=Columns(store))  # as the service
        params = Params(k=5, candidates=100)
        rng = random.Random(11)

        def item() -> None:
            engine.for_item(rng.choice(items), params)

        def user() -> None:
            who = log.user(rng.choice(users))
            assert who is not None
            engine.for_user(who, list(log.purchases(who.id)), params)

        for name, call in (("item", item), ("user", user)):
            for _ in range(WARMUP):
                call()
            for _ in range(count):
                start = time.perf_counter()
                call()
                taken[name].append(time.perf_counter() - start)
    finally:
        log.close()
        store.close()
    return taken


@dataclass
class Load:
    """What the clients of one load saw."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    recorded: int = 0  # purchases the service answered it recorded
    wall_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


Request = tuple[str, str, bytes | None]  # method, path, body


def drive(
    port: int, clients: int, make: Callable[[random.Random], Request], total: int, limit_s: float
) -> Load:
    """`total` requests shared by `clients` threads (stopping at limit_s), one keep-alive
    connection each."""
    result = Load()
    remaining = [total]
    deadline = time.monotonic() + limit_s

    def client(n: int) -> None:
        rng = random.Random(1000 + n)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while time.monotonic() < deadline:
                with result.lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                method, path, body = make(rng)
                headers = {"Content-Type": "application/json"} if body else {}
                start = time.perf_counter()
                try:
                    connection.request(method, path, body=body, headers=headers)
                    response = connection.getresponse()
                    answer = response.read()
                    ok = response.status < 400
                    if ok and method == "POST":
                        with result.lock:
                            result.recorded += len(json.loads(answer)["recorded"])
                    problem = f"{method} {path.split('?')[0]} {response.status}"
                except (OSError, http.client.HTTPException) as exc:
                    ok, problem = False, f"{method} {path.split('?')[0]} {exc!r}"
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                spent = time.perf_counter() - start
                with result.lock:
                    if ok:
                        result.latencies.append(spent)
                    else:
                        result.errors.append(problem)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.wall_s = time.perf_counter() - start
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def health(port: int) -> int | None:
    """The id of the worker that answered /health on a new connection (None: none did)."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/health")
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return int(json.loads(body)["worker"]) if response.status == 200 else None
    except (OSError, ValueError, KeyError):
        return None


def read_through(folder: Path) -> int:
    """Read every file under a folder once (the page cache then holds the store, as after a
    build; this VM hands cold pages back to its host within minutes); returns bytes."""
    total = 0
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 22):
                    total += len(chunk)
    return total


def serve(home: Path, port: int, workers: int) -> subprocess.Popen[str]:
    """`fashionrec serve --workers N` on loopback, once every worker answers /health."""
    env = {**os.environ, "FASHIONREC_HOME": str(home), "FASHIONREC_API_KEY": ""}
    env.pop("FASHIONREC_QDRANT_URL", None)
    env.pop("FASHIONREC_EVENTS_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--workers", f"{workers}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,  # one log line per request: not worth the pipe
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seen: set[int] = set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and server.poll() is None:
        with ThreadPoolExecutor(4) as pool:  # side by side: an idle worker takes each
            seen.update(w for w in pool.map(lambda _: health(port), range(8)) if w)
        if len(seen) >= workers:
            return server
        time.sleep(0.2)
    server.kill()
    raise SystemExit(f"the server did not start ({len(seen)} of {workers} workers answered)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300, help="per load (and in-process)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per load")
    parser.add_argument("--workers", type=int, default=2, help="compared with --workers 1")
    parser.add_argument(
        "--cache", action="store_true", help="read the served stores' files through first"
    )
    parser.add_argument(
        "--reverse", action="store_true", help="run --workers N first, then --workers 1"
    )
    args = parser.parse_args()
    home = build(args.size)
    items, users = sample(home, 500)
    cores = len(os.sched_getaffinity(0))
    print(
        f"{platform.machine()}, {cores} cores, {args.size:,} items, {len(users)} users; "
        f"k 5, 100 candidates; int8 + originals on disk",
        flush=True,
    )
    direct = in_process(home, items, users, args.requests)

    def item(rng: random.Random) -> Request:
        return "GET", f"/items/{quote(rng.choice(items), safe='')}/similar?{QUERY}", None

    def user(rng: random.Random) -> Request:
        return "GET", f"/users/{quote(rng.choice(users), safe='')}/recommendations?{QUERY}", None

    def mix(rng: random.Random) -> Request:
        roll = rng.random()
        if roll < 0.8:
            return user(rng)
        if roll < 0.9:
            return item(rng)
        moment = datetime.now(UTC) - timedelta(seconds=rng.randrange(30 * 86_400))
        body = {  # a shopper of their own: the measured users' histories stay as built
            "user_id": f"buyer-{rng.randrange(10**9):09d}",
            "item_id": rng.choice(items),
            "timestamp": moment.isoformat(),  # a new event each time (events count once)
        }
        return "POST", "/purchases", json.dumps(body).encode()

    log = EventLog(home / EVENT_LOG)
    before = log.purchase_count()
    log.close()
    rows = []
    recorded = 0
    order = [args.workers, 1] if args.reverse else [1, args.workers]
    for workers in dict.fromkeys(order):
        port = free_port()
        started = time.perf_counter()
        server = serve(home, port, workers)
        print(f"--workers {workers}: answering after {time.perf_counter() - started:.0f} s")
        if args.cache:  # the stores the workers serve: the home's, or their copies
            served = home / ("replicas" if workers > 1 else STORE_DIR)
            print(f"read through {read_through(served) / 1e9:.1f} GB of {served.name}/")
        try:
            for name, make in (("item", item), ("user", user), ("mix", mix)):
                # warm every worker: a fresh process's first few hundred queries fault the
                # store's pages into its memory map and run slower (measured: p50 8.8 ms
                # on the first 300 item queries, 4.7 ms on the next 300)
                recorded += drive(port, 4, make, args.requests, args.seconds).recorded
                for clients in CLIENTS:
                    done = drive(port, clients, make, args.requests, args.seconds)
                    recorded += done.recorded
                    p50, p99 = percentiles(done.latencies)
                    rows.append((workers, name, clients, done, p50, p99))
                    print(
                        f"w{workers} {name:>4} x{clients:<2}: "
                        f"{len(done.latencies) / done.wall_s:7.1f} req/s "
                        f"p50 {p50:6.1f} ms p99 {p99:6.1f} ms errors {len(done.errors)}"
                        + (f" ({done.errors[0]})" if done.errors else ""),
                        flush=True,
                    )
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=120)
            except subprocess.TimeoutExpired:
                server.kill()
    log = EventLog(home / EVENT_LOG)
    counted = log.purchase_count() - before
    log.close()

    print()
    print(
        "| workers | load | clients | requests | req/s | p50 ms | p99 ms | errors "
        "| in-process p50 / p99 ms |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for workers, name, clients, done, p50, p99 in rows:
        base = direct.get(name)
        shown = "—"
        if base:
            b50, b99 = percentiles(base)
            shown = f"{b50:.1f} / {b99:.1f}"
        print(
            f"| {workers} | {name} | {clients} | {len(done.latencies) + len(done.errors)} | "
            f"{len(done.latencies) / done.wall_s:.1f} | {p50:.1f} | {p99:.1f} | "
            f"{len(done.errors)} | {shown} |"
        )
    print()
    for name in ("item", "user"):
        b50, _ = percentiles(direct[name])
        h50 = next(p50 for w, n, c, _, p50, _ in rows if w == 1 and n == name and c == 1)
        print(
            f"{name}: HTTP p50 at 1 client {h50:.1f} ms vs in-process {b50:.1f} ms: "
            f"overhead {h50 - b50:+.1f} ms ({h50 / b50:.2f}x)"
        )
    by = {(w, n, c): d for w, n, c, d, _, _ in rows}
    if args.workers > 1:
        for name in ("item", "user", "mix"):
            for clients in CLIENTS:
                one, many = by[(1, name, clients)], by[(args.workers, name, clients)]
                ratio = (len(many.latencies) / many.wall_s) / (len(one.latencies) / one.wall_s)
                print(f"{name} x{clients}: --workers {args.workers} / --workers 1 = {ratio:.2f}x")
    errors = sum(len(done.errors) for _, _, _, done, _, _ in rows)
    user4 = next(p99 for w, n, c, _, _, p99 in rows if w == args.workers and n == "user" and c == 4)
    print(
        f"errors {errors}; user p99 at 4 clients with --workers {args.workers} {user4:.1f} ms; "
        f"purchases recorded {recorded}, in the log {counted} "
        f"({'each once' if recorded == counted else 'MISMATCH'})"
    )


if __name__ == "__main__":
    main()
