"""Reading the node: state queries, transaction statuses, provenance exports, and its health (fault, skips)."""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from consortium_nodes.checkpoints import Checkpoints, note_size
from consortium_nodes.errors import ChainHalted, StoreFailed
from consortium_nodes.finality import Certificates, StoredTxs
from consortium_nodes.pool import TxPool
from ledger.core.builder import StateMachine
from ledger.core.consortium import Consortium
from ledger.errors import LedgerError
from ledger.store.ledger_store import LedgerStore

#: the queries modules of state machines that do not name theirs (``queries_module``: one name or several);
#: a query's name is looked up in each in turn, and only a function defined in that module answers
QUERY_MODULES: dict[str, tuple[str, ...]] = {
    "EticketMachine": ("ledger.eticket.queries", "ledger.eticket.gate_queries", "ledger.eticket.key_queries"),
}
#: transaction ids per database query of :meth:`Queries.status_details`
STATUS_CHUNK = 500


class Queries:
    """Read-only answers; the state machine is read under the chain's ``state_lock``."""

    def __init__(
        self, *, consortium: Consortium, machine: StateMachine, state_lock: threading.RLock, store: LedgerStore,
        pool: TxPool, stored_txs: StoredTxs, certificates: Certificates, checkpoints: Checkpoints,
        monotonic: Callable[[], float] = time.monotonic, names: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        """``names``: every key id the chain had in force → its member (governance changes them)."""
        self._consortium = consortium
        self._names = names
        self._machine = machine
        self._state_lock = state_lock
        self._store = store
        self._pool = pool
        self._stored_txs = stored_txs
        self._certificates = certificates
        self._checkpoints = checkpoints
        self._monotonic = monotonic

    def query(self, name: str, kwargs: Mapping[str, Any]) -> Any:
        """Run a read-only query of the state machine (``ledger.eticket.queries.<name>``) consistently."""
        named = getattr(self._machine, "queries_module", None)
        modules = (named,) if isinstance(named, str) else tuple(
            named or QUERY_MODULES.get(type(self._machine).__name__, ()))
        if not modules:
            raise LedgerError("this node's state machine has no queries", reason="not_found")
        fn = None
        for module_name in modules if not name.startswith("_") else ():
            module = importlib.import_module(str(module_name))
            found = getattr(module, name, None)
            if found is not None and getattr(found, "__module__", None) == module.__name__ and callable(found):
                fn = found
                break
        if fn is None:
            raise LedgerError(f"no query named {name!r}", reason="not_found")
        with self._state_lock:
            try:
                return fn(self._machine, **kwargs)
            except TypeError as exc:
                raise LedgerError(f"bad arguments for query {name}: {exc}", reason="malformed") from exc

    def state_digest(self) -> str:
        with self._state_lock:
            return self._machine.digest()

    def tx_status(self, tx_id: str, wait: float = 0.0, *, with_tx: bool = False) -> dict[str, Any]:
        """Where a transaction is: pending, committed (in a block) or final (certified); ``with_tx`` adds
        the stored transaction itself (``tx``) once it is in a block."""
        deadline = self._monotonic() + wait
        height = self._stored_txs.height(tx_id)
        if height is None and self._store.known_tx_ids([tx_id]):  # stored before this process started
            height = -1
        if height is None and self._stored_txs.wait(tx_id, deadline) is None:
            return {"tx_id": tx_id, "status": "pending" if self._pool.knows(tx_id) else "unknown"}
        stored = self._store.get_tx(tx_id)
        if stored is None:  # pragma: no cover - ledger rows are never deleted
            return {"tx_id": tx_id, "status": "unknown"}
        final = self._certificates.wait_final(stored.height, max(0.0, deadline - self._monotonic()))
        d: dict[str, Any] = {
            "tx_id": tx_id, "status": "final" if final else "committed", "height": stored.height,
            "position": stored.position, "index": stored.seq, "code": stored.code,
        }
        if final:
            block_hash = self._certificates.header_hash(stored.height)
            assert block_hash is not None
            d["block_hash"] = block_hash
            d["certificate"] = [s.to_dict() for s in self._store.signatures(stored.height)]
        if with_tx:
            d["tx"] = stored.tx.to_dict()
        return d

    def statuses(self, tx_ids: Sequence[str]) -> dict[str, str]:
        """final / committed / unknown for many ids at once (one query)."""
        return {t: d["status"] for t, d in self.status_details(tx_ids).items()}

    def status_details(self, tx_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{"status", "code", "height"}`` for many ids at once: final / committed with the block's
        validation code and height, or unknown (code and height None)."""
        import sqlalchemy as sa

        from ledger.store import schema

        t = schema.transactions
        final_height = self._certificates.final_height
        out: dict[str, dict[str, Any]] = {i: {"status": "unknown", "code": None, "height": None} for i in tx_ids}
        with self._store.engine.connect() as conn:
            for i in range(0, len(tx_ids), STATUS_CHUNK):
                chunk = list(tx_ids[i : i + STATUS_CHUNK])
                rows = conn.execute(sa.select(t.c.tx_id, t.c.height, t.c.code).where(t.c.tx_id.in_(chunk))).all()
                for r in rows:
                    status = "final" if r.height <= final_height else "committed"
                    out[r.tx_id] = {"status": status, "code": r.code, "height": r.height}
        return out

    def provenance(self, kind: str, key: str) -> dict[str, Any]:
        """Everything that happened to one ticket/permit/truck/project, with proofs to a fresh checkpoint."""
        from ledger.core import membership_line
        from ledger.eticket import heads
        from ledger.verify.provenance import build_export, note_objects_height

        tx_ids = self.query("history", {"kind": kind, "key": key})
        if not tx_ids:
            raise LedgerError(f"no records for {kind} {key}", reason="not_found")
        objects = getattr(self._machine, "checkpoint_extension", None) is not None
        # a checkpoint with the lines this node writes (an older one, without the membership line, is not chosen)
        words = (heads.EXTENSION, membership_line.EXTENSION) if objects else (membership_line.EXTENSION,)
        note = self._checkpoints.latest_with_extension(*words)
        newest = max(s.seq for s in (self._store.get_tx(t) for t in tx_ids) if s is not None)
        if note is None or note_size(note) <= newest:
            note = self._checkpoints.make()
        proof = None
        if objects:  # v2: the object's record chain, proven in the map the checkpoint commits to
            proof = self.query("object_proof", {"kind": kind, "key": key, "height": note_objects_height(note)})
        return build_export(store=self._store, consortium=self._consortium, subject={"kind": kind, "id": key},
                            tx_ids=list(tx_ids), checkpoint_note=note, object_proof=proof,
                            names=None if self._names is None else self._names())


log = logging.getLogger("consortium_nodes.node")


@dataclass(frozen=True)
class SkippedBatch:
    """An ordered batch no block could be built from as it was (malformed, or not signed by its proposing
    node): it became an empty block; ``reason`` says why."""

    seq: int
    proposer: str
    reason: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "proposer": self.proposer, "reason": self.reason, "message": self.message}


class Health:
    """The node's fault (one text, the newest) and its skipped batches; one lock guards both.

    The follower asks :attr:`halted` (a :class:`ChainHalted` error was recorded) instead of
    reading the fault's text.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._fault: str | None = None
        self._storage: str | None = None
        self._error: BaseException | None = None
        self._skipped = 0
        self._last_skipped: SkippedBatch | None = None
        self._order: str | None = None  # the order log was lost, rewound or damaged …
        self._order_pending: set[str] = set()  # … and these accepted transactions are not in a block yet
        self._order_resumed: int | None = None
        self._order_message: str | None = None

    @property
    def fault(self) -> str | None:
        """The storage fault while there is one, else the newest recorded fault, else a lost order log's
        (while the transactions accepted before it are not all in blocks)."""
        with self._lock:
            return self._storage or self._fault or self._order

    @property
    def blocking(self) -> str | None:
        """The fault that makes the node not ready (storage, a stopped thread, a halted chain); a lost order
        log does not: the node heals it itself."""
        with self._lock:
            return self._storage or self._fault

    def order_lost(self, message: str, *, resumed_after: int, pending: set[str]) -> None:
        """The order log ended before the chain: the order goes on after ``resumed_after`` and ``pending``
        (the durable pool then) are proposed again; the fault shows until they are all in blocks."""
        with self._lock:
            self._order, self._order_resumed, self._order_pending = message, resumed_after, set(pending)
            self._order_message = message
        log.error("node %s: %s", self._name, message)

    def order_log(self, durable: Callable[[], set[str]]) -> dict[str, Any] | None:
        """``{"message", "resumed_after", "healed"}`` of a lost order log since this process started (None:
        none); ``durable`` gives the durable pool's ids now: once none of those pending at the loss is left,
        the fault is healed and clears."""
        with self._lock:
            if self._order_resumed is None:
                return None
            check = bool(self._order_pending)
        left = durable() if check else set()
        with self._lock:
            self._order_pending &= left
            if not self._order_pending and self._order is not None:
                log.info("node %s: every transaction accepted before the order log was lost is in a block",
                         self._name)
                self._order = None
            return {"message": self._order_message, "resumed_after": self._order_resumed,
                    "healed": self._order is None}

    @property
    def storage_fault(self) -> str | None:
        """What is wrong with the node's storage now (set and cleared by the storage watch)."""
        with self._lock:
            return self._storage

    def storage(self, problem: str | None) -> None:
        """Record the storage's state: a problem, or None once it is back."""
        with self._lock:
            self._storage = problem

    @property
    def halted_by_store(self) -> bool:
        """True once a block failed to store (the state machine is ahead of the store: only a restart heals)."""
        with self._lock:
            return isinstance(self._error, StoreFailed)

    @property
    def halted(self) -> bool:
        """True once a failure that forbids building more blocks was recorded."""
        with self._lock:
            return isinstance(self._error, ChainHalted)

    def failed(self, message: str, error: BaseException) -> None:
        """Record a fault; a :class:`ChainHalted` ``error`` halts the chain (an earlier halt stays)."""
        with self._lock:
            self._fault = message
            if not isinstance(self._error, ChainHalted):
                self._error = error

    def skipped(self, batch: SkippedBatch) -> None:
        with self._lock:
            self._skipped += 1
            self._last_skipped = batch
        log.error("node %s: skipped batch %d from %r (%s): %s", self._name, batch.seq, batch.proposer,
                  batch.reason, batch.message)

    def skipped_batches(self) -> dict[str, Any]:
        """``{"count", "last"}`` of the batches skipped since this process started."""
        with self._lock:
            last = None if self._last_skipped is None else self._last_skipped.to_dict()
            return {"count": self._skipped, "last": last}

    def guard(self, name: str, fn: Callable[..., None]) -> Callable[..., None]:
        """``fn`` as a thread body whose death is recorded as the fault, not silent."""

        def run(*args: Any) -> None:
            try:
                fn(*args)
            except Exception as exc:
                message = f"{name} stopped: {exc.__class__.__name__}: {exc}"
                self.failed(message, exc)
                log.exception("node %s: %s", self._name, message)

        return run
