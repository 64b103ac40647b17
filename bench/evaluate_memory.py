"""Peak memory of `fashionrec evaluate` as the number of users grows.

A synthetic catalog (bench/recommend.py's generator: 2048-d vectors, DeepFashion-like
payloads; 300 items unless --items) is written once into a fresh home under
bench/.data/; then `fashionrec evaluate --users N` runs as a child process for each N
(one backbone, the full protocol: the engine with its hold-out, both baselines, the
ablations and the w_p sweep), and its peak RSS is read from the kernel (wait4's
ru_maxrss, what `/usr/bin/time -v` reports). Each line gives the peak, its ratio to the
smallest run's, the time and users/s.

The evaluation runs at about 15–40 users/s on one core, so 100,000 users take around an
hour; --limit stops a run with Ctrl-C (SIGINT) after that many seconds and reports the
users done by then (a stopped run's peak still covers the whole simulation, which is
done up front, and every user it evaluated).

    python bench/evaluate_memory.py                         # 1,000 / 10,000 / 100,000 users
    python bench/evaluate_memory.py --users 1000,3000 --backbones 3
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

# Run as a script, this folder would come first on sys.path (and bench/ingest.py would
# shadow the `ingest` package): put the project root there instead.
ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

from engine.settings import STORE_DIR  # noqa: E402
from engine.vectorstore.base import PointBatch  # noqa: E402
from engine.vectorstore.edge import EdgeStore  # noqa: E402
from engine.vocabulary.backbones import BACKBONES  # noqa: E402
from engine.vocabulary.schema import point_id  # noqa: E402

DATA = Path(__file__).parent / ".data"


def home_with(items: int, backbones: list[str]) -> Path:
    """A fashionrec home holding `items` synthetic items under these backbones (written once)."""
    from bench.recommend import catalog

    home = DATA / f"evaluate-{items}-{len(backbones)}"
    if (home / "done").exists():
        return home
    shutil.rmtree(home, ignore_errors=True)
    vectors, payloads = catalog(items)
    store = EdgeStore(home / STORE_DIR)
    ids = [point_id(str(p["item_id"])) for p in payloads]
    for n, backbone in enumerate(backbones):  # the same vectors under each name
        store.ensure_vector(backbone, vectors.shape[1])
        batch = PointBatch(ids, payloads, backbone, vectors)
        if n == 0:
            store.upsert(batch)
        else:
            store.add_vectors(batch)
    store.flush()
    store.optimize()
    store.close()
    (home / "done").touch()
    return home


class Run(NamedTuple):
    """One measured evaluation."""

    users: int
    done: int  # users evaluated (fewer when stopped at --limit)
    peak_mib: float
    seconds: float
    stopped: bool


def evaluate(
    home: Path, users: int, backbones: list[str], max_purchases: int, limit: float | None
) -> Run:
    """One `fashionrec evaluate` in a child process: its peak RSS, time and users done."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(shutil.copytree(home, Path(tmp) / "home"))  # runs may overlap: a store each
        command = [
            sys.executable,
            "-m",
            "cli.main",
            "evaluate",
            "--home",
            str(home),
            "--users",
            str(users),
            "--max-purchases",
            str(max_purchases),
            "--backbones",
            ",".join(backbones),
            "--out",
            tmp,
            "--name",
            "run",
        ]
        env = {k: v for k, v in os.environ.items() if k != "FASHIONREC_QDRANT_URL"}
        err = Path(tmp) / "stderr.txt"
        start = time.perf_counter()
        with open(os.devnull, "w") as out, err.open("w") as errors:
            child = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=errors,
                # a shell's background job ignores SIGINT, and its children inherit that
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
            stopped = False
            while True:  # wait4 (not Popen.wait): it reaps the child with its rusage
                pid, status, usage = os.wait4(child.pid, 0 if limit is None else os.WNOHANG)
                if pid:
                    break
                if not stopped and limit is not None and time.perf_counter() - start > limit:
                    child.send_signal(signal.SIGINT)  # Ctrl-C: it stops in one line
                    stopped = True
                time.sleep(0.2)
            child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        text = err.read_text()
        done = users
        if stopped:
            found = re.search(r"interrupted after ([\d,]+) of", text)
            done = int(found.group(1).replace(",", "")) if found else 0
        elif child.returncode != 0:
            raise SystemExit(f"evaluate --users {users} failed ({child.returncode}):\n{text}")
    return Run(users, done, usage.ru_maxrss / 1024, seconds, stopped)  # ru_maxrss: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="1000,10000,100000", help="comma-separated")
    parser.add_argument("--items", type=int, default=300, help="catalog items")
    parser.add_argument("--backbones", type=int, default=1, choices=(1, 2, 3))
    parser.add_argument("--max-purchases", type=int, default=5)
    parser.add_argument(
        "--limit", type=float, default=None, help="stop a run after this many seconds"
    )
    args = parser.parse_args()
    sizes = [int(n.replace("_", "")) for n in args.users.split(",") if n.strip()]
    backbones = [b for b in BACKBONES if b != "mobilenet_v2"][: args.backbones]
    home = home_with(args.items, backbones)
    print(
        f"evaluate: {args.items} items, backbones {','.join(backbones)}, "
        f"max purchases {args.max_purchases}; {datetime.now(UTC):%Y-%m-%d}"
    )
    print(
        f"{'users':>9} {'done':>9} {'peak RSS':>10} {'× smallest':>10} {'time':>9} {'users/s':>8}"
    )
    smallest: float | None = None
    for users in sizes:
        row = evaluate(home, users, backbones, args.max_purchases, args.limit)
        peak, seconds, done = row.peak_mib, row.seconds, row.done
        smallest = smallest or peak
        note = "  (stopped at --limit)" if row.stopped else ""
        print(
            f"{users:>9,} {done:>9,} {peak:>7.0f} MiB {peak / smallest:>10.2f} "
            f"{seconds:>8.0f}s {done / seconds:>8.1f}{note}",
            flush=True,
        )


if __name__ == "__main__":
    main()
