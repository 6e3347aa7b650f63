"""The node's watch on its storage: a database file deleted or replaced, a database, WAL or directory that
became read-only, a database that no longer answers.

A storage fault shows at once in ``/status`` (``fault`` set, ``ready: false``) and in the API's chain status.
What happens next (docs/ARCHITECTURE.md, "Failure handling"):

* storage that comes back by itself (permissions restored, the file system remounted read-write) clears the
  fault and the node carries on — unless a block failed to store meanwhile (:class:`StoreFailed`: its state
  machine is ahead of its store): then the node exits with :data:`EXIT_RESTART` so that its supervisor
  restarts it, and the restart replays the stored chain and catches up from the order and its peers;
* a database file deleted or replaced under the running node never heals in this process (SQLite keeps
  serving the deleted file): the node stays faulted and not ready until it is restarted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from consortium_nodes.errors import NodeError

log = logging.getLogger("consortium_nodes.node")

#: seconds between two looks at the storage
CHECK_EVERY = 1.0
#: seconds before a query that failed is tried again
RETRY_PAUSE = 0.2
#: the exit status of a node that stopped so that its supervisor restarts it (EX_TEMPFAIL)
EXIT_RESTART = 75


class StorageFault(NodeError):
    """The node's database cannot be trusted to store or serve the chain right now."""

    reason = "storage_fault"


class StorageProbe:
    """Looks at one SQLite database (nothing to look at for other databases but a query)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        db = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
        self.path = Path(db).resolve() if db and db != ":memory:" else None
        self._identity = self._stat_identity()

    def _stat_identity(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def problem(self) -> str | None:
        """What is wrong with the storage now, or None."""
        if self.path is not None:
            if not self.path.exists():
                return f"database file {self.path} was deleted; this node serves a file nobody else sees"
            if self._identity is not None and self._stat_identity() != self._identity:
                return f"database file {self.path} was replaced under the running node"
            for p in (self.path, self.path.with_name(self.path.name + "-wal"), self.path.parent):
                try:
                    mode = os.stat(p).st_mode
                except FileNotFoundError:
                    continue  # no WAL between checkpoints
                if not mode & 0o200 or not os.access(p, os.W_OK):
                    return f"{'directory' if p.is_dir() else 'file'} {p} is read-only: no block can be stored"
            try:
                fd = os.open(self.path.parent / ".storage-probe", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.close(fd)
                os.unlink(self.path.parent / ".storage-probe")
            except OSError as exc:
                return f"cannot write in {self.path.parent}: {exc.strerror or exc}"
        error = ""
        for attempt in range(2):  # a busy moment is not a fault: a second try after a pause
            try:
                with self._engine.connect() as conn:
                    conn.execute(sa.text("select count(*) from ledger_meta"))
                return None
            except sa.exc.SQLAlchemyError as exc:
                error = str(getattr(exc, "orig", None) or exc).splitlines()[0]
                if attempt == 0:
                    time.sleep(RETRY_PAUSE)
        return f"the database does not answer: {error}"


class StorageWatch:
    """Thread body: record storage faults in the node's health and clear them once the storage is back; ask
    for a restart (``restart``) when a block failed to store meanwhile."""

    def __init__(self, *, name: str, probe: StorageProbe, set_fault: Callable[[str | None], None],
                 halted_by_store: Callable[[], bool], restart: Callable[[], None], stop: threading.Event,
                 every: float = CHECK_EVERY) -> None:
        self._name = name
        self._probe = probe
        self._set_fault = set_fault
        self._halted_by_store = halted_by_store
        self._restart = restart
        self._stop = stop
        self._every = every
        self._faulted = False

    def check(self) -> str | None:
        """One look; returns the problem (also recorded) or None."""
        problem = self._probe.problem()
        if problem is not None:
            if not self._faulted:
                log.critical("node %s: storage fault: %s", self._name, problem)
            self._faulted = True
            self._set_fault(f"storage: {problem}")
            return problem
        if self._faulted:
            log.warning("node %s: storage is back", self._name)
            self._faulted = False
            self._set_fault(None)
        if self._halted_by_store():
            log.critical("node %s: a block failed to store; exiting with status %d for a restart", self._name,
                         EXIT_RESTART)
            self._restart()
        return None

    def run(self) -> None:
        while not self._stop.wait(self._every):
            self.check()
