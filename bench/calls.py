"""Where the service's calls run: on the event loop, or on a thread of their own.

bench/serve.py's home (synthetic items, built once under bench/.data/serve-<size>/). The
service (one process, uvicorn over serve.main.create_app) is started with the engine's
calls inline on the event loop (what a home on this machine's disk gets) and with them on
a thread of their own (what a home over PostgreSQL or a Qdrant server gets), alternately,
--rounds times each; each time one client asks --requests item recommendations
(GET /items/ID/similar) and as many user recommendations (GET /users/ID/recommendations)
one after another on a keep-alive connection, after a warm-up. Prints each round's p50,
p90 and p99 and the paired differences (thread − inline, each round against the inline
run just before it): their mean and range.

    python bench/calls.py [--size 10000] [--rounds 4] [--requests 300]
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

import numpy as np  # noqa: E402

from bench.serve import QUERY, build, free_port, health, sample  # noqa: E402

WARMUP = 30
SERVER = """
import sys, uvicorn
from pathlib import Path
from engine.settings import Settings
from serve.main import create_app
home, port, inline = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "inline"
if sys.argv[4] == "busy":  # a thread of pure Python work beside the service (an ingest's)
    import threading
    def spin():
        while True:
            sum(i * i for i in range(10_000))
    threading.Thread(target=spin, daemon=True).start()
app = create_app(Settings(home=home), api_key="", calls_inline=inline)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


def start(home: Path, mode: str, beside: str) -> tuple[subprocess.Popen[bytes], int]:
    """The service in a subprocess, once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(home), str(port), mode, beside],
        cwd=ROOT,
        env={**os.environ, "FASHIONREC_API_KEY": ""},
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if health(port) is not None:
            return process, port
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the service ({mode}) did not answer in 120 s")


def timed(port: int, paths: list[str]) -> list[float]:
    """Milliseconds of each GET, one after another on one connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    taken = []
    for path in paths:
        began = time.perf_counter()
        connection.request("GET", path)
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            raise SystemExit(f"GET {path}: {answer.status}")
        taken.append((time.perf_counter() - began) * 1000)
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--busy", action="store_true", help="a thread of pure Python work runs in the service"
    )
    args = parser.parse_args()
    home = build(args.size)
    items, users = sample(home, 200)
    kinds = {
        "item": [f"/items/{items[i % len(items)]}/similar?{QUERY}" for i in range(args.requests)],
        "user": [
            f"/users/{users[i % len(users)]}/recommendations?{QUERY}" for i in range(args.requests)
        ],
    }
    print(f"{platform.machine()}, {os.cpu_count()} cores, {args.size:,} items; one client")
    print("| round | calls | kind | p50 ms | p90 ms | p99 ms |\n|---:|---|---|---:|---:|---:|")
    found: dict[tuple[str, str], list[np.ndarray]] = {}
    for round_ in range(1, args.rounds + 1):
        for mode in ("inline", "thread"):
            process, port = start(home, mode, "busy" if args.busy else "idle")
            try:
                for kind, paths in kinds.items():
                    timed(port, paths[:WARMUP])
                    ms = np.percentile(timed(port, paths), [50, 90, 99])
                    found.setdefault((mode, kind), []).append(ms)
                    p50, p90, p99 = ms
                    print(f"| {round_} | {mode} | {kind} | {p50:.2f} | {p90:.2f} | {p99:.2f} |")
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
    print("\nthread − inline, paired by round: mean [min, max] ms")
    for kind in kinds:
        gaps = np.array(found["thread", kind]) - np.array(found["inline", kind])
        cells = [
            f"{name} {gaps[:, i].mean():+.2f} [{gaps[:, i].min():+.2f}, {gaps[:, i].max():+.2f}]"
            for i, name in enumerate(("p50", "p90", "p99"))
        ]
        print(f"{kind}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
