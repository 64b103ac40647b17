"""Snapshots of the embedded store and the event log: create, change, restore, compare."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from engine.errors import FashionrecError, StoreLockedError
from engine.shoppers.eventlog import EventLog
from engine.shoppers.simulation import SimulationConfig
from engine.shoppers.sync import run_simulation
from engine.vectorstore.base import Filter
from engine.vectorstore.edge import EdgeStore
from engine.vectorstore.snapshot import create, restore
from tests.builders import catalog_items, store_items


def _state(home: Path) -> tuple[dict, list]:
    store = EdgeStore(home / "store")
    points = {r.id: (r.payload, r.vector) for r in store.scroll(None, Filter(), vector="resnet50")}
    store.close()
    log = EventLog(home / "events.sqlite")
    purchases = list(log.purchases())
    log.close()
    return points, purchases


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

    restore(archive, home)
    points, purchases = _state(home)
    assert purchases == before[1]
    assert points.keys() == before[0].keys()
    for pid, (payload, vector) in points.items():
        assert payload == before[0][pid][0]
        np.testing.assert_allclose(vector, before[0][pid][1])


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
