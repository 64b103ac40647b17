"""Faults caused for real: an ingest killed with SIGKILL, then run again (as a user runs it:
`--runtime auto` chooses the runtime by measurement, end to end)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import numpy as np
import pytest

from engine.catalog.items import Item
from engine.catalog.sources import open_catalog
from engine.events.eventlog import EventLog
from engine.settings import EVENT_LOG, EVENTS_URL_ENV
from engine.vectorstore.base import Filter
from engine.vectorstore.edge import EdgeStore
from engine.vocabulary.schema import point_id, precision_field, runtime_field
from ingest.democatalog import write_demo_catalog
from tests.builders import ROOT, catalog_items, fashionrec, home_with_items
from tests.pgserver import own_postgres
from tests.test_serve import _free_port
from tests.test_workers import _get, _wait_for_workers, worker_home

UPSERT: Final = b"upsert_points"
START: Final = datetime(2026, 11, 1, 10, tzinfo=UTC)  # the burst's first purchase
ITEM: Final = "WOMEN-Dresses-id_00000001-01_1_front"  # what the burst buys
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


class Burst:
    """Four clients posting purchases to a service as fast as it answers, each to a second
    of its own; a purchase that fails is posted again until it is taken, as a till does
    (its event id keeps it once). Started and stopped as a context."""

    CLIENTS: Final = 4

    def __init__(self, base: str) -> None:
        self.base = base
        self.acknowledged: set[str] = set()
        self.failed: list[str] = []
        self.unanswered: list[str] = []  # failed, and still failing when the burst ended
        self.last_ack = 0.0  # time.monotonic() of the latest acknowledgement
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._client, args=(c,), daemon=True) for c in range(4)
        ]

    @staticmethod
    def moment(n: int) -> str:
        return (START + timedelta(seconds=n)).strftime(SECOND)

    def post(self, n: int) -> bool:
        body = {"user_id": f"burst-{n % 7}", "item_id": ITEM, "timestamp": self.moment(n)}
        request = urllib.request.Request(
            f"{self.base}/purchases",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status == 201
        except (OSError, http.client.HTTPException):  # URLError, a reset, a cut answer, a 503
            return False

    def _taken(self, n: int) -> None:
        with self.lock:
            self.acknowledged.add(self.moment(n))
            self.last_ack = time.monotonic()

    def _client(self, c: int) -> None:
        n = c
        while not self.stopping.is_set():
            if self.post(n):
                self._taken(n)
            else:
                with self.lock:
                    self.failed.append(self.moment(n))
                if not self._again(n):
                    return
            n += self.CLIENTS

    def _again(self, n: int) -> bool:
        """Post it again until it is taken; after the burst ended, for 30 s at most."""
        deadline = None
        while not self.post(n):
            if self.stopping.is_set():
                deadline = deadline or time.monotonic() + 30
                if time.monotonic() > deadline:
                    with self.lock:
                        self.unanswered.append(self.moment(n))
                    return False
            time.sleep(0.05)
        self._taken(n)
        return True

    def acknowledged_since(self, moment: float) -> bool:
        with self.lock:
            return self.last_ack > moment

    def __enter__(self) -> Burst:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)
        assert not self.unanswered, f"never taken: {self.unanswered}"

    def check(self, log: EventLog) -> tuple[int, int]:
        """Lost and doubled purchases, against what the log holds; both asserted 0."""
        posted = [p for p in log.purchases() if p.user_id.startswith("burst-")]
        logged = [p.timestamp.astimezone(UTC).strftime(SECOND) for p in posted]
        lost, doubled = self.acknowledged - set(logged), len(logged) - len(set(logged))
        assert not lost and not doubled and set(logged) == self.acknowledged
        return len(lost), doubled

    def figures(self) -> str:
        return (
            f"tried {len(self.acknowledged) + len(self.failed)}, acknowledged "
            f"{len(self.acknowledged)}, failed in flight {len(self.failed)} (posted again)"
        )


@contextmanager
def workers_serving(home: Path, log_file: Path, *extra: str, **env: str) -> Iterator[str]:
    """`serve --workers 2` on the home as a real process (its log in a file: a full pipe
    would stop it); yields its base URL once both workers answer; SIGTERM at the end."""
    port = _free_port()
    environ = {**os.environ, "FASHIONREC_HOME": str(home), "FASHIONREC_API_KEY": "", **env}
    environ.pop("FASHIONREC_QDRANT_URL", None)
    command = [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--workers", "2"]
    with log_file.open("w") as logged:
        server = subprocess.Popen(
            [*command, *extra], cwd=ROOT, env=environ, stdout=logged, stderr=subprocess.STDOUT
        )
        try:
            _wait_for_workers(port, server, 2)  # type: ignore[arg-type]
            yield f"http://127.0.0.1:{port}"
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)


def _health(base: str) -> int | None:
    """The pid of the worker that answered /health, or None (no answer, or not 200)."""
    try:
        status, body = _get(f"{base}/health")
    except (OSError, http.client.HTTPException, ValueError):
        return None
    return int(str(body["worker"])) if status == 200 else None


def _workers_now(base: str, asks: int = 16) -> set[int]:
    with ThreadPoolExecutor(4) as pool:
        return {w for w in pool.map(lambda _: _health(base), range(asks)) if w is not None}


def _replaced(base: str, gone: int, within: float) -> tuple[float, int] | None:
    """Seconds until a worker other than `gone` and those seen before answers, and its pid."""
    since = time.monotonic()
    known = _workers_now(base)
    while time.monotonic() - since < within:
        fresh = _workers_now(base, 8) - known - {gone}
        if fresh:
            return time.monotonic() - since, fresh.pop()
        time.sleep(0.1)
    return None


@pytest.mark.slow
def test_a_killed_or_hung_worker_loses_and_doubles_no_purchase(tmp_path: Path) -> None:
    """During four clients' burst of POST /purchases: kill -9 of one of two workers, then
    SIGSTOP of the other (hung: its heartbeat stops). Each is replaced within seconds;
    every purchase the service acknowledged is in the log exactly once, and the clients
    saw failures only for requests in flight. The figures are printed."""
    home = worker_home(tmp_path)
    log_file = tmp_path / "serve.log"
    with workers_serving(home, log_file, "--worker-timeout", "2") as base, Burst(base) as burst:
        first = _workers_now(base)
        assert len(first) == 2, first
        time.sleep(0.5)
        killed, frozen = sorted(first)
        os.kill(killed, signal.SIGKILL)
        after_kill = _replaced(base, killed, 60)
        assert after_kill is not None, log_file.read_text()
        os.kill(frozen, signal.SIGSTOP)
        after_hang = _replaced(base, frozen, 60)
        assert after_hang is not None, log_file.read_text()
        assert not Path(f"/proc/{frozen}").exists() or _zombie(frozen), "the hung one lives on"
        time.sleep(0.5)
    log = EventLog(home / EVENT_LOG)
    try:
        lost, doubled = burst.check(log)
    finally:
        log.close()
    print(
        f"\n{burst.figures()}, lost {lost}, doubled {doubled}; the killed worker replaced "
        f"after {after_kill[0]:.1f} s, the hung one after {after_hang[0]:.1f} s (timeout 2 s)"
    )
    assert len(burst.failed) <= 16  # only what was in flight on the two lost workers
    assert "answers nothing for 2 s; replacing it" in log_file.read_text()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.slow
def test_a_postgresql_restart_under_load_loses_and_doubles_no_purchase(tmp_path: Path) -> None:
    """`serve --workers 2` over a PostgreSQL event log of its own while four clients post
    purchases: the database is stopped as a crash stops it, kept down 2 s, started again.
    Meanwhile the purchases wait for the database off the event loop, and /health answers;
    requests recover by themselves (the same workers serve on: no process restarted);
    every acknowledged purchase is in the log exactly once. The figures are printed."""
    with own_postgres() as database:
        home = worker_home(tmp_path, events=database.url)
        log_file = tmp_path / "serve.log"
        env = {EVENTS_URL_ENV: database.url}
        with workers_serving(home, log_file, **env) as base, Burst(base) as burst:
            first = _workers_now(base)
            time.sleep(1.0)
            database.stop("immediate")
            down = time.monotonic()
            time.sleep(0.5)
            asked = time.monotonic()
            answered = _workers_now(base, 8)  # the calls wait for the database, not /health
            health_s = time.monotonic() - asked
            assert answered == first and health_s < 1.5, (answered, health_s)
            time.sleep(max(0.0, down + 2.0 - time.monotonic()))
            database.start()
            up = time.monotonic()
            deadline = up + 60
            while not burst.acknowledged_since(up) and time.monotonic() < deadline:
                time.sleep(0.02)
            recovered = time.monotonic() - up
            assert burst.acknowledged_since(up), log_file.read_text()
            time.sleep(1.0)
            assert _workers_now(base) == first, "a worker was restarted"
            acknowledged_before = len(burst.acknowledged)
        assert len(burst.acknowledged) > acknowledged_before  # they went on after the restart
        log = EventLog(database.url)
        try:
            lost, doubled = burst.check(log)
        finally:
            log.close()
    print(
        f"\n{burst.figures()}, lost {lost}, doubled {doubled}; the database down "
        f"{up - down:.1f} s (/health answered both workers meanwhile, in {health_s:.2f} s), "
        f"purchases acknowledged again {recovered:.1f} s after it was up"
    )


@pytest.mark.slow
def test_a_long_import_is_not_taken_for_a_hung_worker(tmp_path: Path) -> None:
    """A purchase log that takes longer to import than --worker-timeout (a patient call):
    its worker is not killed as hung, and the whole log is in; a worker that hangs is
    still replaced (test above)."""
    home = worker_home(tmp_path)
    rows = 120_000
    log_file = tmp_path / "sales.csv"
    with log_file.open("w", encoding="utf-8") as out:
        out.write("user_id,item_id,timestamp\n")
        for n in range(rows):
            out.write(f"long-{n % 500},{ITEM},{Burst.moment(n)}\n")
    served = tmp_path / "serve.log"
    with workers_serving(home, served, "--worker-timeout", "2") as base:
        request = urllib.request.Request(
            f"{base}/purchases/import?name=sales.csv",
            data=log_file.read_bytes(),
            headers={"Content-Type": "text/csv"},
        )
        began = time.monotonic()
        with urllib.request.urlopen(request, timeout=120) as answer:
            assert answer.status == 201
        took = time.monotonic() - began
    log = EventLog(home / EVENT_LOG)
    try:
        count = sum(1 for p in log.purchases() if p.user_id.startswith("long-"))
    finally:
        log.close()
    print(f"\n{rows} rows imported in {took:.1f} s under --worker-timeout 2")
    assert count == rows and "answers nothing" not in served.read_text()
    assert took > 2.0  # longer than the timeout: the case this test is about
