"""Snapshots of the embedded store and the event log: create, change, restore, compare."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from engine.errors import FashionrecError, StoreLockedError
from engine.events.eventlog import EventLog
from engine.shoppers.simulation import SimulationConfig
from engine.shoppers.simulations import run_simulation
from engine.snapshot import create, restore
from engine.vectorstore.base import Filter
from engine.vectorstore.edge import EdgeStore
from tests.builders import catalog_items, fashionrec, store_items


def _state(home: Path) -> tuple[dict, list]:
    store = EdgeStore(home / "store")
    points = {r.id: (r.payload, r.vector) for r in store.scroll(None, Filter(), vector="resnet50")}
    store.close()
    log = EventLog(home / "events.sqlite")
    purchases = list(log.purchases())
    log.close()
    return points, purchases


@pytest.mark.slow
def test_restore_brings_back_every_item_vector_and_purchase(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store, log = EdgeStore(home / "store"), EventLog(home / "events.sqlite")
    store_items(store, catalog_items(2))
    run_simulation(store, log, SimulationConfig(users=5, seed=1))
    store.close()
    log.close()
    before = _state(home)
    archive = tmp_path / "backup.tar.gz"
    manifest = create(home, archive)
    assert manifest["points"] == 30 and manifest["purchases"] == len(before[1])

    store, log = EdgeStore(home / "store"), EventLog(home / "events.sqlite")
    store_items(store, catalog_items(3))  # more items, more purchases, moved popularity
    run_simulation(store, log, SimulationConfig(users=5, seed=2))
    store.close()
    log.close()
    assert _state(home)[1] != before[1]

    with pytest.raises(FashionrecError, match=r"holds .* run again with --force"):
        restore(archive, home)  # the home holds data: refused, untouched
    assert _state(home)[1] != before[1]
    changed = _state(home)
    done = restore(archive, home, force=True)
    assert done.replaced is not None and done.replaced.parent == home / "snapshots"
    points, purchases = _state(home)
    assert purchases == before[1]
    assert points.keys() == before[0].keys()
    for pid, (payload, vector) in points.items():
        assert payload == before[0][pid][0]
        np.testing.assert_allclose(vector, before[0][pid][1])
    # what the forced restore replaced was saved first, and restores in its turn
    restore(done.replaced, home, force=True)
    assert _state(home)[1] == changed[1]
    assert _state(home)[0].keys() == changed[0].keys()


def test_snapshot_refuses_a_busy_store_and_bad_archives(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = EdgeStore(home / "store")
    store_items(store, catalog_items(1))
    with pytest.raises(StoreLockedError):
        create(home, tmp_path / "x.tar.gz")
    store.close()
    assert not (tmp_path / "x.tar.gz").exists() and not (tmp_path / "x.tar.gz.part").exists()
    junk = tmp_path / "junk.tar.gz"
    with tarfile.open(junk, "w:gz"):
        pass
    with pytest.raises(FashionrecError, match="not a fashionrec snapshot"):
        restore(junk, home)
    untouched = EdgeStore(home / "store")
    assert untouched.count() == 15
    untouched.close()


def test_a_snapshot_that_cannot_be_written_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    home = tmp_path / "home"
    store = EdgeStore(home / "store")
    store_items(store, catalog_items(1))
    store.close()

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "add", full)
    archive = tmp_path / "backup.tar.gz"
    with pytest.raises(FashionrecError, match="cannot write the snapshot"):
        create(home, archive)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def _same(a: tuple[dict, list], b: tuple[dict, list]) -> bool:
    """Whether two homes' states hold the same purchases, points, payloads and vectors."""
    return (
        a[1] == b[1]
        and a[0].keys() == b[0].keys()
        and all(
            a[0][pid][0] == b[0][pid][0] and np.allclose(a[0][pid][1], b[0][pid][1]) for pid in a[0]
        )
    )


def _home_with_purchases(home: Path, seed: int) -> None:
    store, log = EdgeStore(home / "store"), EventLog(home / "events.sqlite")
    store_items(store, catalog_items(2))
    run_simulation(store, log, SimulationConfig(users=4, seed=seed))
    store.close()
    log.close()


