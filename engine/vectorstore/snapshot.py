"""Backups of the embedded store and the event log together, as one archive."""

from __future__ import annotations

import json
import shutil
import sqlite3
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from engine.errors import SnapshotError
from engine.settings import EVENT_LOG, STORE_DIR
from engine.vectorstore import open_edge
from engine.vectorstore.edge import EdgeStore

MANIFEST: Final = "manifest.json"


def _counts(store: EdgeStore, events: Path) -> dict[str, Any]:
    counts: dict[str, Any] = {"points": store.count(), "vectors": store.vector_dims()}
    if events.is_file():
        with sqlite3.connect(events) as db:
            for table in ("stores", "users", "purchases", "items"):
                counts[table] = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    return counts


def create(home: Path, archive: Path) -> dict[str, Any]:
    """Write store + log to `archive` (.tar.gz); the store is held locked while copied."""
    store = open_edge(home)
    if not store.exists:
        store.close()
        raise SnapshotError(f"no embedded store at {home / STORE_DIR} to snapshot")
    with tempfile.TemporaryDirectory(dir=home, prefix=".snapshot-") as tmp:
        staging = Path(tmp)
        try:
            store.flush()
            shutil.copytree(home / STORE_DIR, staging / STORE_DIR)
            if (home / EVENT_LOG).is_file():
                with (
                    sqlite3.connect(home / EVENT_LOG) as source,
                    sqlite3.connect(staging / EVENT_LOG) as copy,
                ):
                    source.backup(copy)
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            manifest = {"created": created, **_counts(store, staging / EVENT_LOG)}
        finally:
            store.close()
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        partial = archive.with_name(archive.name + ".part")
        try:
            with tarfile.open(partial, "w:gz") as tar:
                for name in (MANIFEST, STORE_DIR, EVENT_LOG):
                    if (staging / name).exists():
                        tar.add(staging / name, arcname=name)
            partial.replace(archive)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise SnapshotError(f"{archive}: cannot write the snapshot ({exc})") from None
    return manifest


def restore(archive: Path, home: Path) -> dict[str, Any]:
    """Replace the store and log under home with the archive's, after checking it opens."""
    if not archive.is_file():
        raise SnapshotError(f"{archive}: no such snapshot")
    current = open_edge(home)  # fails clearly if another process holds the store
    current.close()
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home, prefix=".restore-") as tmp:
        staging = Path(tmp)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(staging, filter="data")
            manifest: dict[str, Any] = json.loads((staging / MANIFEST).read_text())
        except (OSError, tarfile.TarError, json.JSONDecodeError, KeyError) as exc:
            raise SnapshotError(f"{archive}: not a fashionrec snapshot ({exc})") from None
        check = EdgeStore(staging / STORE_DIR)
        found = _counts(check, staging / EVENT_LOG)
        check.close()
        expected = {k: manifest[k] for k in found}
        if found != expected:
            raise SnapshotError(f"{archive}: contents do not match its manifest; not restored")
        old = staging / "previous"
        old.mkdir()
        for name in (STORE_DIR, EVENT_LOG, f"{EVENT_LOG}-wal", f"{EVENT_LOG}-shm"):
            if (home / name).exists():  # the log's WAL files go too: they belong to the old log
                (home / name).rename(old / name)
        for name in (STORE_DIR, EVENT_LOG):
            if (staging / name).exists():
                (staging / name).rename(home / name)
    return manifest
