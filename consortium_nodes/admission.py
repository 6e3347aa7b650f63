"""Admission of submitted transactions: stateless checks, durable pooling, answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from consortium_nodes.batcher import TxPool
from ledger.core.builder import Checked, check_stateless
from ledger.core.consortium import Consortium
from ledger.core.statemachine import StateMachine
from ledger.core.transaction import Transaction
from ledger.errors import LedgerError
from ledger.store.ledger_store import LedgerStore


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
