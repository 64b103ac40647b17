"""Catalog changes under `serve --workers N`: replayed from the event log, against a copy.

bench/serve.py's home (synthetic items, built once under bench/.data/serve-<size>/). In one
run:
- copy: what each change cost every worker before changes were replayed, one copy of the
  home's store (serve/copies.make_copy), timed here (the baseline);
- PATCH: `serve --workers N`, then --changes price changes one after another: each PATCH's
  latency, and the time until every worker answers with the new price (a GET on a new
  connection lands on any worker; each change is read until 16 GETs in a row show it); the
  copies' generation before and after (unchanged: no copy was made);
- burst: GET /items/ID/similar from 4 clients for --seconds, alone and with a burst of
  --burst PATCHes sent meanwhile: p50/p99 of each.

    python bench/changes.py [--size 100000] [--workers 2] [--changes 20] [--seconds 10]
                            [--burst 100]
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import random
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

from bench.serve import build, free_port, percentiles, sample, serve  # noqa: E402
from engine.settings import Settings  # noqa: E402
from serve.copies import copies_dir, generation, make_copy  # noqa: E402

QUERY = "k=5&candidates=100"


def call(port: int, method: str, path: str, body: object | None = None) -> tuple[int, bytes]:
    """One request on a new connection (so that any worker may take it)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = None if body is None else json.dumps(body).encode()
    connection.request(method, path, data, {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    return response.status, answer


def price_everywhere(port: int, item: str, price: float, limit_s: float = 30.0) -> float:
    """Seconds until 16 GETs in a row answer with this price."""
    started, streak = time.perf_counter(), 0
    while streak < 16:
        status, body = call(port, "GET", f"/items/{item}")
        streak = (
            streak + 1 if status == 200 and json.loads(body)["payload"].get("price") == price else 0
        )
        if time.perf_counter() - started > limit_s:
            return float("inf")
    return time.perf_counter() - started


def load(port: int, items: list[str], seconds: float, during: threading.Event) -> list[float]:
    """GET /items/ID/similar from 4 clients for `seconds`; the latencies; `during` is set
    while it runs."""
    times: list[float] = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def client(n: int) -> None:
        rng = random.Random(n)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < end:
            started = time.perf_counter()
            connection.request("GET", f"/items/{rng.choice(items)}/similar?{QUERY}")
            connection.getresponse().read()
            with lock:
                times.append(time.perf_counter() - started)
        connection.close()

    during.set()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(client, range(4)))
    during.clear()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--burst", type=int, default=100, help="PATCHes sent under the load")
    args = parser.parse_args()
    home = build(args.size)
    items, _ = sample(home, 200)
    print(f"{platform.machine()}, {args.size:,} items, {args.workers} workers", flush=True)

    started = time.perf_counter()
    made = make_copy(Settings(home=home), 99, wait=True)
    assert made is not None
    copied = time.perf_counter() - started
    size = sum(p.stat().st_size for p in made.path.rglob("*") if p.is_file())
    shutil.rmtree(made.path, ignore_errors=True)
    print(
        f"baseline: one copy of the store {copied:.1f} s ({size / 1e9:.2f} GB), that is "
        f"{copied * args.workers:.1f} s of copying a change (one copy per worker)",
        flush=True,
    )

    port = free_port()
    server = serve(home, port, args.workers)
    try:
        before = generation(home)
        rng = random.Random(5)
        patches, seen = [], []
        for n in range(args.changes):
            item, price = rng.choice(items), round(10 + n + rng.random(), 2)
            started = time.perf_counter()
            status, body = call(port, "PATCH", f"/items/{item}", {"price": price})
            assert status == 200, body
            patches.append(time.perf_counter() - started)
            seen.append(price_everywhere(port, item, price))
        p50, p99 = percentiles(patches)
        s50, _ = percentiles(seen)
        copies = len(list(copies_dir(home).glob("worker*-g*")))
        print(
            f"PATCH: p50 {p50:.1f} ms, p99 {p99:.1f} ms; every worker answers with it after "
            f"p50 {s50:.0f} ms, max {max(seen) * 1000:.0f} ms; generation {before} → "
            f"{generation(home)} ({copies} copies: one per worker)",
            flush=True,
        )
        during = threading.Event()
        alone = load(port, items, args.seconds, during)
        burst: list[float] = []

        def changes() -> None:
            while not during.is_set():
                time.sleep(0.01)
            for n in range(args.burst):
                item = rng.choice(items)
                started = time.perf_counter()
                call(port, "PATCH", f"/items/{item}", {"price": 100.0 + n})
                burst.append(time.perf_counter() - started)

        writer = threading.Thread(target=changes)
        writer.start()
        busy = load(port, items, args.seconds, during)
        writer.join()
        a50, a99 = percentiles(alone)
        b50, b99 = percentiles(busy)
        w50, w99 = percentiles(burst)
        print(
            f"GET similar, 4 clients: alone p50 {a50:.1f} / p99 {a99:.1f} ms ({len(alone)}); "
            f"during {args.burst} PATCHes p50 {b50:.1f} / p99 {b99:.1f} ms ({len(busy)}), the "
            f"PATCHes p50 {w50:.1f} / p99 {w99:.1f} ms; p99 ratio {b99 / a99:.2f}",
            flush=True,
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(120)


if __name__ == "__main__":
    main()
