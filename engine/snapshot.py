"""Backups of the embedded store, the event log and the compact spaces' projections
together, as one archive."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import tarfile
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

from engine.errors import FashionrecError, SnapshotError
from engine.settings import EVENT_LOG, STORE_DIR
from engine.spaces.registry import SPACES_DIR, list_spaces
from engine.vectorstore import open_edge
from engine.vectorstore.edge import EdgeStore
from engine.vectorstore.edge.files import copy_tree, extents

MANIFEST: Final = "manifest.json"


def _counts(store: EdgeStore, events: Path) -> dict[str, Any]:
    counts: dict[str, Any] = {"points": store.count(), "vectors": store.vector_dims()}
    if events.is_file():
        with sqlite3.connect(events) as db:
            for table in ("stores", "users", "purchases", "items"):
                counts[table] = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    return counts


def _temporary(folder: str, names: list[str]) -> list[str]:
    """Files being written (atomically, under a temporary name) are not copied."""
    return [n for n in names if n.startswith(".") and n.endswith(".tmp")]


def _spaces(root: Path) -> list[str]:
    """The compact spaces whose projection a home (or a staged snapshot) holds."""
    try:
        return [s.name for s in list_spaces(root)]
    except FashionrecError as exc:
        raise SnapshotError(f"{root / SPACES_DIR}: {exc}") from None


def create(home: Path, archive: Path) -> dict[str, Any]:
    """Write store + log + spaces to `archive` (.tar.gz); the store is held locked while
    copied."""
    store = open_edge(home)
    if not store.exists:
        store.close()
        raise SnapshotError(f"no embedded store at {home / STORE_DIR} to snapshot")
    with tempfile.TemporaryDirectory(dir=home, prefix=".snapshot-") as tmp:
        staging = Path(tmp)
        try:
            store.flush()
            copy_tree(home / STORE_DIR, staging / STORE_DIR)
            if (home / EVENT_LOG).is_file():
                with (
                    sqlite3.connect(home / EVENT_LOG) as source,
                    sqlite3.connect(staging / EVENT_LOG) as copy,
                ):
                    source.backup(copy)
            if (home / SPACES_DIR).is_dir():
                shutil.copytree(home / SPACES_DIR, staging / SPACES_DIR, ignore=_temporary)
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            manifest = {"created": created, **_counts(store, staging / EVENT_LOG)}
            manifest["spaces"] = _spaces(staging)
        finally:
            store.close()
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        partial = archive.with_name(archive.name + ".part")
        try:
            with tarfile.open(partial, "w:gz", format=tarfile.PAX_FORMAT) as tar:
                for name in (MANIFEST, STORE_DIR, EVENT_LOG, SPACES_DIR):
                    if (staging / name).exists():
                        tar.add(staging / name, arcname=name, recursive=False)
                        for path in sorted((staging / name).rglob("*")):
                            _add(tar, path, path.relative_to(staging).as_posix())
            partial.replace(archive)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise SnapshotError(f"{archive}: cannot write the snapshot ({exc})") from None
    return manifest


def _add(tar: tarfile.TarFile, path: Path, name: str) -> None:
    """Add one file or folder; a file with holes (the store preallocates files it fills
    slowly) as a GNU sparse member (pax 0.1): its runs of data only, which Python's tarfile
    and GNU tar extract with the holes put back."""
    info = tar.gettarinfo(path, arcname=name)
    if not info.isfile():
        tar.addfile(info)
        return
    runs = list(extents(path))
    if runs == [(0, info.size)]:
        with path.open("rb") as handle:
            tar.addfile(info, handle)
        return
    chunks = [(start, end - start) for start, end in runs] + [(info.size, 0)]  # as GNU tar
    info.pax_headers = {
        "GNU.sparse.size": str(info.size),
        "GNU.sparse.numblocks": str(len(chunks)),
        "GNU.sparse.name": name,
        "GNU.sparse.map": ",".join(f"{offset},{size}" for offset, size in chunks),
    }
    info.size = sum(size for _, size in chunks)
    with path.open("rb") as handle:
        tar.addfile(info, _Runs(handle, runs))


class _Runs(io.RawIOBase):
    """A file's runs of data, read one after another."""

    def __init__(self, handle: BinaryIO, runs: list[tuple[int, int]]) -> None:
        self.handle, self.runs = handle, list(reversed(runs))

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while self.runs:
            start, end = self.runs[-1]
            if start >= end:
                self.runs.pop()
                continue
            self.handle.seek(start)
            taken = end - start if size < 0 else min(size, end - start)
            chunk = self.handle.read(taken)
            self.runs[-1] = (start + len(chunk), end)
            return chunk
        return b""


