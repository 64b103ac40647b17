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

from engine.errors import FashionrecError
from engine.vectorstore.edge import EdgeStore

STORE: Final = "store"
EVENTS: Final = "events.sqlite"
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
    store = EdgeStore(home / STORE)
    if not store.exists:
        store.close()
        raise FashionrecError(f"no embedded store at {home / STORE} to snapshot")
    with tempfile.TemporaryDirectory(dir=home, prefix=".snapshot-") as tmp:
        staging = Path(tmp)
        try:
            store.flush()
            shutil.copytree(home / STORE, staging / STORE)
            if (home / EVENTS).is_file():
                with (
                    sqlite3.connect(home / EVENTS) as source,
                    sqlite3.connect(staging / EVENTS) as copy,
                ):
                    source.backup(copy)
            manifest = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        **_counts(store, staging / EVENTS)}  # fmt: skip
        finally:
            store.close()
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        partial = archive.with_name(archive.name + ".part")
        try:
            with tarfile.open(partial, "w:gz") as tar:
                for name in (MANIFEST, STORE, EVENTS):
                    if (staging / name).exists():
                        tar.add(staging / name, arcname=name)
            partial.replace(archive)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise FashionrecError(f"{archive}: cannot write the snapshot ({exc})") from None
    return manifest


def restore(archive: Path, home: Path) -> dict[str, Any]:
    """Replace the store and log under home with the archive's, after checking it opens."""
    if not archive.is_file():
        raise FashionrecError(f"{archive}: no such snapshot")
    current = EdgeStore(home / STORE)  # fails clearly if another process holds the store
    current.close()
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home, prefix=".restore-") as tmp:
        staging = Path(tmp)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(staging, filter="data")
            manifest: dict[str, Any] = json.loads((staging / MANIFEST).read_text())
        except (OSError, tarfile.TarError, json.JSONDecodeError, KeyError) as exc:
            raise FashionrecError(f"{archive}: not a fashionrec snapshot ({exc})") from None
        check = EdgeStore(staging / STORE)
        found = _counts(check, staging / EVENTS)
        check.close()
        expected = {k: manifest[k] for k in found}
        if found != expected:
            raise FashionrecError(f"{archive}: contents do not match its manifest; not restored")
        old = staging / "previous"
        old.mkdir()
        for name in (STORE, EVENTS, f"{EVENTS}-wal", f"{EVENTS}-shm"):
            if (home / name).exists():  # the log's WAL files go too: they belong to the old log
                (home / name).rename(old / name)
        for name in (STORE, EVENTS):
            if (staging / name).exists():
                (staging / name).rename(home / name)
    return manifest
