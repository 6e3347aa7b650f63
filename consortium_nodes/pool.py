"""The pool: admission of submitted transactions, the durable pool that survives a crash, the transactions
in flight and the batcher that proposes them to the orderer."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from consortium_nodes.ordering import Orderer, OrderingError
from ledger.core.batch import batch_signer
from ledger.core.builder import Checked, StateMachine, check_stateless
from ledger.core.consortium import Consortium
from ledger.core.crypto import SHA256, PrivateKey
from ledger.core.encoding import iso
from ledger.core.transaction import Transaction
from ledger.errors import LedgerError
from ledger.store.ledger_store import LedgerStore
from ledger.store.schema import param_mark

_meta = sa.MetaData()
pool_table = sa.Table(
    "node_pool",
    _meta,
    sa.Column("tx_id", sa.String(64), primary_key=True),
    sa.Column("body", sa.LargeBinary, nullable=False),
)


class DurablePool:
    """Rows are written before a submission is acknowledged and removed in the same database
    transaction that stores the block holding them (so a crash in between re-proposes them at
    worst; the block builder drops what the chain already holds).

    This is the node's own work queue, not ledger data: deleting from it is fine.
    """

    def __init__(self, *, engine: Engine) -> None:
        self._engine = engine
        _meta.create_all(engine)
        self._dialect = engine.dialect.name

    def load(self) -> list[tuple[str, bytes]]:
        with self._engine.connect() as conn:
            return [(r.tx_id, bytes(r.body)) for r in conn.execute(sa.select(pool_table))]

    def add(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Insert the rows not already there: one statement, one commit."""
        if not items:
            return
        with self._engine.begin() as conn:
            if self._dialect in ("sqlite", "postgresql"):
                # One driver-level executemany of plain tuples (no per-row bind processing).
                mark = param_mark(conn)
                sqlite = self._dialect == "sqlite"
                verb, tail = ("INSERT OR IGNORE", "") if sqlite else ("INSERT", " ON CONFLICT DO NOTHING")
                conn.exec_driver_sql(
                    f"{verb} INTO {pool_table.name} (tx_id, body) VALUES ({mark}, {mark}){tail}",
                    [(i, b) for i, b in items],
                )
                return
            have = set(
                conn.execute(
                    sa.select(pool_table.c.tx_id).where(pool_table.c.tx_id.in_([i for i, _ in items]))
                ).scalars()
            )
            fresh = [{"tx_id": i, "body": b} for i, b in items if i not in have]
            if fresh:
                conn.execute(pool_table.insert(), fresh)

    @staticmethod
    def remove_in(conn: Connection, tx_ids: Sequence[str]) -> None:
        """Delete ``tx_ids`` inside the caller's database transaction (e.g. the block's commit)."""
        mark = param_mark(conn)
        for i in range(0, len(tx_ids), 500):
            chunk = tuple(tx_ids[i : i + 500])
            conn.exec_driver_sql(
                f"DELETE FROM {pool_table.name} WHERE tx_id IN ({', '.join([mark] * len(chunk))})", chunk
            )


@dataclass(frozen=True)
class Admission:
    """The answer to one submitted transaction."""

    tx_id: str | None
    status: str  # "accepted" | "known" | "rejected"
    reason: str | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"tx_id": self.tx_id, "status": self.status}
        if self.reason:
            d["reason"] = self.reason
            d["message"] = self.message
        return d


def check(item: Any, consortium: Consortium, machine: StateMachine) -> Checked | Admission:
    """The stateless checks of one submitted transaction: its :class:`Checked` or a rejection."""
    wire: Transaction | None = None
    try:
        wire = Transaction.from_dict(item)
        # The canonical bytes decoded again: exactly the transaction every node will decode from
        # the order (a value that does not survive the round trip is refused here, not dropped there).
        return check_stateless(Transaction.decode(wire.encode()), consortium, machine)
    except LedgerError as exc:
        return Admission(None if wire is None else wire.tx_id, "rejected", exc.reason, exc.message)


class Admitter:
    """Checks submissions and pools the accepted ones (idempotent by tx id)."""

    def __init__(self, *, consortium: Consortium, machine: StateMachine, store: LedgerStore, pool: TxPool) -> None:
        self._consortium = consortium
        self._machine = machine
        self._store = store
        self._pool = pool

    def submit(self, items: Sequence[Any]) -> list[Admission]:
        """Admission checks; accepted transactions wait in the pool for ordering.

        A transaction already on the chain, in the pool or in flight answers ``known``.
        """
        results = [check(item, self._consortium, self._machine) for item in items]
        parsed = [r for r in results if isinstance(r, Checked)]
        on_chain = self._store.known_tx_ids([c.tx.tx_id for c in parsed])
        # Written before the answer: an accepted transaction survives a crash of this node.
        self._pool.persist([(c.tx.tx_id, c.tx.encode()) for c in parsed if c.tx.tx_id not in on_chain])
        known = on_chain | self._pool.add(c for c in parsed if c.tx.tx_id not in on_chain)
        return [
            r if isinstance(r, Admission)
            else Admission(r.tx.tx_id, "known" if r.tx.tx_id in known else "accepted")
            for r in results
        ]


