"""Faults caused for real: an ingest killed with SIGKILL, then run again (as a user runs it:
`--runtime auto` chooses the runtime by measurement, end to end)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import numpy as np
import pytest

from engine.catalog.items import Item
from engine.catalog.sources import open_catalog
from engine.vectorstore.base import Filter
from engine.vectorstore.edge import EdgeStore
from engine.vocabulary.schema import point_id, precision_field, runtime_field
from ingest.democatalog import write_demo_catalog
from tests.builders import ROOT, catalog_items, fashionrec, home_with_items

UPSERT: Final = b"upsert_points"
START: Final = datetime(2026, 11, 1, 10, tzinfo=UTC)  # the burst's first purchase
SECOND: Final = "%Y-%m-%dT%H:%M:%SZ"  # how Qdrant Edge's write-ahead log names a batch of points


def _ingest(home: Path, images: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "FASHIONREC_HOME": str(home)}
    env.pop("FASHIONREC_QDRANT_URL", None)
    args = [
        *(sys.executable, "-m", "cli.main", "ingest", str(images), "--weights", "random"),
        *("--backbone", "mobilenet_v2", "--device", "cpu", "--workers", "0", "--batch-size", "2"),
    ]
    return subprocess.Popen(
        args, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _batches_logged(store: Path) -> int:
    """Batches of points in the store's write-ahead log so far (its segments are written
    front to back; the first batches lie in the first MiB of the first segment)."""
    found = 0
    wal = store / "wal"
    for segment in [*wal.glob("open-*"), *wal.glob("closed-*")]:
        try:
            with segment.open("rb") as data:
                found += data.read(1 << 20).count(UPSERT)
        except FileNotFoundError:  # a segment renamed while we looked
            continue
    return found


def _kill_after_first_batch(process: subprocess.Popen[str], store: Path) -> None:
    """SIGKILL the ingest as soon as its first batch of points is in the store's log: the
    kill point is a batch in, whatever the speed of the machine, not a guessed delay."""
    deadline = time.monotonic() + 120
    while _batches_logged(store) == 0:
        assert process.poll() is None, (
            f"the ingest ended before it was killed: {process.communicate()}"
        )
        assert time.monotonic() < deadline, "no batch written in 120 s"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.slow
def test_ingest_killed_mid_batch_then_rerun_stores_each_item_once(tmp_path: Path) -> None:
    catalog = write_demo_catalog(
        tmp_path / "catalog", products_per_category=1, views=("1_front", "2_side"), size=(150, 220)
    )
    ids = [e.item_id for e in open_catalog(catalog.images) if isinstance(e, Item)]
    killed_home, clean_home = tmp_path / "killed", tmp_path / "clean"
    process = _ingest(killed_home, catalog.images)
    _kill_after_first_batch(process, killed_home / "store")
    assert process.returncode == -signal.SIGKILL

    partial = EdgeStore(killed_home / "store")
    before = partial.count()
    partial.close()
    assert 0 <= before < len(ids)  # killed part-way

    flags = ("--weights", "random", "--backbone", "mobilenet_v2", "--device", "cpu")
    options = ("--workers", "0", "--batch-size", "2")
    rerun = fashionrec("ingest", catalog.images, *flags, *options, home=killed_home)  # auto
    out = rerun.stdout
    assert rerun.returncode == 0, rerun.stderr
    assert f"ingested {len(ids) - before} · skipped {before} (already stored {before}" in out
    chosen = next(line for line in out.splitlines() if line.startswith("runtime: "))
    runtime, precision = chosen.split()[2:4]  # `runtime: mobilenet_v2 torch fp32 (auto: …`
    assert (runtime, precision) == ("torch", "fp32")  # a job this small times nothing
    assert "(auto: a job of " in chosen, chosen
    # the reference: a run never killed, with the setting auto chose
    clean = fashionrec(
        "ingest", catalog.images, *flags, *options, "--runtime", runtime, home=clean_home
    )
    assert clean.returncode == 0, clean.stderr

    store, reference = EdgeStore(killed_home / "store"), EdgeStore(clean_home / "store")
    assert store.count() == store.count(Filter(has_vector="mobilenet_v2")) == len(ids)
    found = store.retrieve([point_id(i) for i in ids], "mobilenet_v2")
    assert {r.payload[runtime_field("mobilenet_v2")] for r in found} == {runtime}
    assert {r.payload[precision_field("mobilenet_v2")] for r in found} == {precision}
    got = {r.payload["item_id"]: r.vector for r in found}
    want = {
        r.payload["item_id"]: r.vector
        for r in reference.retrieve([point_id(i) for i in ids], "mobilenet_v2")
    }
    assert got.keys() == want.keys() == set(ids)
    for item_id in ids:
        np.testing.assert_allclose(got[item_id], want[item_id], atol=1e-3)
    store.close()
    reference.close()


@pytest.mark.slow
def test_purchase_import_killed_midway_is_all_or_nothing(tmp_path: Path) -> None:
    from engine.events.eventlog import EventLog

    home = tmp_path / "home"
    home_with_items(home)
    items = [i.item_id for i in catalog_items(2)]
    rows = 60_000
    log_file = tmp_path / "sales.csv"
    with log_file.open("w", encoding="utf-8") as out:
        out.write("user_id,item_id,timestamp\n")
        for n in range(rows):
            moment = f"{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}"  # one event per row
            out.write(f"u{n % 3000},{items[n % len(items)]},2025-01-01T{moment}Z\n")
    env = {**os.environ, "FASHIONREC_HOME": str(home)}
    env.pop("FASHIONREC_QDRANT_URL", None)
    count = 0
    for delay in (0.8, 1.6, 2.4):
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "purchases", "import", str(log_file)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        log = EventLog(home / "events.sqlite")
        count = log.purchase_count()
        users = len(log.user_ids())
        log.close()
        assert count in {0, rows} and (count == 0) == (users == 0)  # never a part
        if count:
            break
    if count == 0:  # every kill came before the commit: the log still takes the import whole
        finished = subprocess.run(
            [sys.executable, "-m", "cli.main", "purchases", "import", str(log_file)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        assert finished.returncode == 0, finished.stderr
        log = EventLog(home / "events.sqlite")
        assert (log.purchase_count(), len(log.user_ids())) == (rows, 3000)
        log.close()


@pytest.mark.slow
def test_a_worker_killed_during_a_burst_of_purchases_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    """kill -9 of one of two workers while four clients post purchases: every purchase the
    service acknowledged is in the log exactly once, the clients saw failures only for
    requests in flight (each is posted again, as a till would: its event id keeps it
    once), and the worker is replaced within seconds. The figures are printed."""
    import http.client
    import json
    import threading
    import urllib.error
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from engine.events.eventlog import EventLog
    from engine.settings import EVENT_LOG
    from tests.test_serve import _free_port
    from tests.test_workers import _get, _wait_for_workers, worker_home

    home = worker_home(tmp_path)
    item = "WOMEN-Dresses-id_00000001-01_1_front"
    port = _free_port()
    env = {**os.environ, "FASHIONREC_HOME": str(home), "FASHIONREC_API_KEY": ""}
    env.pop("FASHIONREC_QDRANT_URL", None)
    command = [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--workers", "2"]
    logged = (tmp_path / "serve.log").open("w")  # a file, not a pipe: a full pipe stops it
    server = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=logged, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    acknowledged: set[str] = set()
    failed: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def moment(n: int) -> str:  # a second of its own for each purchase
        return (START + timedelta(seconds=n)).strftime(SECOND)

    def post(n: int) -> bool:
        body = {"user_id": f"burst-{n % 7}", "item_id": item, "timestamp": moment(n)}
        request = urllib.request.Request(
            f"{base}/purchases",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status == 201
        except (OSError, http.client.HTTPException):  # URLError, a reset, a cut answer
            return False

    def client(c: int) -> None:
        n = c
        while not stop.is_set():
            done = post(n)
            with lock:
                (acknowledged.add if done else failed.append)(moment(n))
            if not done:
                while not post(n):  # a till posts it again until it is taken
                    time.sleep(0.05)
                with lock:
                    acknowledged.add(moment(n))
            n += 4

    try:
        _wait_for_workers(port, server, 2)
        with ThreadPoolExecutor(4) as pool:
            seen = {
                int(str(body["worker"]))
                for _, body in pool.map(lambda _: _get(f"{base}/health"), range(16))
            }
        threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        victim = min(seen)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        replaced = None

        def health(_: int) -> int | None:
            try:
                status, body = _get(f"{base}/health")
            except (OSError, http.client.HTTPException):  # the killed worker's connection
                return None
            return int(str(body["worker"])) if status == 200 else None

        while replaced is None and time.monotonic() - killed < 60:
            with ThreadPoolExecutor(4) as pool:
                now = {w for w in pool.map(health, range(8)) if w is not None}
            if now - seen:
                replaced = time.monotonic() - killed
            time.sleep(0.1)
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(60)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        logged.close()
    output = (tmp_path / "serve.log").read_text()
    log = EventLog(home / EVENT_LOG)
    try:
        posted = [p for p in log.purchases() if p.user_id.startswith("burst-")]
    finally:
        log.close()
    logged = [p.timestamp.astimezone(UTC).strftime(SECOND) for p in posted]
    lost, doubled = acknowledged - set(logged), len(logged) - len(set(logged))
    assert replaced is not None, output
    print(
        f"\ntried {len(acknowledged) + len(failed)}, acknowledged {len(acknowledged)}, "
        f"failed in flight {len(failed)} (posted again), in the log {len(logged)}, lost "
        f"{len(lost)}, doubled {doubled}, the worker replaced after {replaced:.1f} s"
    )
    assert not lost and not doubled and set(logged) == acknowledged
    assert len(failed) <= 8  # only what was in flight on the killed worker