@pytest.mark.slow
def test_restore_over_data_needs_force_and_snapshots_what_it_replaces(tmp_path: Path) -> None:
    """The restore that turned 34 purchases into 0 without a word is refused now."""
    source, home = tmp_path / "source", tmp_path / "home"
    store = EdgeStore(source / "store")
    store_items(store, catalog_items(1))
    store.close()
    archive = tmp_path / "empty-log.tar.gz"
    assert fashionrec("snapshot", "create", archive, home=source).returncode == 0
    _home_with_purchases(home, seed=3)
    before = _state(home)
    refused = fashionrec("snapshot", "restore", archive, home=home)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "run again with --force" in lines[0], refused.stderr
    assert "purchases" in lines[0]
    assert _same(_state(home), before)  # untouched
    forced = fashionrec("snapshot", "restore", archive, "--force", home=home)
    assert forced.returncode == 0, forced.stderr
    saved = sorted((home / "snapshots").glob("before-restore-*.tar.gz"))
    assert len(saved) == 1 and str(saved[0]) in forced.stdout.replace("\n", "")
    assert _state(home)[1] == []  # the snapshot's log had no purchases
    back = fashionrec("snapshot", "restore", saved[0], "--force", home=home)
    assert back.returncode == 0, back.stderr
    assert _state(home)[1] == before[1]
    # an empty home needs no --force and keeps no automatic snapshot
    fresh = tmp_path / "fresh"
    assert fashionrec("snapshot", "restore", archive, home=fresh).returncode == 0
    assert not (fresh / "snapshots").exists()


@pytest.mark.slow
def test_a_restore_that_fails_half_way_leaves_the_previous_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    source, home = tmp_path / "source", tmp_path / "home"
    _home_with_purchases(source, seed=1)
    archive = tmp_path / "backup.tar.gz"
    create(source, archive)
    _home_with_purchases(home, seed=2)
    before = _state(home)
    rename = Path.rename

    def fail_on_the_log(self: Path, target: Path) -> Path:  # the store is in, the log fails
        staged = self.parent.name.startswith(".restore-") and "previous" not in self.parent.name
        if staged and self.name == "events.sqlite" and Path(target).parent == home:
            raise OSError(errno.EIO, "Input/output error")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", fail_on_the_log)
    with pytest.raises(FashionrecError, match="the previous store and log are in place"):
        restore(archive, home, force=True)
    monkeypatch.undo()
    assert _same(_state(home), before)
    assert not [p.name for p in home.iterdir() if p.name.startswith(".")]  # nothing staged left
    assert len(list((home / "snapshots").glob("before-restore-*"))) == 1  # --force's own


def _on_disk(folder: Path) -> tuple[int, int]:
    """Bytes a folder's files take on disk, and their sizes."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    return sum(p.stat().st_blocks * 512 for p in files), sum(p.stat().st_size for p in files)


def test_the_stores_holes_stay_holes(tmp_path: Path) -> None:
    """Qdrant Edge preallocates files it fills slowly: a snapshot carries their data only
    (as sparse members GNU tar reads too) and a restore, like a worker's copy, keeps the
    holes, so a small store stays small on disk."""
    import shutil
    import subprocess

    from engine.vectorstore.edge.files import copy_tree

    home = tmp_path / "home"
    store = EdgeStore(home / "store")
    store_items(store, catalog_items(1))
    store.close()
    used, size = _on_disk(home / "store")
    assert used * 20 < size  # mostly holes
    archive = tmp_path / "backup.tar.gz"
    create(home, archive)
    assert archive.stat().st_size < used
    restore(archive, tmp_path / "restored")
    assert _on_disk(tmp_path / "restored" / "store")[0] * 20 < size
    assert EdgeStore(tmp_path / "restored" / "store").count() == 15
    before = _on_disk(home / "store")[1]
    copied = copy_tree(home / "store", tmp_path / "copy")
    assert _on_disk(copied)[1] == before and _on_disk(copied)[0] * 20 < before
    if shutil.which("tar"):  # GNU tar reads the sparse members as well
        (tmp_path / "by-tar").mkdir()
        subprocess.run(["tar", "xzf", archive, "-C", tmp_path / "by-tar"], check=True)
        assert _on_disk(tmp_path / "by-tar" / "store")[0] * 20 < size
        assert EdgeStore(tmp_path / "by-tar" / "store").count() == 15
