"""consortium_nodes.storage: the storage watch on a real SQLite ledger database (files chmod-ed and deleted)."""

from __future__ import annotations

import threading
from pathlib import Path

from consortium_nodes.errors import StoreFailed
from consortium_nodes.queries import Health
from consortium_nodes.storage import StorageProbe, StorageWatch
from ledger.store.ledger_store import LedgerStore


def _watch(store: LedgerStore, health: Health, restarts: list[int]) -> StorageWatch:
    return StorageWatch(name="n1", probe=StorageProbe(store.engine), set_fault=health.storage,
                        halted_by_store=lambda: health.halted_by_store, restart=lambda: restarts.append(1),
                        stop=threading.Event())


def test_read_only_then_writable_sets_then_clears_the_fault(tmp_path: Path) -> None:
    """A database file without its write bit is a storage fault (the health's fault names it); writable again,
    the fault clears and no restart is asked for (no block failed to store)."""
    store = LedgerStore.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    health, restarts = Health("n1"), []
    watch = _watch(store, health, restarts)
    assert watch.check() is None and health.fault is None
    (tmp_path / "ledger.db").chmod(0o400)
    assert "read-only" in str(watch.check())
    assert health.fault is not None and health.fault.startswith("storage: ") and health.storage_fault
    (tmp_path / "ledger.db").chmod(0o600)
    assert watch.check() is None and health.fault is None and restarts == []
    store.close()


def test_a_block_that_failed_to_store_asks_for_a_restart_once_storage_is_back(tmp_path: Path) -> None:
    """After a StoreFailed (the state machine is ahead of the store) the watch asks for a restart as soon as
    the storage looks fine, not while it is faulty; the earlier fault shows again when the storage fault
    clears."""
    store = LedgerStore.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    health, restarts = Health("n1"), []
    watch = _watch(store, health, restarts)
    (tmp_path / "ledger.db").chmod(0o400)
    health.failed("cannot store block 3", StoreFailed("cannot store block 3"))
    watch.check()
    assert restarts == [] and str(health.fault).startswith("storage: ")
    (tmp_path / "ledger.db").chmod(0o600)
    watch.check()
    assert restarts == [1] and health.fault == "cannot store block 3"
    store.close()


def test_a_deleted_database_stays_a_fault(tmp_path: Path) -> None:
    """Deleting the database files under an open store is a fault that names the deletion, on every look."""
    store = LedgerStore.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    health, restarts = Health("n1"), []
    watch = _watch(store, health, restarts)
    for p in tmp_path.glob("ledger.db*"):
        p.unlink()
    assert "deleted" in str(watch.check()) and "deleted" in str(watch.check())
    assert "deleted" in str(health.fault) and restarts == []
    store.close()