def holdings(home: Path) -> dict[str, int]:
    """What a home holds that a restore would replace: its points and the event log's
    stores, users, purchases and items, the non-zero counts only (empty: nothing to lose).
    Opening the store fails clearly if another process holds it."""
    store = open_edge(home)
    try:
        counts = {"points": store.count()}
    finally:
        store.close()
    events = home / EVENT_LOG
    if events.is_file():
        with closing(sqlite3.connect(events)) as db:
            for table in ("stores", "users", "purchases", "items"):
                try:
                    counts[table] = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                except sqlite3.Error:
                    continue  # a log without that table holds none of it
    return {name: count for name, count in counts.items() if count}


def _describe(held: dict[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in held.items())


def _free_path(folder: Path, stem: str) -> Path:
    """folder/stem.tar.gz, or stem-2, stem-3, … when a snapshot of that name exists."""
    candidate, number = folder / f"{stem}.tar.gz", 1
    while candidate.exists():
        number += 1
        candidate = folder / f"{stem}-{number}.tar.gz"
    return candidate


@dataclass(frozen=True)
class Restored:
    """A restore's outcome: the archive's manifest, and the automatic snapshot of what it
    replaced (None when the home held nothing)."""

    manifest: dict[str, Any]
    replaced: Path | None


def restore(archive: Path, home: Path, force: bool = False) -> Restored:
    """Replace the store, log and spaces under home with the archive's, after checking it
    opens.

    A bad archive is refused first; then a home that holds data, unless force; with
    force, what it holds is first written to an automatic snapshot under home/snapshots/.
    The swap is all or nothing: if a step fails, the previous store and log are put back.
    """
    if not archive.is_file():
        raise SnapshotError(f"{archive}: no such snapshot")
    held = holdings(home)
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home, prefix=".restore-") as tmp:
        staging = Path(tmp)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(staging, filter="data")  # sparse members: holes again
            manifest: dict[str, Any] = json.loads((staging / MANIFEST).read_text())
            if not isinstance(manifest, dict):
                raise KeyError("its manifest is not a JSON object")
            check = EdgeStore(staging / STORE_DIR)
            try:
                found = _counts(check, staging / EVENT_LOG)
            finally:
                check.close()
        except (OSError, tarfile.TarError, json.JSONDecodeError, KeyError, sqlite3.Error) as exc:
            raise SnapshotError(f"{archive}: not a fashionrec snapshot ({exc})") from None
        expected = {k: manifest.get(k) for k in found}
        if "spaces" in manifest:  # snapshots taken before compact spaces have no such key
            found["spaces"], expected["spaces"] = _spaces(staging), manifest["spaces"]
        if found != expected:
            raise SnapshotError(f"{archive}: contents do not match its manifest; not restored")
        if held and not force:
            raise SnapshotError(
                f"{home} holds {_describe(held)}; restoring {archive} would replace them: "
                "run again with --force (it first snapshots what it replaces), or restore "
                "into another --home"
            )
        replaced = None
        if held:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            replaced = _free_path(home / "snapshots", f"before-restore-{stamp}")
            replaced.parent.mkdir(parents=True, exist_ok=True)
            create(home, replaced)
        _swap(archive, staging, home)
    return Restored(manifest, replaced)


def _swap(archive: Path, staging: Path, home: Path) -> None:
    """Move the home's store, log and spaces aside and the staged ones in; on failure, undo.

    The previous files wait in a folder of the home (not the staging folder, which is
    deleted) until the swap is complete, so that a failed undo loses nothing.
    """
    old = Path(tempfile.mkdtemp(dir=home, prefix=".restore-previous-"))
    out: list[str] = []
    moved_in: list[str] = []
    try:
        for name in (STORE_DIR, EVENT_LOG, f"{EVENT_LOG}-wal", f"{EVENT_LOG}-shm", SPACES_DIR):
            if (home / name).exists():  # the log's WAL files go too: they belong to the old log
                (home / name).rename(old / name)
                out.append(name)
        for name in (STORE_DIR, EVENT_LOG, SPACES_DIR):
            if (staging / name).exists():
                (staging / name).rename(home / name)
                moved_in.append(name)
    except OSError as exc:
        try:
            for name in reversed(moved_in):
                (home / name).rename(staging / name)
            for name in reversed(out):
                (old / name).rename(home / name)
        except OSError:
            raise SnapshotError(
                f"{archive}: the restore failed ({exc}) and so did putting the previous "
                f"store back; it is in {old}: move its contents into {home}"
            ) from None
        old.rmdir()
        raise SnapshotError(
            f"{archive}: the restore failed ({exc}); the previous store and log are in place"
        ) from None
    shutil.rmtree(old, ignore_errors=True)