log = logging.getLogger("consortium_nodes.node")

#: seconds the batcher sleeps on an empty pool before it looks at the stop flag again
IDLE_WAIT = 0.5
#: seconds the batcher waits after the orderer refused a batch before it proposes again
RETRY_PAUSE = 0.2
#: in-flight marks (ordered, not yet in a block) kept before the old ones are forgotten …
MAX_INFLIGHT = 100_000
#: … which are those older than this many seconds (they are on the chain by then)
INFLIGHT_TTL = 60.0
#: admission results kept for transactions never built here (e.g. a peer's copy came first) …
MAX_CHECKED = 200_000
#: … of which this many of the oldest are forgotten at once
FORGET_CHECKED = 100_000
#: seconds a transaction of the durable pool may be ordered without reaching a block here before it is
#: proposed again (its batch was lost with the order log, or never reached the order at all)
REPROPOSE_AFTER = 15.0
#: seconds between the batcher's looks for such transactions
REPROPOSE_EVERY = 1.0


class TxPool:
    """Accepted transactions waiting to be ordered, and what the node remembers about them.

    One condition guards everything: the pool (tx id → canonical bytes, oldest first), the
    transactions also in the durable pool (id → bytes), the in-flight ids (ordered, not yet in a
    block) and the admission results the block builder reuses (bytes → :class:`Checked`).

    What sits in the durable pool is proposed again until a block holding it is stored here
    (:meth:`due_again`): an order that lost its batch (a lost or rewound order log) loses no
    accepted transaction, and the block builder drops a copy whose first one is already on the
    chain, so none is applied twice.
    """

    def __init__(self, durable: DurablePool, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._durable = durable
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._pool: OrderedDict[str, bytes] = OrderedDict()
        self._since: float | None = None  # when the oldest transaction in the pool arrived
        #: transactions written to the durable pool and not yet removed (they go with their block's commit)
        self._durable_txs: dict[str, bytes] = {}
        self._checked: dict[bytes, Checked] = {}
        self._inflight: dict[str, float] = {}
        #: pooled again by :meth:`due_again`: proposed by this node itself, never handed to a proposer again
        self._direct: set[str] = set()
        self.reproposed = 0  # transactions proposed again since this process started

    def restore(self) -> None:
        """Put back what the durable pool holds (accepted before a restart, never stored in a block)."""
        rows = self._durable.load()
        with self._cond:
            for tx_id, body in rows:
                self._pool[tx_id] = body
                self._durable_txs[tx_id] = body
            if self._pool and self._since is None:
                self._since = self._monotonic()

    def __len__(self) -> int:
        """Transactions waiting to be ordered (the in-memory queue)."""
        with self._cond:
            return len(self._pool)

    def counts(self) -> dict[str, int]:
        """``{"pool", "waiting", "in_flight"}``: accepted transactions not yet in a block here (the durable
        pool and the queue together), those waiting to be ordered, and those ordered but not in a block."""
        with self._cond:
            waiting = len(self._pool)
            pending = len(self._durable_txs) + sum(1 for tx_id in self._pool if tx_id not in self._durable_txs)
            in_flight = sum(1 for tx_id in self._durable_txs if tx_id not in self._pool)
            return {"pool": pending, "waiting": waiting, "in_flight": in_flight}

    def durable_ids(self) -> set[str]:
        """The ids of the durable pool (accepted here, not yet in a block here)."""
        with self._cond:
            return set(self._durable_txs)

    def persist(self, rows: Sequence[tuple[str, bytes]]) -> None:
        """Write accepted transactions to the durable pool (before the submitter gets its answer)."""
        self._durable.add(rows)
        with self._cond:
            self._durable_txs.update(rows)

    def add(self, checked: Iterable[Checked]) -> set[str]:
        """Pool the transactions not pooled or in flight yet; returns the ids that were already known."""
        known: set[str] = set()
        fresh: list[tuple[str, bytes]] = []
        with self._cond:
            for c in checked:
                tx_id = c.tx.tx_id
                if tx_id in self._pool or tx_id in self._inflight:
                    known.add(tx_id)
                    continue
                body = c.tx.encode()
                fresh.append((tx_id, body))
                self._checked[body] = c
            self._enqueue(fresh)
        return known

    def add_handed(self, rows: Sequence[tuple[str, bytes]]) -> int:
        """Pool transactions another node handed over for this node to propose (:mod:`consortium_nodes.proposer`):
        not durable here (the node that accepted them keeps them until they are in a block), no admission
        result (the block builder checks them as any); those pooled or in flight already are left out.
        Returns how many were pooled."""
        with self._cond:
            fresh: dict[str, bytes] = {}
            for tx_id, body in rows:
                if tx_id not in self._pool and tx_id not in self._inflight:
                    fresh.setdefault(tx_id, body)
            self._enqueue(list(fresh.items()))
        return len(fresh)

    def _enqueue(self, fresh: Sequence[tuple[str, bytes]]) -> None:
        """Queue ``fresh`` rows (the caller holds the condition): the oldest one's wait starts now if the queue
        was empty, and the batcher is woken."""
        if not fresh:
            return
        if not self._pool:
            self._since = self._monotonic()
        for tx_id, body in fresh:
            self._pool[tx_id] = body
        self._cond.notify()

    def direct(self, take: Sequence[tuple[str, bytes]]) -> bool:
        """True when ``take`` holds a transaction :meth:`due_again` pooled again (its hand-over came to nothing:
        this node proposes the batch itself); the marks go."""
        with self._cond:
            if not self._direct:
                return False
            hit = [tx_id for tx_id, _ in take if tx_id in self._direct]
            self._direct.difference_update(hit)
            return bool(hit)

    def knows(self, tx_id: str) -> bool:
        """True while ``tx_id`` waits in the pool or is ordered but not yet in a block."""
        with self._cond:
            return tx_id in self._pool or tx_id in self._inflight

    def take(self, max_txs: int, max_wait: float, stop: threading.Event) -> list[tuple[str, bytes]]:
        """The next batch: wait until the oldest pooled transaction has waited ``max_wait`` or
        ``max_txs`` are pooled (new submissions do not cut the wait short, so blocks stay few and large
        under load).  Empty when the pool stayed empty for :data:`IDLE_WAIT` or on stop."""
        with self._cond:
            if not self._pool:
                self._cond.wait(IDLE_WAIT)
                return []
            since = self._since if self._since is not None else self._monotonic()
            while len(self._pool) < max_txs and not stop.is_set():
                left = since + max_wait - self._monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            take: list[tuple[str, bytes]] = []
            while self._pool and len(take) < max_txs:
                take.append(self._pool.popitem(last=False))
            self._since = self._monotonic() if self._pool else None
            return take

    def ordered(self, take: Sequence[tuple[str, bytes]]) -> None:
        with self._cond:
            now = self._monotonic()
            for tx_id, _ in take:
                self._inflight[tx_id] = now

    def put_back(self, take: Sequence[tuple[str, bytes]], max_wait: float) -> None:
        """Return a batch the orderer refused to the front of the pool, due again at once."""
        with self._cond:
            for tx_id, body in reversed(take):
                self._pool[tx_id] = body
                self._pool.move_to_end(tx_id, last=False)
            self._since = self._monotonic() - max_wait

    def due_again(self, after: float) -> int:
        """Pool again the durable pool's transactions that were ordered more than ``after`` seconds ago and
        are still not in a block here; how many.  They were accepted: whatever became of their batch, they
        are proposed until a block holding them is stored."""
        with self._cond:
            now = self._monotonic()
            again = [
                (tx_id, body) for tx_id, body in self._durable_txs.items()
                if tx_id not in self._pool and (t := self._inflight.get(tx_id)) is not None and now - t > after
            ]
            for tx_id, body in again:
                self._inflight.pop(tx_id, None)
                self._pool[tx_id] = body
                self._direct.add(tx_id)
            if again:
                if self._since is None:
                    self._since = now
                self.reproposed += len(again)
                self._cond.notify()
            return len(again)

    def prune(self) -> None:
        """Forget old in-flight marks and admission results once there are too many."""
        with self._cond:
            if len(self._inflight) > MAX_INFLIGHT:
                cutoff = self._monotonic() - INFLIGHT_TTL
                # a durable transaction keeps its mark: it is proposed again if it never reaches a block
                self._inflight = {k: v for k, v in self._inflight.items() if v > cutoff or k in self._durable_txs}
            if len(self._checked) > MAX_CHECKED:
                for body in list(itertools.islice(self._checked, FORGET_CHECKED)):
                    self._checked.pop(body, None)

    def checked_for(self, raw_txs: Iterable[bytes]) -> dict[bytes, Checked]:
        """The admission results this node holds for ``raw_txs`` (a copy the builder may read freely)."""
        with self._cond:
            return {raw: c for raw in raw_txs if (c := self._checked.get(raw)) is not None}

    def durable_in(self, tx_ids: Iterable[str]) -> list[str]:
        """Those of ``tx_ids`` that are in the durable pool (their rows go in the block's commit)."""
        with self._cond:
            return [tx_id for tx_id in tx_ids if tx_id in self._durable_txs]

    def stored(self, durable_ids: Iterable[str]) -> None:
        """The durable rows of ``durable_ids`` went with their block's commit."""
        with self._cond:
            for tx_id in durable_ids:
                self._durable_txs.pop(tx_id, None)

    def built(self, raw_txs: Iterable[bytes], tx_ids: Iterable[str]) -> None:
        """A block from a batch of ``raw_txs`` holding ``tx_ids`` is stored: forget them here."""
        with self._cond:
            for raw in raw_txs:
                self._checked.pop(raw, None)
            for tx_id in tx_ids:
                self._inflight.pop(tx_id, None)
                self._pool.pop(tx_id, None)  # a copy proposed again while the first was on its way
                self._direct.discard(tx_id)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class HandsOver(Protocol):
    """Where a batch goes while another node proposes (:class:`consortium_nodes.proposer.ProposerLease`)."""

    def elsewhere(self) -> bool:
        """True while another node proposes (this node's batches go to it)."""

    def hand_over(self, rows: Sequence[tuple[str, bytes]]) -> bool:
        """Give ``rows`` to the proposer; False: this node appends them itself."""


class Batcher:
    """The thread body that proposes pooled transactions to the orderer as batches, each signed with the
    node's member key (``key``) for the sequence number it gets (:mod:`ledger.core.batch`)."""

    def __init__(
        self, *, name: str, pool: TxPool, orderer: Orderer, clock: Callable[[], datetime], max_txs: int,
        max_wait: float, stop: threading.Event, key: PrivateKey | None = None, digest_alg: str = SHA256,
        monotonic: Callable[[], float] = time.monotonic,
        proposer: HandsOver | None = None,
    ) -> None:
        """With a ``proposer`` (:class:`consortium_nodes.proposer.ProposerLease`), while another node proposes,
        pooled transactions go to it at once (it waits ``max_wait`` to batch them) instead of being appended here;
        a batch it does not take is appended here."""
        self._name = name
        self._proposer = proposer
        self._key = key
        self._digest_alg = digest_alg
        self._pool = pool
        self._orderer = orderer
        self._clock = clock
        self.max_txs = max_txs
        self.max_wait = max_wait
        self._stop = stop
        self.repropose_after = REPROPOSE_AFTER
        self._monotonic = monotonic
        self._looked = monotonic()

    def run(self) -> None:
        while not self._stop.is_set():
            self.step()

    def again(self) -> int:
        """Pool again what was ordered :attr:`repropose_after` seconds ago and is not in a block here
        (:meth:`TxPool.due_again`); how many."""
        self._looked = self._monotonic()
        n = self._pool.due_again(self.repropose_after)
        if n:
            log.warning("node %s: %d accepted transactions ordered more than %.0f s ago are in no block here: "
                        "proposing them again", self._name, n, self.repropose_after)
        return n

    def step(self) -> int:
        """Propose one batch (after waiting for one as :meth:`TxPool.take` does); how many were ordered.
        Every :data:`REPROPOSE_EVERY` seconds it first looks for transactions to propose again (:meth:`again`)."""
        if self._monotonic() - self._looked >= REPROPOSE_EVERY:
            self.again()
        p = self._proposer
        take = self._pool.take(self.max_txs, 0.0 if p is not None and p.elsewhere() else self.max_wait, self._stop)
        if not take:
            return 0
        if p is not None and not self._pool.direct(take) and p.hand_over(take):
            self._pool.ordered(take)  # in flight: proposed again here if no block holds them in time
            self._pool.prune()
            return len(take)
        try:
            timestamp, txs = iso(self._clock()), [b for _, b in take]
            sign = None if self._key is None else batch_signer(
                self._key, proposer=self._name, timestamp=timestamp, txs=txs, digest_alg=self._digest_alg)
            self._orderer.append(proposer=self._name, timestamp=timestamp, txs=txs, sign=sign)
            # The durable pool rows go in the commit of the block that holds them.
            self._pool.ordered(take)
        except OrderingError as exc:
            log.warning("node %s: ordering failed, will retry: %s", self._name, exc)
            self._pool.put_back(take, self.max_wait)
            self._stop.wait(RETRY_PAUSE)
            return 0
        finally:
            self._pool.prune()
        return len(take)
